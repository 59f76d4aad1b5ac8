import { assertDType, isHalf } from '../dtype.js';
import { DTypeError, ShapeError } from '../errors.js';
import { denseDispatch, type MatmulDispatch, rowBlockOffsets, runMatmul } from '../kernels/matmul/run.js';
import { runTextureMatmul, textureMatmulSuits } from '../kernels/matmul/run-texture.js';
import { QuantizedTensor } from '../quant/tensor.js';
import { record } from '../record.js';
import { isGradEnabled, noGrad } from '../runtime.js';
import { broadcastShapes, fmt, numel, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { zeros } from './creation.js';
import { add, cast } from './elementwise.js';
import { sumToShape } from './reduce-kernels.js';
import { concat } from './shape-ops.js';
import { sumOnto } from './sum-onto.js';

/**
 * Transposes for {@link matmul} (both default false) and a scale of the product. The kernels read
 * the operand transposed, so no transposed copy is made, and apply the scale as they store each
 * element, so it costs no pass of its own (nor in the backward products).
 */
export interface MatmulOptions {
  /** Use the transpose of a's last two dims. */
  transA?: boolean;
  /** Use the transpose of b's last two dims (nn.Linear's [out, in] weight). */
  transB?: boolean;
  /** Scale of the product: alpha·op(a)·op(b) (default 1). */
  alpha?: number;
  /**
   * Added to every row of the product, after it: [N] f32 (nn.Linear's bias). Where the product runs
   * on the texture path (CPU adapters) its own pass adds it; elsewhere an add pass does. Only for a
   * 2-D b without transA (any other product adds it with an add pass too).
   */
  bias?: Tensor;
}

/** Runs fn on an f32 copy of a half-precision tensor, freed as soon as fn has recorded its work. */
function withF32<T>(t: Tensor, fn: (t32: Tensor) => T): T {
  const t32 = cast(t, 'f32');
  try {
    return fn(t32);
  } finally {
    t32.dispose();
  }
}

/**
 * Batched matrix product op(a)·op(b) over the last two dims, with numpy broadcasting of batch dims.
 * A 2-D b against a batched a is computed as one flat GEMM (the Linear / LoRA case).
 *
 * b may be a frozen f16/bf16 tensor (a base weight kept in half precision). The kernels read it as
 * stored, converting each loaded value to f32, for the product and for a's gradient, so no
 * full-precision copy of the weight is ever made. Only op(a) = aᵀ with a half b takes a temporary
 * f32 copy of b (its gradient needs b as the left operand).
 *
 * b may also be a quantized weight (QuantizedTensor, quant/): the product and a's gradient decode
 * it tile by tile as the kernels load it, never as a whole. It has no gradient and does not take
 * transA.
 */
export function matmul(a: Tensor, b: Tensor | QuantizedTensor, opts: MatmulOptions = {}): Tensor {
  return product(a, b, opts, null);
}

/**
 * input + alpha·op(a)·op(b) (torch.addmm with beta 1) for a 2-D b and an input of the product's
 * shape: the product is accumulated onto a copy of input by the product's own pass, with no
 * separate add or scale pass. A LoRA branch is added into its base layer's output this way. Other
 * shapes are computed as add(input, matmul(a, b, opts)). Gradients: input's is the upstream
 * gradient, a's and b's those of the scaled product.
 */
export function addmm(
  input: Tensor,
  a: Tensor,
  b: Tensor | QuantizedTensor,
  opts: MatmulOptions = {},
): Tensor {
  assertDType(input.dtype, ['f32'], 'addmm');
  if (!productFits(a, b, opts, input)) return add(input, matmul(a, b, opts));
  return product(a, b, opts, input);
}

/**
 * Whether addmm can accumulate onto a copy of input: one flat product whose output has input's
 * shape (a transposed a only as a matrix, as in a weight's gradient Xᵀ·dH).
 */
function productFits(a: Tensor, b: Tensor | QuantizedTensor, opts: MatmulOptions, input: Tensor): boolean {
  if (
    b.shape.length !== 2 ||
    a.rank < 2 ||
    (opts.transA && (a.rank !== 2 || !(b instanceof Tensor) || b.dtype !== 'f32'))
  )
    return false;
  const N = opts.transB ? b.shape[0] : b.shape[1];
  const rows = opts.transA ? [a.shape[1]] : a.shape.slice(0, -1);
  return shapesEqual(input.shape, [...rows, N]);
}

/**
 * prior + alpha·op(a)·op(b) for a gradient that a backward rule sums onto (see GradNode.backwardOnto):
 * when no other tensor shares prior's storage, the product accumulates into prior's own buffer
 * instead of into a copy of it (no copy, no new buffer). The result is then a view of prior.
 */
function addmmOnto(prior: Tensor, a: Tensor, b: Tensor | QuantizedTensor, opts: MatmulOptions): Tensor {
  const owned =
    !isGradEnabled() && prior.dtype === 'f32' && prior.storage.refs === 1 && productFits(a, b, opts, prior);
  return owned ? product(a, b, opts, prior, true) : addmm(prior, a, b, opts);
}

/**
 * Where a product accumulating onto input writes: input itself (a view of it) when `inPlace`, else a
 * new f32 tensor holding input's values, copied in the current batch (a copy, not a pass).
 */
function accumulator(input: Tensor, inPlace: boolean): Tensor {
  if (inPlace) return input.view(input.shape);
  const out = Tensor.empty(input.shape, 'f32');
  if (out.size > 0) {
    const src = input.binding();
    const dst = out.binding();
    input.device.copy(src.buffer, src.offset ?? 0, dst.buffer, dst.offset ?? 0, out.size * 4);
  }
  return out;
}

/**
 * matmul, or with `input` (see addmm) the product accumulated onto a copy of it, or onto input itself
 * with `inPlace` (see addmmOnto).
 */
function product(
  a: Tensor,
  b: Tensor | QuantizedTensor,
  opts: MatmulOptions,
  input: Tensor | null,
  inPlace = false,
): Tensor {
  const { bias, ...rest } = opts;
  if (bias) {
    assertDType(bias.dtype, ['f32'], 'matmul bias');
    const N = opts.transB ? b.shape[0] : b.shape[b.shape.length - 1];
    if (bias.rank !== 1 || bias.shape[0] !== N)
      throw new ShapeError(`matmul: bias ${fmt(bias.shape)} does not match the product's ${N} columns`);
    if (!(b instanceof Tensor && b.rank === 2 && !opts.transA && a.rank >= 2 && a.size > 0))
      return add(product(a, b, rest, input, inPlace), bias);
  }
  if (b instanceof QuantizedTensor) return matmulQuantized(a, b, opts.transB ?? false, opts, input, inPlace);
  assertDType(a.dtype, ['f32'], 'matmul');
  assertDType(b.dtype, ['f32', 'f16', 'bf16'], 'matmul');
  if (isHalf(b.dtype)) {
    if (b.requiresGrad)
      throw new DTypeError(
        `matmul: a ${b.dtype} operand cannot require grad (half-precision weights are frozen)`,
      );
    if (opts.transA) {
      const out = noGrad(() => withF32(b, (b32) => matmul(a, b32, opts)));
      return record(out, 'matmul', [a], (g) => [withF32(b, (b32) => gradA(a, b32, g, opts))]);
    }
  }
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const alpha = opts.alpha ?? 1;
  if (a.rank < 2 || b.rank < 2)
    throw new ShapeError(`matmul needs rank >= 2 operands, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  if (K !== Kb) {
    throw new ShapeError(
      `matmul: inner dims differ: ${fmt(a.shape)}${transA ? 'ᵀ' : ''} · ${fmt(b.shape)}${transB ? 'ᵀ' : ''} (${K} vs ${Kb})`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes(aBatch, bBatch, 'matmul');
  const batch = numel(batchShape);
  // An empty inner dimension sums nothing: zeros (the kernels cannot bind empty operands).
  const out = input
    ? accumulator(input, inPlace)
    : K === 0
      ? zeros([...batchShape, M, N])
      : Tensor.empty([...batchShape, M, N], 'f32');
  const epilogue = { alpha, accumulate: input !== null };
  // The bias when the product's own pass adds it; otherwise an add pass does, after the record.
  let fusedBias: Tensor | null = null;
  if (out.size > 0 && K > 0) {
    if (b.rank === 2 && !transA) {
      // Fold a's batch into M: one large GEMM instead of many small ones.
      const d = { M: batch * M, N, K, batch: 1, transA, transB, strideA: 0, strideB: 0, strideC: 0 };
      if (opts.bias && textureMatmulSuits(a, b, out, d)) fusedBias = opts.bias;
      runMatmul(a, b, out, d, { ...epilogue, bias: fusedBias ?? undefined });
    } else {
      const aFull =
        numel(aBatch) === batch &&
        shapesEqual(aBatch.length ? aBatch : [1], batchShape.length ? batchShape : [1]);
      const bFull =
        numel(bBatch) === batch &&
        shapesEqual(bBatch.length ? bBatch : [1], batchShape.length ? batchShape : [1]);
      const aStride = numel(aBatch) === 1 ? 0 : aFull ? M * K : -1;
      const bStride = numel(bBatch) === 1 ? 0 : bFull ? K * N : -1;
      if (aStride < 0 || bStride < 0) {
        throw new ShapeError(
          `matmul: batch dims ${fmt(aBatch)} and ${fmt(bBatch)} must match or be broadcast from size 1`,
        );
      }
      runMatmul(
        a,
        b,
        out,
        {
          M,
          N,
          K,
          batch,
          transA,
          transB,
          strideA: aStride,
          strideB: bStride,
          strideC: M * N,
        },
        epilogue,
      );
    }
  }
  const inputs = [...(input ? [input] : []), a, b, ...(fusedBias ? [fusedBias] : [])];
  const grads = (g: Tensor, prior: readonly (Tensor | null)[] = []) => {
    const [pIn, pA, pB, pBias] = input ? prior : [null, ...prior];
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (a.requiresGrad) da = gradA(a, b, g, opts, pA ?? null);
    if (b.requiresGrad) {
      // A weight used by several layers (a shared LoRA matrix) has the other uses' gradient as
      // prior: the product's own pass sums onto it (addmm), with no add pass after it.
      const onto = (x: Tensor, y: Tensor, o: MatmulOptions) =>
        pB ? addmmOnto(pB, x, y, o) : matmul(x, y, o);
      if (b.rank === 2 && !transA && a.rank > 2) {
        // Flatten batch so the weight gradient is a single skinny GEMM (Xᵀ·dH for LoRA).
        const a2 = a.view([a.size / a.shape[a.rank - 1], a.shape[a.rank - 1]]);
        const g2 = g.view([g.size / N, N]);
        db = transB ? onto(g2, a2, { transA: true, alpha }) : onto(a2, g2, { transA: true, alpha });
        a2.dispose();
        g2.dispose();
      } else if (a.rank === 2 && b.rank === 2) {
        db = transB
          ? onto(g, a, { transA: true, transB: transA, alpha })
          : onto(a, g, { transA: !transA, alpha });
      } else {
        const full = transB
          ? matmul(g, a, { transA: true, transB: transA, alpha })
          : matmul(a, g, { transA: !transA, alpha });
        db = sumOnto(pB ?? null, reduceTo(full, b.shape));
      }
    }
    // The bias's gradient: the upstream gradient summed over rows.
    const dBias = fusedBias?.requiresGrad ? sumOnto(pBias ?? null, sumToShape(g, fusedBias.shape)) : null;
    return [...(input ? [sumOnto(pIn ?? null, g)] : []), da, db, ...(fusedBias ? [dBias] : [])];
  };
  const result = record(out, input ? 'addmm' : 'matmul', inputs, (g) => grads(g), grads);
  return opts.bias && !fusedBias ? add(result, opts.bias) : result;
}

/** a·op(q) for a quantized q, folding a's batch dims into rows; its backward gives a's gradient only. */
function matmulQuantized(
  a: Tensor,
  q: QuantizedTensor,
  transB: boolean,
  opts: MatmulOptions,
  input: Tensor | null,
  inPlace: boolean,
): Tensor {
  assertDType(a.dtype, ['f32'], 'matmul');
  if (q.isDisposed) throw new ShapeError(`matmul: ${q} was disposed`);
  if (opts.transA) throw new ShapeError('matmul: a quantized b does not take transA');
  const K = a.shape[a.rank - 1];
  const [Kb, N] = transB ? [q.shape[1], q.shape[0]] : q.shape;
  if (a.rank < 1 || K !== Kb)
    throw new ShapeError(
      `matmul: inner dims differ: ${fmt(a.shape)} · ${q}${transB ? 'ᵀ' : ''} (${K} vs ${Kb})`,
    );
  const out = input ? accumulator(input, inPlace) : Tensor.empty([...a.shape.slice(0, -1), N], 'f32');
  const alpha = opts.alpha ?? 1;
  if (out.size > 0) {
    const M = a.size / K;
    const d = { M, N, K, batch: 1, transA: false, transB, strideA: 0, strideB: 0, strideC: 0 };
    runMatmul(a, q, out, d, { alpha, accumulate: input !== null });
  }
  // Onto a prior gradient of a, the product is accumulated by its own pass (addmm).
  const grads = (g: Tensor, prior: readonly (Tensor | null)[] = []) => {
    const [pIn, pA] = input ? prior : [null, ...prior];
    const back = { transB: !transB, alpha };
    const da = pA ? addmmOnto(pA, g, q, back) : matmul(g, q, back);
    return input ? [sumOnto(pIn ?? null, g), da] : [da];
  };
  return record(out, input ? 'addmm' : 'matmul', input ? [input, a] : [a], (g) => grads(g), grads);
}

/**
 * d(op(a)·op(b))/da for the upstream gradient g, plus `prior` when given: where the product has a's
 * shape (no transposed a, no broadcast batch), it is accumulated onto prior by its own pass.
 */
function gradA(a: Tensor, b: Tensor, g: Tensor, opts: MatmulOptions, prior: Tensor | null = null): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const alpha = opts.alpha;
  if (
    prior &&
    !transA &&
    shapesEqual([...g.shape.slice(0, -1), transB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]], a.shape)
  )
    return addmmOnto(prior, g, b, { transB: !transB, alpha });
  const full = transA
    ? matmul(b, g, { transA: transB, transB: true, alpha })
    : matmul(g, b, { transB: !transB, alpha });
  return sumOnto(prior, reduceTo(full, a.shape));
}

function reduceTo(t: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(t.shape, shape)) return t;
  const r = sumToShape(t, shape);
  t.dispose();
  return r;
}

/**
 * x·Wᵀ for a weight stored as row blocks W = [W_0; W_1; ...] (each [n_i, K], f32 or a frozen
 * f16/bf16): [..., Σ n_i], the same values as concatenating the blocks' products along the last
 * axis. An LM head whose vocabulary does not fit one storage binding is stored this way. Where the
 * texture matmul runs (CPU adapters), each block's product is written straight into its columns of
 * the output, and the backward pass reads the gradient's columns in place: no concatenation or
 * slicing of the [positions, vocabulary] logits. Elsewhere it is that concatenation.
 */
export function matmulRowBlocks(x: Tensor, blocks: readonly Tensor[]): Tensor {
  if (blocks.length === 0) throw new ShapeError('matmulRowBlocks: no blocks');
  const K = x.shape[x.rank - 1];
  for (const w of blocks)
    if (w.rank !== 2 || w.shape[1] !== K)
      throw new ShapeError(`matmulRowBlocks: block ${fmt(w.shape)} does not match ${fmt(x.shape)}ᵀ`);
  const V = blocks.reduce((s, w) => s + w.shape[0], 0);
  const M = x.size / Math.max(1, K);
  const out = Tensor.empty([...x.shape.slice(0, -1), V], 'f32');
  const offsets = rowBlockOffsets(blocks);
  const forward = (w: Tensor): MatmulDispatch => denseDispatch(M, w.shape[0], K, { transB: true });
  if (
    blocks.length === 1 ||
    x.rank < 2 ||
    x.dtype !== 'f32' ||
    K === 0 ||
    !blocks.every((w) => textureMatmulSuits(x, w, out, forward(w)))
  ) {
    out.dispose();
    const parts = blocks.map((w) => matmul(x, w, { transB: true }));
    return parts.length === 1 ? parts[0] : concat(parts, -1);
  }
  blocks.forEach((w, i) => {
    const view = { aCol: 0, aPitch: K, cCol: offsets[i], cPitch: V, accumulate: false };
    runTextureMatmul(x, w, out, forward(w), { view });
  });
  return record(out, 'matmul', [x, ...blocks], (g) => {
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      // dx = Σ_i g[:, block i]·W_i: each block's columns of g as A, summed into dx.
      dx = Tensor.empty(x.shape, 'f32');
      blocks.forEach((w, i) => {
        const d = denseDispatch(M, K, w.shape[0]);
        const view = { aCol: offsets[i], aPitch: V, cCol: 0, cPitch: K, accumulate: i > 0 };
        runTextureMatmul(g, w, dx as Tensor, d, { view });
      });
    }
    // dW_i = g[:, block i]ᵀ·x.
    const dws = blocks.map((w, i) => {
      if (!w.requiresGrad) return null;
      const dw = Tensor.empty(w.shape, 'f32');
      const d = denseDispatch(w.shape[0], K, M, { transA: true });
      const view = { aCol: offsets[i], aPitch: V, cCol: 0, cPitch: K, accumulate: false };
      runTextureMatmul(g, x, dw, d, { view });
      return dw;
    });
    return [dx, ...dws];
  });
}
