import { backward } from '../autograd.js';
import { ShapeError } from '../errors.js';
import { storageDecl } from '../kernels/common.js';
import { denseDispatch, rowBlockOffsets } from '../kernels/matmul/run.js';
import { runTextureMatmul, textureMatmulSizesSuit } from '../kernels/matmul/run-texture.js';
import { rowKernel, rowsPerGroup, runRowKernel } from '../kernels/rows.js';
import { record } from '../record.js';
import { getDevice, isGradEnabled, noGrad } from '../runtime.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { tensor } from './creation.js';
import { add, mul, scale } from './elementwise.js';
import { CROSS_ENTROPY_TARGET, crossEntropy } from './loss.js';
import { matmul, matmulRowBlocks } from './matmul.js';
import { sum } from './reduce.js';
import { concat, sliceAxis } from './shape-ops.js';

/** Options of {@link linearCrossEntropy}. */
export interface LinearCrossEntropyOptions {
  /** Targets equal to this contribute no loss and no gradient (default -100, as PyTorch). */
  ignoreIndex?: number;
  /** 'mean' over the targets that are not ignored (default; NaN when none is left) or 'sum'. */
  reduction?: 'mean' | 'sum';
  /**
   * Most bytes of logits held at once (default and upper bound: one storage binding). Rows are
   * taken in chunks of this many bytes of logits.
   */
  chunkBytes?: number;
}

/**
 * Cross entropy of the logits x·Wᵀ, W = [W_0; W_1; ...] stored as row blocks (an LM head whose
 * vocabulary exceeds one binding; one block otherwise), against one target per row of x [N, C],
 * without keeping the [N, V] logits: the same loss as crossEntropy(matmulRowBlocks(x, weights),
 * targets), in chunks of rows.
 *
 * Where the texture matmul runs (CPU adapters) each chunk's logits are computed into a buffer whose
 * rows are padded to whole vec4s, and one row kernel turns them in place into their gradient
 * (softmax − onehot, times the reduction's factor) while it computes the rows' losses. The input
 * gradient g·W (and, for weights that need one, the weight gradient gᵀ·x) is computed right then,
 * so the chunk is freed before the next: memory O(chunk·V), and no logits are kept for backward,
 * which only scales the stored gradients by the upstream one. A padded row is read as whole vec4s
 * by the input gradient's product (a row of V = 50,257 floats otherwise starts mid-vec4 and is read
 * element by element). Elsewhere each chunk's logits go through matmulRowBlocks and crossEntropy and
 * their gradient is taken at once too, so no adapter keeps more than a chunk of logits.
 *
 * `targets` are on the host (i32 class indices, one per row): the mean's count is taken from them.
 */
export function linearCrossEntropy(
  x: Tensor,
  weights: readonly Tensor[],
  targets: Int32Array,
  opts: LinearCrossEntropyOptions = {},
): Tensor {
  if (x.rank !== 2 || x.dtype !== 'f32')
    throw new ShapeError(`linearCrossEntropy: x must be f32 [N, C], got ${x.dtype} ${fmt(x.shape)}`);
  const [N, C] = x.shape;
  if (weights.length === 0) throw new ShapeError('linearCrossEntropy: no weight blocks');
  for (const w of weights)
    if (w.rank !== 2 || w.shape[1] !== C)
      throw new ShapeError(
        `linearCrossEntropy: weight block ${fmt(w.shape)} does not match x ${fmt(x.shape)}`,
      );
  if (targets.length !== N)
    throw new ShapeError(`linearCrossEntropy: ${targets.length} targets for ${N} rows (one each)`);
  const ignore = opts.ignoreIndex ?? -100;
  if (!Number.isInteger(ignore))
    throw new ShapeError(`linearCrossEntropy: ignoreIndex ${ignore} must be an integer`);
  const V = weights.reduce((s, w) => s + w.shape[0], 0);
  let kept = 0;
  for (const t of targets) if (t !== ignore) kept++;
  // 'mean' divides by the targets kept (NaN for none, as PyTorch); the gradient carries the factor.
  const factor = (opts.reduction ?? 'mean') === 'sum' ? 1 : 1 / kept;
  // Logit rows padded to whole vec4s, and to 16 floats: then 4 rows span a multiple of 256 bytes, so
  // the input gradient's blocks of 4,096 columns of them are copied into the product's texture, not
  // packed by a pass (see copyRowsToTexture).
  const Vp = Math.ceil(V / 16) * 16;
  const limit = getDevice().maxBindingBytes;
  const rows = Math.max(1, Math.min(N, Math.floor(Math.min(opts.chunkBytes ?? limit, limit) / (Vp * 4))));
  const chunks: Array<[number, number]> = [];
  for (let a = 0; a < N; a += rows) chunks.push([a, Math.min(N, a + rows)]);
  const needGrad = isGradEnabled() && (x.requiresGrad || weights.some((w) => w.requiresGrad));
  const plan = { chunks, ignore, factor, V, Vp, needGrad };
  const { out, dx, dws } = fusedSuits(x, weights, rows, Vp, needGrad)
    ? noGrad(() => fused(x, weights, targets, plan))
    : composed(x, weights, targets, plan);
  const result = record(out, 'linear_cross_entropy', [x, ...weights], (g) => {
    // The stored gradients are those of the loss itself; the upstream gradient g (a scalar) scales them.
    const by = (d: Tensor | null) => (d ? mul(d, g) : null);
    return [by(dx), ...dws.map(by)];
  });
  if (!result.node) {
    dx?.dispose();
    for (const d of dws) d?.dispose();
  }
  return result;
}

