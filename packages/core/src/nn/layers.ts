import { type FloatDType, isHalf } from '../dtype.js';
import { ShapeError, ShareloraError } from '../errors.js';
import { ones, zeros } from '../ops/creation.js';
import { dropout } from '../ops/dropout.js';
import { add, cast } from '../ops/elementwise.js';
import { embedding } from '../ops/embedding.js';
import { addmm, matmul } from '../ops/matmul.js';
import { layerNorm, rmsNorm } from '../ops/norm.js';
import { reshape } from '../ops/shape-ops.js';
import type { QuantFormat } from '../quant/formats.js';
import type { QuantStorage } from '../quant/ggml.js';
import { QuantizedTensor, quantize } from '../quant/tensor.js';
import { defaultRng, kaimingUniform, Rng, randn, randUniform } from '../rng.js';
import { fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { Module, Parameter } from './module.js';

const rngOf = (r: Rng | number | undefined): Rng =>
  r === undefined ? defaultRng() : typeof r === 'number' ? new Rng(r) : r;

/** Stores an f32 initial value as `dtype` (rounding to the nearest half). */
function asDType(t: Tensor, dtype: FloatDType): Tensor {
  if (dtype === 'f32') return t;
  const out = cast(t, dtype);
  t.dispose();
  return out;
}

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Add a bias of [out] (default true). It is always f32 and is trainable or frozen with the weight. */
  bias?: boolean;
  /** 'out_in': nn.Linear's [out, in] weight. 'in_out': GPT-2's Conv1D, weight stored [in, out]. */
  layout?: 'out_in' | 'in_out';
  /** Generator (or seed) for the initial values; default the process-wide one (manualSeed()). */
  rng?: Rng | number;
  /**
   * Default true, except for a half-precision weight, which must be frozen (true then throws
   * {@link DTypeError}). Applies to the bias too.
   */
  trainable?: boolean;
  /** false: start from zeros (cheap, on the GPU) for weights a checkpoint load will overwrite. */
  init?: boolean;
  /**
   * Storage of the weight (default f32; the bias is always f32). 'f16'/'bf16' halve a frozen base
   * weight's memory; the matmul kernels read it as stored (see matmul).
   */
  dtype?: FloatDType;
  /**
   * Keep the weight quantized (a frozen base, as QLoRA): its packed buffers are allocated, unwritten,
   * for a loader to fill through `quantized.write()`; no full-precision weight is ever allocated.
   * Implies frozen and no init.
   */
  quantize?: QuantStorage;
}

/**
 * y = x·Wᵀ + b (out_in) or x·W + b (in_out). Initialised as torch.nn.Linear.reset_parameters: W from
 * kaiming_uniform(a=√5), i.e. U(±1/sqrt(in)), then b from U(±1/sqrt(in)), both from the same generator.
 */
export class Linear extends Module {
  readonly layout: 'out_in' | 'in_out';
  weight: Parameter;
  bias: Parameter | null;
  /**
   * The quantized base weight after quantizeWeight(); forward and backward then read it (weight's
   * value is its packed codes, frozen, as bitsandbytes' Linear4bit keeps them).
   */
  quantized: QuantizedTensor | null = null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    this.layout = opts.layout ?? 'out_in';
    const rng = rngOf(opts.rng);
    const dtype = opts.dtype ?? 'f32';
    const trainable = opts.trainable ?? !isHalf(dtype);
    const shape = this.layout === 'out_in' ? [outFeatures, inFeatures] : [inFeatures, outFeatures];
    const init = opts.init ?? true;
    if (opts.quantize) {
      if (opts.trainable)
        throw new ShareloraError(
          'QUANTIZED',
          'a quantized Linear weight is a frozen base: it cannot be trainable',
        );
      const q = QuantizedTensor.allocate(opts.quantize, [shape[0], shape[1]]);
      this.weight = new Parameter(q.codes, { trainable: false, shape });
      this.holdScales(q);
    } else {
      const w = init
        ? asDType(kaimingUniform(shape, rng, Math.sqrt(5), { fanIn: inFeatures }), dtype)
        : zeros(shape, dtype);
      this.weight = new Parameter(w, { trainable });
    }
    const bound = 1 / Math.sqrt(inFeatures);
    const b = () => (init ? randUniform([outFeatures], -bound, bound, rng) : zeros([outFeatures]));
    this.bias = (opts.bias ?? true) ? new Parameter(b(), { trainable }) : null;
  }

  /**
   * x·Wᵀ + b, or with `residual` (of the output's shape) residual + x·Wᵀ + b: the product is then
   * accumulated onto a copy of the residual by its own pass (addmm), with no separate add pass, as
   * a transformer block's output projections add onto the residual stream. Where the product runs
   * on packed textures (CPU adapters) the bias is added by the product's pass too.
   */
  forward(x: Tensor, residual?: Tensor): Tensor {
    if (x.rank === 1) {
      const r2 = residual && reshape(residual, [1, this.outFeatures]);
      return reshape(this.forward(reshape(x, [1, x.shape[0]]), r2), [this.outFeatures]);
    }
    const w = this.quantized ?? this.weight.value;
    // The bias rides on the product (added by its own pass where the kernels allow).
    const opts = { transB: this.layout === 'out_in', bias: this.bias?.value };
    if (!residual) return matmul(x, w, opts);
    if (residual.dtype === 'f32') return addmm(residual, x, w, opts);
    return add(residual, matmul(x, w, opts));
  }

  /**
   * Replaces the weight by its quantization (QLoRA's frozen base): nf4/fp4 in blocks of 64 with
   * double-quantized absmax, or int8 per row. The full-precision weight is freed; `weight` keeps
   * its name and holds the packed codes (frozen), `quantized` all of it. The bias is unchanged.
   */
  async quantizeWeight(format: QuantFormat): Promise<QuantizedTensor> {
    if (this.quantized)
      throw new ShareloraError('QUANTIZED', `this layer is already quantized (${this.quantized})`);
    const w = this.weight.value;
    const values = isHalf(w.dtype) ? cast(w, 'f32') : w;
    const q = await quantize(values, format);
    if (values !== w) values.dispose();
    this.setQuantized(q);
    return q;
  }

  /**
   * Makes `q` this layer's frozen weight, freeing the one it replaces (full-precision or quantized in
   * another format): how a loader puts in a weight whose stored format it learns only as it reads
   * it. `q` has the weight's shape as stored.
   */
  setQuantized(q: QuantizedTensor): void {
    const shape = this.weight.shape;
    if (q.shape[0] !== shape[0] || q.shape[1] !== shape[1])
      throw new ShapeError(`Linear.setQuantized: ${q} does not fit a weight of shape ${fmt(shape)}`);
    if (this.quantized?.absmax2 && !q.absmax2)
      throw new ShareloraError('QUANTIZED', `Linear.setQuantized: cannot replace ${this.quantized} by ${q}`);
    this.weight.trainable = false;
    this.weight.setPacked(q.codes, shape);
    this.holdScales(q);
  }

  /** Makes `q` this layer's weight: its scales become module buffers, disposed with the layer. */
  private holdScales(q: QuantizedTensor): void {
    this.quantized = q;
    this.registerBuffer('weight_scales', q.scales);
    if (q.absmax2) this.registerBuffer('weight_absmax2', q.absmax2);
  }
}

