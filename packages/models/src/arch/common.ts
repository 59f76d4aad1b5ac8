/** Pieces the three architectures share: head reshapes, attention with a cache, activations, positions. */
import {
  type Activation,
  type Dropout,
  embedding,
  type FloatDType,
  gelu,
  geluErf,
  getDevice,
  isGradEnabled,
  type Linear,
  type Module,
  packedQkvAttention,
  permute,
  type QuantStorage,
  Rng,
  type RopeScaling,
  relu,
  reshape,
  ShareloraError,
  scaledDotProductAttention,
  silu,
  sliceAxis,
  type Tensor,
  tensor,
  tidy,
} from '@sharelora/core';
import type { CheckpointRules, KVCache } from './types.js';

/** transformers' hidden_act / activation_function names we run, by the core activation that computes each. */
export const ACTIVATION_KINDS = {
  gelu: 'gelu_erf',
  gelu_new: 'gelu',
  gelu_pytorch_tanh: 'gelu',
  // Same tanh approximation as gelu_new, written with a precomputed constant.
  gelu_fast: 'gelu',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
} as const satisfies Record<string, Activation>;

export type ActivationName = keyof typeof ACTIVATION_KINDS;

const BY_KIND: Record<Activation, (x: Tensor) => Tensor> = { gelu, gelu_erf: geluErf, relu, silu };

/** The activation function of each transformers name (see {@link ACTIVATION_KINDS}). */
export const ACTIVATIONS = Object.fromEntries(
  Object.entries(ACTIVATION_KINDS).map(([name, kind]) => [name, BY_KIND[kind]]),
) as Record<ActivationName, (x: Tensor) => Tensor>;

export interface ModelBuildOptions {
  /** Seeds the generator for core's layer initialisation and the dropout masks (default 0). */
  seed?: number;
  /**
   * Storage of the matmul and embedding weights (default f32; norms and biases are always f32).
   * 'f16'/'bf16' halve their memory and make them frozen: see core's Linear and matmul.
   */
  weightDtype?: FloatDType;
  /**
   * Keep the transformer blocks' linear weights quantized (QLoRA's frozen base): their packed
   * buffers are allocated for a loader to fill (see core's Linear `quantize`); embeddings, norms,
   * the output layer and task heads keep `weightDtype`. A llama.cpp type is filled from a GGUF
   * import only.
   */
  quantize?: QuantStorage;
}

/** What layer constructors pass on to core's Linear and Embedding. */
export interface WeightInit {
  rng: Rng;
  dtype: FloatDType;
  /** Set for the blocks' linear layers only: heads are built with {@link unquantized}. */
  quantize?: QuantStorage;
}

export function weightInit(opts: ModelBuildOptions): WeightInit {
  return { rng: new Rng(opts.seed ?? 0), dtype: opts.weightDtype ?? 'f32', quantize: opts.quantize };
}

/** The same initialisation without quantization: for task heads, which stay in full precision. */
export function unquantized(w: WeightInit): WeightInit {
  return { rng: w.rng, dtype: w.dtype };
}

export interface RopeConfig {
  theta: number;
  scaling?: RopeScaling;
  /** Leading dims of each head that are rotated (head_dim × partial_rotary_factor). */
  rotaryDim: number;
}

/** [B, T, H·D] -> [B, T, H, D] (a view: no copy). */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, C] = x.shape;
  return reshape(x, [B, T, heads, C / heads]);
}

/** [B, T, H, D] -> [B, H, T, D], the layout of the KV cache. */
const headsFirst = (x: Tensor) => permute(x, [0, 2, 1, 3]);

export interface AttentionContext {
  layer: number;
  causal: boolean;
  keyPaddingMask?: Tensor;
  cache?: KVCache;
  scale?: number;
}

/**
 * q [B,T,Hq,D], this step's k/v [B,T,Hkv,D] (appended to the cache if any) -> [B, T, Hq·D].
 * Without a cache the kernels read the projections in place; the cache stores heads-first rows.
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext): Tensor {
  const opts = { causal: ctx.causal, keyPaddingMask: ctx.keyPaddingMask, scale: ctx.scale };
  const [B, T, H, D] = q.shape;
  if (!ctx.cache)
    return reshape(scaledDotProductAttention(q, k, v, { ...opts, axes: 'bthd' }), [B, T, H * D]);
  const kv = ctx.cache.append(ctx.layer, headsFirst(k), headsFirst(v));
  const y = scaledDotProductAttention(headsFirst(q), kv.k, kv.v, opts);
  return reshape(headsFirst(y), [B, T, H * D]);
}

/**
 * Self-attention from a fused projection qkv [B, T, 3·H·D] (q | k | v, heads in order) -> [B, T, H·D].
 * Without a cache the kernels read the three parts in place.
 */