/** Whether every product of the fused path takes the texture matmul at this chunk size. */
function fusedSuits(
  x: Tensor,
  weights: readonly Tensor[],
  rows: number,
  Vp: number,
  needGrad: boolean,
): boolean {
  const C = x.shape[1];
  const [xs, ls] = [rows * C, rows * Vp];
  return weights.every(
    (w) =>
      textureMatmulSizesSuit([xs, w.size, ls], denseDispatch(rows, w.shape[0], C, { transB: true })) &&
      (!needGrad ||
        (textureMatmulSizesSuit([ls, w.size, xs], denseDispatch(rows, C, w.shape[0])) &&
          (!w.requiresGrad ||
            textureMatmulSizesSuit([ls, xs, w.size], denseDispatch(w.shape[0], C, rows, { transA: true }))))),
  );
}

/**
 * The loss and gradients from each chunk's logits through matmulRowBlocks and crossEntropy, where
 * the fused path does not run: the chunk's logit gradient is taken at once (backward on the chunk
 * alone), then g·W and gᵀ·x, so no chunk's logits outlive its turn here either.
 */
function composed(
  x: Tensor,
  weights: readonly Tensor[],
  targets: Int32Array,
  { chunks, ignore, factor, needGrad }: FusedPlan,
): Gradients {
  const offsets = rowBlockOffsets(weights);
  let total: Tensor | null = null;
  const dxParts: Tensor[] = [];
  let dws: Array<Tensor | null> = weights.map(() => null);
  for (const [a, b] of chunks) {
    const rows = a === 0 && b === x.shape[0] ? x : noGrad(() => sliceAxis(x, 0, a, b));
    const t = tensor(targets.subarray(a, b), [b - a], 'i32');
    const logits = noGrad(() => matmulRowBlocks(rows, weights));
    const xent = () => crossEntropy(logits, t, { reduction: 'sum', ignoreIndex: ignore });
    let part: Tensor;
    if (needGrad) {
      logits.requiresGrad = true;
      part = xent();
      backward(part);
      const g = logits.grad as Tensor;
      noGrad(() => {
        const cols = weights.map((w, i) =>
          weights.length === 1 ? g : sliceAxis(g, 1, offsets[i], offsets[i] + w.shape[0]),
        );
        if (x.requiresGrad)
          dxParts.push(cols.map((gi, i) => matmul(gi, weights[i])).reduce((acc, d) => addFreeing(acc, d)));
        dws = dws.map((prev, i) =>
          weights[i].requiresGrad ? addFreeing(prev, matmul(cols[i], rows, { transA: true })) : null,
        );
        for (const gi of cols) if (gi !== g) gi.dispose();
      });
      g.dispose();
      logits.grad = null;
    } else part = xent();
    logits.dispose();
    t.dispose();
    if (rows !== x) rows.dispose();
    total = noGrad(() => addFreeing(total, part));
  }
  return noGrad(() => {
    const by = (d: Tensor | null) => d && scaledFreeing(d, factor);
    return { out: scaledFreeing(total as Tensor, factor), dx: by(joinRows(dxParts)), dws: dws.map(by) };
  });
}

