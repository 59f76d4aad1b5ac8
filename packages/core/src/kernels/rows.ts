/**
 * Template for kernels that give one workgroup to each row of a [rows, n] problem (softmax, norms,
 * cross-entropy, reductions over a long axis): threads stride over the row and combine partial results
 * with a shared-memory tree, in a fixed order so results are deterministic.
 */
export const ROW_WG = 64;

export function rowKernel(decls: string, body: string): string {
  return `${decls}
var<workgroup> red: array<f32, ${ROW_WG}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}
fn wg_max(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  return red[0];
}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P.rows) { return; }
${body}
}`;
}

/** Grid with one workgroup per row (split over x/y for more than 65535 rows). */
export function rowGrid(rows: number, maxPerDim = 65535): [number, number, number] {
  if (rows <= maxPerDim) return [rows, 1, 1];
  const y = Math.ceil(rows / maxPerDim);
  return [Math.ceil(rows / y), y, 1];
}
