import { grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import { rowGrid, rowKernel } from '../kernels/rows.js';
import type { Parameter } from '../nn/module.js';
import { zeros } from '../ops/creation.js';
import { type Storage, Tensor } from '../tensor.js';

/** Workgroups per gradient for the sum of squares: enough to fill a GPU, few enough that the combine is one pass. */
const MAX_PARTIALS = 256;
/** Gradient elements per partial sum (a multiple of any row width). */
const PER_GROUP = 4096;

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
  const groups = grads.map((g) => Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(g.size / PER_GROUP))));
  const partials = Tensor.empty([groups.reduce((a, b) => a + b, 0)], 'f32', 'other');
  let off = 0;
  grads.forEach((g, k) => {
    runKernel({
      key: 'grad_sumsq',
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'G', 'f32', 'read')}\n${storageDecl(1, 'S', 'f32', 'read_write')}\nPARAMS`,
          `  var s = 0.0;
  for (var i = row * ROW_WG + lid; i < P.n; i += P.rows * ROW_WG) { let v = G[i]; s += v * v; }
  let t = wg_sum(s, lid);
  if (lid == 0u) { S[P.off + row] = t; }`,
        ),
      inputs: [g],
      outputs: [partials],
      uniforms: [
        ['rows', 'u32', groups[k]],
        ['n', 'u32', g.size],
        ['off', 'u32', off],
      ],
      workgroups: rowGrid(groups[k]),
    });
    off += groups[k];
  });
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
      ['n', 'u32', off],
      ['max_norm', 'f32', maxNorm],
    ],
    workgroups: [1, 1, 1],
  });
  // Gradients of different parameters may share one storage (a backward rule returning the same tensor
  // for two inputs): scale each storage once.
  const scaled = new Set<Storage>();
  for (const g of grads) {
    if (scaled.has(g.storage)) continue;
    scaled.add(g.storage);
    runKernel({
      key: 'grad_scale',
      wgsl: () => `${storageDecl(0, 'C', 'f32', 'read')}
${storageDecl(1, 'G', 'f32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  G[gi] = G[gi] * C[0];
}`,
      inputs: [coef],
      outputs: [g],
      uniforms: [['n', 'u32', g.size]],
      workgroups: grid(g.size),
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
