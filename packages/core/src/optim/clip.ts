import { runKernel, storageDecl, type UniformField } from '../kernels/common.js';
import {
  dispatchGroups,
  elementRanges,
  elementwiseOverTensors,
  tensorsPerDispatch,
  workgroupRanges,
} from '../kernels/multi-tensor.js';
import { rowGrid, rowKernel } from '../kernels/rows.js';
import type { Parameter } from '../nn/module.js';
import { zeros } from '../ops/creation.js';
import { type Storage, Tensor } from '../tensor.js';

/** Workgroups per gradient for the sum of squares: enough to fill a GPU, few enough that the combine is one pass. */
const MAX_PARTIALS = 256;
/** Gradient elements per partial sum (a multiple of any row width). */
const PER_GROUP = 4096;

/** Partial sums of squares of one gradient (workgroups that each sum a strided share of it). */
const partialRows = (g: Tensor) => Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(g.size / PER_GROUP)));

/**
 * Global L2 norm of all gradients, with every gradient scaled in place by min(1, maxNorm/(norm + 1e-6))
 * as torch.nn.utils.clip_grad_norm_. Runs entirely on the GPU (per-gradient partial sums of squares,
 * one combine, one scale per gradient) and returns the norm before clipping as a scalar tensor, so the
 * training loop never waits for a readback. Parameters without a gradient are ignored.
 */
export function clipGradNorm(params: Iterable<Parameter | Tensor>, maxNorm: number): Tensor {
  const grads: Tensor[] = [];
  for (const p of new Set(params)) {
    if (p.grad) grads.push(p.grad);
  }
  if (grads.length === 0) return zeros([]);
  const partials = Tensor.empty([grads.reduce((a, g) => a + partialRows(g), 0)], 'f32', 'other');
  // Several gradients per dispatch (each bound once, the partial sums once). In a dispatch whose
  // first partial is P.base, gradient j owns its rows [P.o<j>, P.o<j> + P.r<j>), each a strided
  // share of its elements.
  let base = 0;
  for (const group of dispatchGroups(grads, tensorsPerDispatch(1, 1))) {
    const n = group.length;
    const first: number[] = [];
    let groupRows = 0;
    for (const g of group) {
      first.push(groupRows);
      groupRows += partialRows(g);
    }
    const sumsq = (j: number) =>
      `    for (var i = (row - P.o${j}) * ROW_WG + lid; i < P.n${j}; i += P.r${j} * ROW_WG) { let v = G${j}[i]; s += v * v; }`;
    runKernel({
      key: `grad_sumsq:${n}`,
      wgsl: () =>
        rowKernel(
          `${group.map((_, j) => storageDecl(j, `G${j}`, 'f32', 'read')).join('\n')}
${storageDecl(n, 'S', 'f32', 'read_write')}
PARAMS`,
          `  let blk = row;
  var s = 0.0;
  ${workgroupRanges(n, 'o', sumsq)}
  let t = wg_sum(s, lid);
  if (lid == 0u) { S[P.base + row] = t; }`,
        ),
      inputs: group,
      outputs: [partials],
      uniforms: [
        ['rows', 'u32', groupRows],
        ['base', 'u32', base],
        ...group.flatMap((g, j): UniformField[] => [
          [`o${j}`, 'u32', first[j]],
          [`r${j}`, 'u32', partialRows(g)],
          [`n${j}`, 'u32', g.size],
        ]),
      ],
      workgroups: rowGrid(groupRows),
    });
    base += groupRows;
  }
  const norm = Tensor.empty([], 'f32');
  const coef = Tensor.empty([1], 'f32', 'other');
  runKernel({
    key: 'grad_norm_combine',
    wgsl: () =>
      rowKernel(
        `${storageDecl(0, 'S', 'f32', 'read')}\n${storageDecl(1, 'N', 'f32', 'read_write')}\n${storageDecl(2, 'C', 'f32', 'read_write')}\nPARAMS`,
        `  var s = 0.0;
  for (var i = lid; i < P.n; i += ROW_WG) { s += S[i]; }
  let nrm = sqrt(wg_sum(s, lid));
  if (lid == 0u) { N[0] = nrm; C[0] = min(1.0, P.max_norm / (nrm + 1e-6)); }`,
      ),
    inputs: [partials],
    outputs: [norm, coef],
    uniforms: [
      ['rows', 'u32', 1],
      ['n', 'u32', base],
      ['max_norm', 'f32', maxNorm],
    ],
    workgroups: [1, 1, 1],
  });
  // Gradients of different parameters may share one storage (a backward rule returning the same tensor
  // for two inputs): scale each storage once, several per dispatch.
  const storages = new Map<Storage, Tensor>();
  for (const g of grads) if (!storages.has(g.storage)) storages.set(g.storage, g);
  for (const group of dispatchGroups([...storages.values()], tensorsPerDispatch(1, 1))) {
    const ranges = elementRanges(group);
    runKernel({
      key: `grad_scale:${group.length}`,
      wgsl: () =>
        elementwiseOverTensors(
          group.length,
          `${storageDecl(0, 'C', 'f32', 'read')}
${group.map((_, j) => storageDecl(1 + j, `G${j}`, 'f32', 'read_write')).join('\n')}`,
          (j) => `      G${j}[i] = G${j}[i] * C[0];`,
        ),
      inputs: [coef],
      outputs: group,
      uniforms: ranges.uniforms,
      workgroups: ranges.workgroups,
    });
  }
  partials.dispose();
  coef.dispose();
  return norm;
}

/** clipGradNorm, then reads the norm back (one GPU sync; use outside the hot path or for logging). */
export async function clipGradNormAsync(
  params: Iterable<Parameter | Tensor>,
  maxNorm: number,
): Promise<number> {
  const norm = clipGradNorm(params, maxNorm);
  try {
    return await norm.item();
  } finally {
    norm.dispose();
  }
}