export function attendPacked(qkv: Tensor, heads: number, ctx: AttentionContext): Tensor {
  if (!ctx.cache) {
    return packedQkvAttention(qkv, {
      heads,
      causal: ctx.causal,
      keyPaddingMask: ctx.keyPaddingMask,
      scale: ctx.scale,
    });
  }
  const C = qkv.shape[2] / 3;
  const [q, k, v] = [0, 1, 2].map((i) => splitHeads(sliceAxis(qkv, -1, i * C, (i + 1) * C), heads));
  return attend(q, k, v, ctx);
}

/**
 * Runs one layer. When nothing in it is being differentiated, its intermediates are freed as soon as
 * it returns, so inference holds one layer's activations at a time instead of the whole network's.
 */
/**
 * residual + dropout(proj(x)). Without active dropout the projection accumulates onto the residual
 * (Linear's residual form: no add pass); with it, the dropout pass adds the residual.
 */
export function projectOnto(proj: Linear, x: Tensor, drop: Dropout, residual: Tensor): Tensor {
  return drop.active ? drop.forward(proj.forward(x), residual) : proj.forward(x, residual);
}

export function runLayer(layer: Module, x: Tensor, fn: () => Tensor): Tensor {
  const taped = isGradEnabled() && (x.requiresGrad || layer.parameters({ trainableOnly: true }).length > 0);
  return taped ? fn() : tidy(fn);
}

/** transformers' default positions: past, past + 1, ..., past + T - 1 for every row (i32 [T]). */
export function defaultPositions(past: number, T: number): Tensor {
  return tensor(
    Int32Array.from({ length: T }, (_, i) => past + i),
    [T],
  );
}

/**
 * Positions for left-padded rows as transformers' generate() computes them: the running count of
 * real tokens minus one, and 1 at padding (whose outputs are never used). Row-major [B][S] numbers.
 */
export function positionIdsFromAttentionMask(mask: readonly (readonly number[])[]): number[][] {
  return mask.map((row) => {
    let seen = 0;
    return row.map((m) => (m ? seen++ : 1));
  });
}

/** Learned position tables have a fixed size: say so instead of reading past the table (NaN rows). */
export function checkLength(positions: number, max: number, key: string): void {
  if (positions > max) {
    throw new ShareloraError(
      'SEQUENCE_TOO_LONG',
      `${positions} positions exceed the model's position table (${key} = ${max}); shorten the input`,
    );
  }
}

/**
 * The hidden states [B, T, C] of the positions a CausalLMForwardOptions.logitsToKeep selects:
 * [B, n, C] for a count n, [P, C] for flat positions b·T + t, h itself when undefined.
 */
export function keepPositions(h: Tensor, keep: number | readonly number[] | undefined): Tensor {
  if (keep === undefined) return h;
  const [B, T, C] = h.shape;
  if (typeof keep === 'number') {
    if (!Number.isInteger(keep) || keep < 1)
      throw new ShareloraError('BAD_ARGUMENT', `logitsToKeep must be a positive integer, got ${keep}`);
    return keep >= T ? h : sliceAxis(h, 1, T - keep, T);
  }
  if (keep.length === 0) throw new ShareloraError('BAD_ARGUMENT', 'logitsToKeep lists no positions');
  for (const p of keep) {
    if (!Number.isInteger(p) || p < 0 || p >= B * T)
      throw new ShareloraError(
        'BAD_ARGUMENT',
        `logitsToKeep position ${p} is outside the ${B}×${T} input (flat positions 0..${B * T - 1})`,
      );
  }
  return embedding(reshape(h, [B * T, C]), tensor(Int32Array.from(keep), [keep.length], 'i32'));
}

/**
 * Consecutive [start, end) ranges of `count` positions whose logits ([rows, vocabSize] f32) each fit
 * one storage binding (128 MiB on lavapipe and in browsers: 667 rows of GPT-2's 50,257-token
 * vocabulary). Core ops would window over a larger tensor, but all the logits of a long batch may
 * not even fit one buffer (maxBufferSize is 256 MiB in some browsers); projected range by range
 * with CausalLM.projectLogits, any number of positions works, and scoring holds one range at a time.
 */
export function logitChunks(count: number, vocabSize: number): Array<[number, number]> {
  const rows = Math.max(1, Math.floor(getDevice().maxBindingBytes / (vocabSize * 4)));
  const out: Array<[number, number]> = [];
  for (let a = 0; a < count; a += rows) out.push([a, Math.min(count, a + rows)]);
  return out;
}

/**
 * Checkpoint rules of a causal LM (GPT-2, LLaMA): its base-model prefix and stray buffers; a tied
 * model ignores a saved lm_head.weight. No head is ever new.
 */
export function causalLmRules(basePrefix: string, buffers: RegExp, tied: boolean): CheckpointRules {
  return { basePrefix, buffers, aliases: {}, unused: tied ? /^lm_head\.weight$/ : null, newHead: null };
}