/** Options of {@link Embedding}. */
export interface EmbeddingOptions {
  /** Standard deviation of the normal init; PyTorch's default is 1 (GPT-2/LLaMA checkpoints use 0.02). */
  std?: number;
  /** Generator (or seed) for the initial values; default the process-wide one ({@link defaultRng}). */
  rng?: Rng | number;
  /** Default true, except for a half-precision table, which must be frozen. */
  trainable?: boolean;
  /** false: start from zeros (cheap, on the GPU) for weights a checkpoint load will overwrite. */
  init?: boolean;
  /** Storage of the table (default f32); a frozen 'f16'/'bf16' table is gathered from directly. */
  dtype?: FloatDType;
}

/** Lookup table [numEmbeddings, dim]; forward takes i32 ids of any shape. */
export class Embedding extends Module {
  weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    opts: EmbeddingOptions = {},
  ) {
    super();
    const dtype = opts.dtype ?? 'f32';
    const w =
      (opts.init ?? true)
        ? asDType(randn([numEmbeddings, dim], { rng: rngOf(opts.rng), std: opts.std ?? 1 }), dtype)
        : zeros([numEmbeddings, dim], dtype);
    this.weight = new Parameter(w, { trainable: opts.trainable ?? !isHalf(dtype) });
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight.value, ids);
  }
}

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions {
  /** Added to the variance before the square root (default 1e-5, as torch). */
  eps?: number;
  /** Learnable scale and shift (default true). */
  affine?: boolean;
  /** With affine, whether there is a shift (default true). */
  bias?: boolean;
}

export class LayerNorm extends Module {
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(
    readonly dim: number,
    opts: LayerNormOptions = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? new Parameter(ones([dim])) : null;
    this.bias = affine && (opts.bias ?? true) ? new Parameter(zeros([dim])) : null;
    // The kernel always scales; a constant gamma of ones stands in when there is no learnable one.
    if (!affine) this.registerBuffer('ones', ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight?.value ?? this.buffer('ones'), this.bias?.value ?? null, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly eps: number;
  weight: Parameter;

  constructor(
    readonly dim: number,
    opts: { eps?: number } = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.weight = new Parameter(ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight.value, this.eps);
  }
}

/**
 * Inverted dropout, active only in training mode. Each call draws its mask from (seed, offset) and then
 * advances offset past the elements it used, so a run's masks are fixed by the seed and resumable from
 * `offset` (save it with a checkpoint).
 */
export class Dropout extends Module {
  readonly seed: number;
  offset = 0;

  constructor(
    readonly p: number,
    opts: { seed?: number; rng?: Rng } = {},
  ) {
    super();
    if (!(p >= 0 && p < 1))
      throw new ShareloraError('BAD_ARGUMENT', `Dropout: p must be in [0, 1), got ${p}`);
    this.seed = opts.seed ?? (opts.rng ?? defaultRng()).nextU32();
  }

  /** Whether forward changes its input: in training mode with p > 0. */
  get active(): boolean {
    return this.training && this.p > 0;
  }

  /** dropout(x), or with `residual` residual + dropout(x) in one pass (see the dropout op). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    if (!this.active) return residual ? add(residual, x) : x;
    const y = dropout(x, this.p, this.seed, this.offset, residual);
    this.offset += x.size;
    return y;
  }
}