/** d·factor, freeing d (d itself when the factor is 1). */
function scaledFreeing(d: Tensor, factor: number): Tensor {
  if (factor === 1) return d;
  const s = scale(d, factor);
  d.dispose();
  return s;
}

/** prev + d, freeing both (d alone when there is no prev). */
function addFreeing(prev: Tensor | null, d: Tensor): Tensor {
  if (!prev) return d;
  const s = add(prev, d);
  prev.dispose();
  d.dispose();
  return s;
}

/** The chunks' input gradients as one [N, C] tensor (the parts freed), or null for none. */
function joinRows(parts: Tensor[]): Tensor | null {
  if (parts.length <= 1) return parts[0] ?? null;
  const joined = concat(parts, 0);
  for (const p of parts) p.dispose();
  return joined;
}

/** A loss with the gradients of its inputs stored (null where none is needed). */
interface Gradients {
  out: Tensor;
  dx: Tensor | null;
  dws: Array<Tensor | null>;
}

interface FusedPlan {
  chunks: ReadonlyArray<[number, number]>;
  ignore: number;
  factor: number;
  V: number;
  Vp: number;
  needGrad: boolean;
}

/** The loss, and the gradients of x and of the weights that need one, computed chunk by chunk. */
function fused(
  x: Tensor,
  weights: readonly Tensor[],
  targets: Int32Array,
  { chunks, ignore, factor, V, Vp, needGrad }: FusedPlan,
): Gradients {
  const [N, C] = x.shape;
  const offsets = rowBlockOffsets(weights);
  const losses = Tensor.empty([N], 'f32');
  const dxParts: Tensor[] = [];
  const dws = weights.map((w) => (needGrad && w.requiresGrad ? Tensor.empty(w.shape, 'f32') : null));
  for (const [ci, [a, b]] of chunks.entries()) {
    const R = b - a;
    const rows = a === 0 && b === N ? x : sliceAxis(x, 0, a, b);
    const logits = Tensor.empty([R, Vp], 'f32');
    weights.forEach((w, i) => {
      const view = { aCol: 0, aPitch: C, cCol: offsets[i], cPitch: Vp, accumulate: false };
      runTextureMatmul(rows, w, logits, denseDispatch(R, w.shape[0], C, { transB: true }), { view });
    });
    const t = tensor(targets.subarray(a, b), [R], 'i32');
    const chunkLosses = R === N ? losses : Tensor.empty([R], 'f32');
    lossAndGradientRows(logits, t, chunkLosses, { V, ignore, factor, grad: needGrad });
    if (chunkLosses !== losses) {
      getDevice().copy(chunkLosses.buffer, 0, losses.buffer, a * 4, R * 4);
      chunkLosses.dispose();
    }
    t.dispose();
    if (needGrad) {
      // The logits now hold their gradient g: dx = g·W over the blocks' columns of g, dW_i = g_iᵀ·x.
      if (x.requiresGrad) {
        const dx = Tensor.empty([R, C], 'f32');
        weights.forEach((w, i) => {
          const view = { aCol: offsets[i], aPitch: Vp, cCol: 0, cPitch: C, accumulate: i > 0 };
          runTextureMatmul(logits, w, dx, denseDispatch(R, C, w.shape[0]), { view });
        });
        dxParts.push(dx);
      }
      weights.forEach((w, i) => {
        const dw = dws[i];
        if (!dw) return;
        const view = { aCol: offsets[i], aPitch: Vp, cCol: 0, cPitch: C, accumulate: ci > 0 };
        runTextureMatmul(logits, rows, dw, denseDispatch(w.shape[0], C, R, { transA: true }), { view });
      });
    }
    logits.dispose();
    if (rows !== x) rows.dispose();
  }
  const total = sum(losses);
  losses.dispose();
  return { out: scaledFreeing(total, factor), dx: joinRows(dxParts), dws };
}

