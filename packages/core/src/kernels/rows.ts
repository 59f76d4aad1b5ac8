import { getDevice } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { type KernelCall, runKernel } from './common.js';

/**
 * Template for kernels that give one workgroup to each row of a [rows, n] problem (softmax, norms,
 * cross-entropy, reductions over a long axis): the ROW_WG threads of the workgroup stride over the
 * row and combine partial results with wg_sum / wg_max, in a fixed order so results are
 * deterministic. Where the device has subgroups, a workgroup is one subgroup (ROW_WG = the smallest
 * subgroup size) and the combines are subgroup operations without barriers: on a CPU adapter
 * (lavapipe) each barrier switches between the workgroup's SIMD slices, and the shared-memory tree
 * made a 64-wide norm cost about 6 µs per row. Elsewhere ROW_WG = 64 with a shared-memory tree.
 * Bodies use ROW_WG as a WGSL constant and call wg_sum / wg_max in uniform control flow.
 */
const SHARED_WG = 64;

/**
 * Lanes a one-subgroup workgroup may use on the current device: its smallest subgroup size (a
 * workgroup no larger lies within one subgroup), or 0 without subgroups or when that size is
 * outside 8..64.
 */
export function subgroupWidth(): number {
  const dev = getDevice();
  const sg = dev.info.subgroupMinSize ?? 0;
  return dev.features.has('subgroups') && !dev.subgroupsDisabledForTesting && sg >= 8 && sg <= SHARED_WG
    ? sg
    : 0;
}

/** Threads per row workgroup on the current device (see rowKernel). */
export function rowWidth(): number {
  return subgroupWidth() || SHARED_WG;
}

const SUBGROUP_COMBINE = `
fn wg_sum(v: f32, lid: u32) -> f32 { return subgroupAdd(v); }
fn wg_max(v: f32, lid: u32) -> f32 { return subgroupMax(v); }`;

const SHARED_COMBINE = `
var<workgroup> red: array<f32, ${SHARED_WG}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${SHARED_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}
fn wg_max(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${SHARED_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  return red[0];
}`;

/**
 * The row kernel of `body` (see above). With `rowsPerGroup` > 1 a workgroup runs the body for that
 * many consecutive rows in turn (see rowsPerGroup); the body must then not return early. `prologue`
 * runs once per workgroup before the rows (values every row uses, such as a norm's weights).
 */
export function rowKernel(decls: string, body: string, rowsPerGroup = 1, prologue = ''): string {
  const w = rowWidth();
  const sg = w !== SHARED_WG;
  const rows =
    rowsPerGroup === 1
      ? `  let row = wid.y * nwg.x + wid.x;
  if (row >= P.rows) { return; }
${body}`
      : `  for (var rr = 0u; rr < ${rowsPerGroup}u; rr++) {
  let row = (wid.y * nwg.x + wid.x) * ${rowsPerGroup}u + rr;
  if (row >= P.rows) { break; }
${body}
  }`;
  return `${sg ? 'enable subgroups;\n' : ''}${decls}
const ROW_WG: u32 = ${w}u;
${sg ? SUBGROUP_COMBINE : SHARED_COMBINE}
@compute @workgroup_size(${w})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${prologue}${rows}
}`;
}

/**
 * Rows each workgroup of a row kernel takes on `rows` rows. On a CPU adapter every workgroup costs
 * about 0.1 µs of setup (lavapipe, AVX2: 16384 empty 8-lane workgroups took 1.65 ms, one took
 * 0.07 ms), as much as a 64-wide norm row's work, so many short rows are taken up to 8 at a time,
 * keeping at least 256 workgroups for the threads to share. A GPU wants every row in flight: 1.
 */
export function rowsPerGroup(rows: number): number {
  if (!getDevice().info.isSoftware) return 1;
  return Math.max(1, Math.min(8, Math.floor(rows / 256)));
}

/** Grid with one workgroup per row (split over x/y for more than 65535 rows). */
export function rowGrid(rows: number, maxPerDim = 65535): [number, number, number] {
  if (rows <= maxPerDim) return [rows, 1, 1];
  const y = Math.ceil(rows / maxPerDim);
  return [Math.ceil(rows / y), y, 1];
}

/**
 * Runs a row kernel on `rows` rows: one workgroup per `rowsPerGroup` rows (the count its WGSL was
 * generated for), the `rows` uniform prepended to the call's own. `perRow` gives the elements per row of every input/output that has one row per row
 * of the problem (indexed by `row`); others are bound whole. When a row tensor exceeds the storage
 * binding limit the rows run in windows, each binding the window's rows of every row tensor
 * (windows start on multiples of 64 rows, so binding offsets stay multiples of 256 bytes). The
 * kernel must therefore index row tensors by `row` alone, never by an absolute row.
 */
export function runRowKernel(
  call: Omit<KernelCall, 'workgroups'>,
  rows: number,
  perRow: ReadonlyMap<Tensor, number>,
  rowsPerGroup = 1,
): void {
  const limit = getDevice().maxBindingBytes;
  const widest = Math.max(...perRow.values());
  const fits = rows * widest * 4 <= limit;
  const window = fits ? rows : Math.floor(limit / (4 * widest) / 64) * 64;
  // No whole row fits: bind everything and let the dispatch report the limit.
  const step = window === 0 ? rows : window;
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const bind = (t: Tensor | GPUBufferBinding) => {
      if (fits || window === 0 || !(t instanceof Tensor)) return t;
      const k = perRow.get(t);
      return k === undefined ? t : t.window(r0 * k, n * k);
    };
    runKernel({
      ...call,
      inputs: call.inputs.map(bind),
      outputs: call.outputs.map(bind),
      uniforms: [['rows', 'u32', n], ...(call.uniforms ?? [])],
      workgroups: rowGrid(Math.ceil(n / rowsPerGroup)),
    });
  }
}
