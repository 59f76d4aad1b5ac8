/**
 * Helpers for kernels that work on several tensors in one dispatch (optimizer updates, gradient
 * clipping). On a CPU adapter each dispatch costs tens of microseconds before any work, and a LoRA
 * model has two small tensors per adapted layer, so one dispatch per tensor is mostly overhead.
 * Each tensor gets its own bindings and a range of workgroups, chosen by a workgroup-uniform branch.
 */
import { getDevice } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { grid, type UniformField, WG } from './common.js';

/** Most tensors one dispatch takes (bounds the generated WGSL). */
const MAX_TENSORS = 8;

/**
 * Tensors per dispatch on the current device when each binds `each` storage buffers and `shared`
 * more are bound once: 4 AdamW parameters on lavapipe (16 storage buffers), 2 under WebGPU's default 8.
 */
export function tensorsPerDispatch(each: number, shared = 0): number {
  const perStage = getDevice().limits.maxStorageBuffersPerShaderStage;
  return Math.max(1, Math.min(MAX_TENSORS, Math.floor((perStage - shared) / each)));
}

/**
 * Splits `items` into dispatch groups of at most `size`, in order. With `written`, an item whose
 * written buffer the group already binds starts a new group: a dispatch may not bind a buffer
 * writable twice.
 */
export function dispatchGroups<T>(
  items: readonly T[],
  size: number,
  written?: (item: T) => GPUBuffer,
): T[][] {
  const groups: T[][] = [];
  let cur: T[] = [];
  const bound = new Set<GPUBuffer>();
  for (const item of items) {
    const buf = written?.(item);
    if (cur.length === size || (buf && bound.has(buf))) {
      groups.push(cur);
      cur = [];
      bound.clear();
    }
    cur.push(item);
    if (buf) bound.add(buf);
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/**
 * WGSL running `body(j)` in the workgroups of tensor j of `n`: workgroup `blk` belongs to the last
 * tensor whose first workgroup, the uniform `P.<first>j`, is at most `blk` (tensor 0's is 0).
 */
export function workgroupRanges(n: number, first: string, body: (j: number) => string): string {
  return Array.from({ length: n }, (_, j) => n - 1 - j)
    .map((j) => (j === 0 ? `{\n${body(0)}\n  }` : `if (blk >= P.${first}${j}) {\n${body(j)}\n  }`))
    .join(' else ');
}

/**
 * An elementwise kernel over `n` tensors, one invocation per element: `stmt(j)` runs for element
 * `i` of tensor j (i < P.n<j>). `decls` declares the bindings, PARAMS the uniforms of
 * {@link elementRanges} (and any the caller adds).
 */
export function elementwiseOverTensors(n: number, decls: string, stmt: (j: number) => string): string {
  return `${decls}
PARAMS
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = wid.y * nwg.x + wid.x;
  ${workgroupRanges(
    n,
    'w',
    (j) => `    let i = (blk - P.w${j}) * ${WG}u + lid;
    if (i < P.n${j}) {
${stmt(j)}
    }`,
  )}
}`;
}

/**
 * Uniforms (each tensor's size n<j> and first workgroup w<j>, starting on workgroup boundaries)
 * and grid of {@link elementwiseOverTensors} over `tensors`.
 */
export function elementRanges(tensors: readonly Tensor[]): {
  uniforms: UniformField[];
  workgroups: [number, number, number];
} {
  const uniforms: UniformField[] = [];
  let blocks = 0;
  tensors.forEach((t, j) => {
    uniforms.push([`n${j}`, 'u32', t.size], [`w${j}`, 'u32', blocks]);
    blocks += Math.ceil(t.size / WG);
  });
  return { uniforms, workgroups: grid(blocks * WG) };
}