/**
 * One row kernel over logits [R, Vp] (rows padded to whole vec4s, V real columns): each row's loss
 * logsumexp − logit[target] into `losses` (0 when ignored, NaN for a target outside [0, V)) and,
 * with `grad`, the row replaced by its gradient (softmax − onehot(target))·factor (0 in the padding
 * and for ignored rows, NaN for invalid targets).
 */
function lossAndGradientRows(
  logits: Tensor,
  targets: Tensor,
  losses: Tensor,
  p: { V: number; ignore: number; factor: number; grad: boolean },
): void {
  const [R, Vp] = logits.shape;
  const rpw = rowsPerGroup(R);
  // Whole vec4s [0, V/4) in the loops; a last, partial vec4 (V not a multiple of 4) by one lane.
  const partial = p.V % 4 !== 0;
  const tail = (f: string) =>
    partial
      ? `  if (lid == 0u) { let i = P.c / 4u; let inside = vec4<u32>(i * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(P.c); ${f} }
`
      : '';
  runRowKernel(
    {
      key: `xent_fused:r${rpw}${partial ? ':t' : ''}`,
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'TG', 'i32', 'read')}
${storageDecl(1, 'X', 'vec4<f32>', 'read_write')}
${storageDecl(2, 'L', 'f32', 'read_write')}
PARAMS`,
          `  let base = row * P.vp4;
  var m = -3.4028234663852886e38;
  for (var i = lid; i < P.c / 4u; i += ROW_WG) {
    let v = X[base + i];
    m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
  }
${tail('let v = select(vec4<f32>(-3.4028234663852886e38), X[base + i], inside); m = max(m, max(max(v.x, v.y), max(v.z, v.w)));')}  m = wg_max(m, lid);
  var total = 0.0;
  for (var i = lid; i < P.c / 4u; i += ROW_WG) {
    let e = exp(X[base + i] - vec4<f32>(m));
    total += e.x + e.y + e.z + e.w;
  }
${tail('let e = select(vec4<f32>(0.0), exp(X[base + i] - vec4<f32>(m)), inside); total += e.x + e.y + e.z + e.w;')}  let lse = m + log(wg_sum(total, lid));
${CROSS_ENTROPY_TARGET}
  let ti = select(0u, u32(t), !ignored && !invalid);
  let tl = X[base + ti / 4u][ti % 4u];
  if (lid == 0u) { L[row] = select(select(lse - tl, P.nan, invalid), 0.0, ignored); }
  if (P.grad != 0u) {
    // Every lane has read the target's logit before any lane overwrites it.
    workgroupBarrier();
    let keep = !ignored;
    let bad = invalid;
    for (var i = lid; i < P.c / 4u; i += ROW_WG) {
      let k = vec4<i32>(i32(i * 4u)) + vec4<i32>(0, 1, 2, 3);
      let d = (exp(X[base + i] - vec4<f32>(lse)) - vec4<f32>(k == vec4<i32>(t))) * P.factor;
      X[base + i] = select(select(d, vec4<f32>(P.nan), bad), vec4<f32>(0.0), !keep);
    }
${tail(`let k = vec4<i32>(i32(i * 4u)) + vec4<i32>(0, 1, 2, 3);
      let d = (exp(X[base + i] - vec4<f32>(lse)) - vec4<f32>(k == vec4<i32>(t))) * P.factor;
      X[base + i] = select(select(select(vec4<f32>(0.0), d, inside), vec4<f32>(P.nan), bad), vec4<f32>(0.0), !keep);`)}  }`,
          rpw,
        ),
      inputs: [targets],
      outputs: [logits, losses],
      uniforms: [
        ['c', 'u32', p.V],
        ['ignore', 'i32', p.ignore],
        ['nan', 'f32', Number.NaN],
        ['vp4', 'u32', Vp / 4],
        ['factor', 'f32', p.factor],
        ['grad', 'u32', p.grad ? 1 : 0],
      ],
    },
    R,
    new Map([
      [logits, Vp],
      [targets, 1],
      [losses, 1],
    ]),
    rpw,
  );
}
