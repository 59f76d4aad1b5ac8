/**
 * Float64 CPU reference implementations of every tensor op, written as plain
 * loops so they are easy to audit. They exist to check the WGSL kernels; speed
 * is irrelevant. Conventions follow PyTorch / HF transformers.
 */

import {
  broadcastIndexMap,
  broadcastShapes,
  F64,
  normAxis,
  numel,
  type Shape,
  strides,
  unravelIndex,
} from './ndarray.js';

type Operand = F64 | number;

function asF64(x: Operand): F64 {
  return typeof x === 'number' ? F64.scalar(x) : x;
}

/** Max of a sequence; a loop rather than Math.max(...v), which overflows the stack on vocab-sized rows. */
function maxOf(v: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < v.length; i++) {
    if (Number.isNaN(v[i])) return Number.NaN;
    if (v[i] > m) m = v[i];
  }
  return m;
}

/** Elementwise x -> fn(x). */
export function map(x: F64, fn: (v: number) => number): F64 {
  const out = new F64(x.shape);
  for (let i = 0; i < x.size; i++) out.data[i] = fn(x.data[i]);
  return out;
}

/** Elementwise fn(a, b) with numpy broadcasting; numbers act as rank-0 arrays. */
export function binary(a: Operand, b: Operand, fn: (x: number, y: number) => number): F64 {
  const A = asF64(a);
  const B = asF64(b);
  const shape = broadcastShapes(A.shape, B.shape);
  const ma = broadcastIndexMap(A.shape, shape);
  const mb = broadcastIndexMap(B.shape, shape);
  const out = new F64(shape);
  for (let i = 0; i < out.size; i++) out.data[i] = fn(A.data[ma[i]], B.data[mb[i]]);
  return out;
}

export const add = (a: Operand, b: Operand): F64 => binary(a, b, (x, y) => x + y);
export const sub = (a: Operand, b: Operand): F64 => binary(a, b, (x, y) => x - y);
export const mul = (a: Operand, b: Operand): F64 => binary(a, b, (x, y) => x * y);
export const div = (a: Operand, b: Operand): F64 => binary(a, b, (x, y) => x / y);
export const pow = (a: Operand, b: Operand): F64 => binary(a, b, (x, y) => x ** y);
export const maximum = (a: Operand, b: Operand): F64 => binary(a, b, (x, y) => Math.max(x, y));

// ---------------------------------------------------------------------------
// erf / erfc to double precision

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * erf(x) for |x| < 2.5 via the all-positive series
 * erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)),
 * which (unlike the Maclaurin series) has no cancellation.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 0; n < 500; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc(x) for x >= 2.5 via the continued fraction
 * erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
 * evaluated with the modified Lentz algorithm. Keeps full relative precision in the tail.
 */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-17) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) return erfSeries(x);
  const r = 1 - erfcContinuedFraction(ax);
  return x < 0 ? -r : r;
}

/** 1 - erf(x), accurate (relative) also for large positive x where 1 - erf(x) would cancel. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x >= 2.5) return erfcContinuedFraction(x);
  if (x <= -2.5) return 2 - erfcContinuedFraction(-x);
  return 1 - erfSeries(x);
}

// ---------------------------------------------------------------------------
// Unary

function sigmoidScalar(v: number): number {
  // Split by sign so exp never overflows.
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export const neg = (x: F64): F64 => map(x, (v) => -v);
export const exp = (x: F64): F64 => map(x, Math.exp);
export const log = (x: F64): F64 => map(x, Math.log);
export const sqrt = (x: F64): F64 => map(x, Math.sqrt);
export const rsqrt = (x: F64): F64 => map(x, (v) => 1 / Math.sqrt(v));
export const tanh = (x: F64): F64 => map(x, Math.tanh);
export const abs = (x: F64): F64 => map(x, Math.abs);
export const relu = (x: F64): F64 => map(x, (v) => Math.max(v, 0)); // NaN propagates, as torch.relu
export const sigmoid = (x: F64): F64 => map(x, sigmoidScalar);
export const silu = (x: F64): F64 => map(x, (v) => v * sigmoidScalar(v));
/** GELU, tanh approximation (GPT-2 "gelu_new" / PyTorch approximate='tanh'). */
export const geluTanh = (x: F64): F64 =>
  map(x, (v) => 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))));
/** Exact GELU 0.5x(1+erf(x/sqrt2)), written as 0.5x*erfc(-x/sqrt2) to stay accurate for x << 0. */
export const geluErf = (x: F64): F64 => map(x, (v) => 0.5 * v * erfc(-v / Math.SQRT2));
export const scale = (x: F64, s: number): F64 => map(x, (v) => v * s);

// ---------------------------------------------------------------------------
// Reductions

/**
 * Calls `visit(base, stride)` for every 1-D fibre along `axis`; element k of the
 * fibre sits at data[base + k * stride]. Fibres come in the row-major order of the
 * remaining axes, i.e. the order of a keepdims output.
 */
function forEachFibre(
  shape: Shape,
  axis: number,
  visit: (base: number, stride: number, fibre: number) => void,
): void {
  const inner = numel(shape.slice(axis + 1));
  const outer = numel(shape.slice(0, axis));
  const len = shape[axis];
  let fibre = 0;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) visit(o * len * inner + i, inner, fibre++);
  }
}

function reduce(x: F64, axis: number, keepdims: boolean, fn: (vals: number[]) => number): F64 {
  const a = normAxis(axis, x.ndim);
  const shape = keepdims ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  const out = new F64(shape);
  const len = x.shape[a];
  forEachFibre(x.shape, a, (base, stride, fibre) => {
    const vals: number[] = [];
    for (let k = 0; k < len; k++) vals.push(x.data[base + k * stride]);
    out.data[fibre] = fn(vals);
  });
  return out;
}

export function sum(x: F64, axis: number, keepdims = false): F64 {
  return reduce(x, axis, keepdims, (v) => v.reduce((s, t) => s + t, 0));
}

export function mean(x: F64, axis: number, keepdims = false): F64 {
  return reduce(x, axis, keepdims, (v) => v.reduce((s, t) => s + t, 0) / v.length);
}

/** Max along an axis; NaN propagates (as torch.max). */
export function max(x: F64, axis: number, keepdims = false): F64 {
  return reduce(x, axis, keepdims, maxOf);
}

/** Sum of all elements as a plain number. */
export function sumAll(x: F64): number {
  let s = 0;
  for (let i = 0; i < x.size; i++) s += x.data[i];
  return s;
}

/** Applies `fn` to each row of the last axis, writing a same-length row. */
function mapRows(x: F64, fn: (row: Float64Array) => ArrayLike<number>): F64 {
  if (x.ndim === 0) throw new Error('row op needs rank >= 1');
  const d = x.shape[x.ndim - 1];
  const out = new F64(x.shape);
  for (let r = 0; r * d < x.size; r++) {
    const row = x.data.subarray(r * d, (r + 1) * d);
    out.data.set(fn(row), r * d);
  }
  return out;
}

/** Softmax over the last axis (max-subtracted, so large logits do not overflow). */
export function softmax(x: F64): F64 {
  return mapRows(x, (row) => {
    const m = maxOf(row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  });
}

export function logSoftmax(x: F64): F64 {
  return mapRows(x, (row) => {
    const m = maxOf(row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    return row.map((v) => v - lse);
  });
}

function checkVec(v: F64 | null, d: number, name: string): void {
  if (v && (v.ndim !== 1 || v.shape[0] !== d))
    throw new Error(`${name} must have shape [${d}], got [${v.shape}]`);
}

/** LayerNorm over the last axis with biased variance (PyTorch); null gamma/beta mean no affine. */
export function layerNorm(x: F64, gamma: F64 | null, beta: F64 | null, eps = 1e-5): F64 {
  const d = x.shape[x.ndim - 1];
  checkVec(gamma, d, 'gamma');
  checkVec(beta, d, 'beta');
  return mapRows(x, (row) => {
    const mu = row.reduce((a, v) => a + v, 0) / d;
    const variance = row.reduce((a, v) => a + (v - mu) * (v - mu), 0) / d;
    const inv = 1 / Math.sqrt(variance + eps);
    return row.map((v, i) => (v - mu) * inv * (gamma ? gamma.data[i] : 1) + (beta ? beta.data[i] : 0));
  });
}

/** LLaMA RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * gamma. */
export function rmsNorm(x: F64, gamma: F64 | null, eps = 1e-6): F64 {
  const d = x.shape[x.ndim - 1];
  checkVec(gamma, d, 'gamma');
  return mapRows(x, (row) => {
    const ms = row.reduce((a, v) => a + v * v, 0) / d;
    const inv = 1 / Math.sqrt(ms + eps);
    return row.map((v, i) => v * inv * (gamma ? gamma.data[i] : 1));
  });
}

// ---------------------------------------------------------------------------
// Matmul

/**
 * Batched matmul over the last two dims; leading (batch) dims broadcast numpy-style.
 * transA / transB mean the stored last two dims are [K, M] / [N, K].
 * Both operands need rank >= 2.
 */
export function matmul(a: F64, b: F64, opts: { transA?: boolean; transB?: boolean } = {}): F64 {
  if (a.ndim < 2 || b.ndim < 2) throw new Error('matmul needs rank >= 2 operands');
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, ka] = opts.transA ? [ac, ar] : [ar, ac];
  const [kb, n] = opts.transB ? [bc, br] : [br, bc];
  if (ka !== kb)
    throw new Error(
      `matmul inner dims differ: [${a.shape}] x [${b.shape}] (transA=${!!opts.transA}, transB=${!!opts.transB})`,
    );
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes(batchA, batchB);
  const mapA = broadcastIndexMap(batchA, batch);
  const mapB = broadcastIndexMap(batchB, batch);
  const out = new F64([...batch, m, n]);
  const aAt = (base: number, i: number, k: number) => a.data[base + (opts.transA ? k * ac + i : i * ac + k)];
  const bAt = (base: number, k: number, j: number) => b.data[base + (opts.transB ? j * bc + k : k * bc + j)];
  for (let bi = 0; bi < numel(batch); bi++) {
    const baseA = mapA[bi] * ar * ac;
    const baseB = mapB[bi] * br * bc;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < ka; k++) s += aAt(baseA, i, k) * bAt(baseB, k, j);
        out.data[(bi * m + i) * n + j] = s;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Embedding, attention, RoPE, loss

/** Gathers rows of weight[V, D]; output shape is [...idsShape, D] (idsShape defaults to [ids.length]). */
export function embedding(weight: F64, ids: ArrayLike<number>, idsShape: Shape = [ids.length]): F64 {
  if (weight.ndim !== 2) throw new Error('embedding weight must be [V, D]');
  if (numel(idsShape) !== ids.length)
    throw new Error(`idsShape [${idsShape}] does not match ${ids.length} ids`);
  const [v, d] = weight.shape;
  const out = new F64([...idsShape, d]);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= v) throw new Error(`token id ${id} out of range [0, ${v})`);
    out.data.set(weight.data.subarray(id * d, (id + 1) * d), t * d);
  }
  return out;
}

export interface SdpaOptions {
  causal?: boolean;
  /** [B, S] (F64 or flat array), 1 = attend to that key, 0 = ignore it. */
  keyPaddingMask?: F64 | ArrayLike<number>;
  /** Score scale; defaults to 1/sqrt(D). */
  scale?: number;
}

/**
 * Scaled dot-product attention. q [B,Hq,T,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv] -> [B,Hq,T,Dv].
 * Grouped-query attention: query head h reads kv head floor(h / (Hq/Hkv)).
 * Causal: query i sits at absolute position i + (S - T), so it sees keys j <= i + S - T;
 * with T < S this is the KV-cache case (queries are the last T positions).
 * A query row with every key masked outputs 0 (not NaN), the convention the kernels follow.
 */
export function sdpa(q: F64, k: F64, v: F64, opts: SdpaOptions = {}): F64 {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new Error('sdpa expects rank-4 q, k, v');
  const [B, Hq, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  const [Bv, Hv, Sv, Dv] = v.shape;
  if (Bk !== B || Bv !== B || Hv !== Hkv || Sv !== S || Dk !== D) {
    throw new Error(`sdpa shape mismatch q[${q.shape}] k[${k.shape}] v[${v.shape}]`);
  }
  if (Hkv === 0 || Hq % Hkv !== 0) throw new Error(`Hq=${Hq} is not a multiple of Hkv=${Hkv}`);
  const mask = opts.keyPaddingMask instanceof F64 ? opts.keyPaddingMask.data : opts.keyPaddingMask;
  if (mask && mask.length !== B * S) throw new Error(`keyPaddingMask must have ${B * S} entries`);
  const group = Hq / Hkv;
  const sc = opts.scale ?? 1 / Math.sqrt(D);
  const offset = S - T;
  const out = new F64([B, Hq, T, Dv]);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const qBase = (b * Hq + h) * T * D;
      const kBase = (b * Hkv + hk) * S * D;
      const vBase = (b * Hkv + hk) * S * Dv;
      const oBase = (b * Hq + h) * T * Dv;
      for (let i = 0; i < T; i++) {
        const keys: number[] = [];
        const scores: number[] = [];
        for (let j = 0; j < S; j++) {
          if (opts.causal && j > i + offset) continue;
          if (mask && mask[b * S + j] === 0) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[qBase + i * D + d] * k.data[kBase + j * D + d];
          keys.push(j);
          scores.push(dot * sc);
        }
        if (keys.length === 0) continue; // fully masked row stays 0
        const m = maxOf(scores);
        const w = scores.map((s) => Math.exp(s - m));
        const z = w.reduce((a, x) => a + x, 0);
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          for (let n = 0; n < keys.length; n++) acc += w[n] * v.data[vBase + keys[n] * Dv + e];
          out.data[oBase + i * Dv + e] = acc / z;
        }
      }
    }
  }
  return out;
}

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

export interface RopeOptions {
  theta: number;
  /** 'half': pairs (i, i + R/2) (HF LLaMA / GPT-NeoX); 'interleaved': pairs (2i, 2i+1) (GPT-J / Meta / llama2.c). */
  layout: 'half' | 'interleaved';
  scaling?: RopeScaling;
  /** Number of leading dims rotated (R); the rest pass through. Defaults to D. */
  rotaryDim?: number;
}

/**
 * Inverse frequencies inv_i = theta^(-2i/R), i < R/2, after optional scaling.
 * Linear scaling divides them by factor (same as dividing positions).
 * llama3 follows HF transformers `_compute_llama3_parameters`.
 */
export function ropeInvFreq(rotaryDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  if (rotaryDim % 2 !== 0) throw new Error(`rotary dim ${rotaryDim} must be even`);
  const inv = new Float64Array(rotaryDim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = theta ** ((-2 * i) / rotaryDim);
  if (!scaling) return inv;
  if (scaling.type === 'linear') return inv.map((f) => f / scaling.factor);
  const {
    factor,
    low_freq_factor: lo,
    high_freq_factor: hi,
    original_max_position_embeddings: orig,
  } = scaling;
  const lowFreqWavelen = orig / lo;
  const highFreqWavelen = orig / hi;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / factor;
    const smooth = (orig / wavelen - lo) / (hi - lo);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
}

/**
 * Rotary position embedding on x[B,H,T,D] with one position per token (positions.length === T,
 * shared over batch and heads; non-integer positions are allowed). Angle of pair i is pos * inv_i.
 */
export function rope(x: F64, positions: ArrayLike<number>, opts: RopeOptions): F64 {
  if (x.ndim !== 4) throw new Error('rope expects x[B,H,T,D]');
  const [B, H, T, D] = x.shape;
  if (positions.length !== T) throw new Error(`need ${T} positions, got ${positions.length}`);
  const R = opts.rotaryDim ?? D;
  if (R > D) throw new Error(`rotaryDim ${R} > head dim ${D}`);
  const inv = ropeInvFreq(R, opts.theta, opts.scaling);
  const half = R / 2;
  const out = x.clone();
  for (let bh = 0; bh < B * H; bh++) {
    for (let t = 0; t < T; t++) {
      const base = (bh * T + t) * D;
      for (let i = 0; i < half; i++) {
        const ang = positions[t] * inv[i];
        const c = Math.cos(ang);
        const s = Math.sin(ang);
        const [p0, p1] = opts.layout === 'half' ? [i, i + half] : [2 * i, 2 * i + 1];
        const x0 = x.data[base + p0];
        const x1 = x.data[base + p1];
        out.data[base + p0] = x0 * c - x1 * s;
        out.data[base + p1] = x1 * c + x0 * s;
      }
    }
  }
  return out;
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross entropy of logits[N, C] against integer targets (PyTorch semantics).
 * Ignored targets contribute 0; 'mean' divides by the number of non-ignored targets
 * (NaN if all are ignored, as PyTorch). 'none' returns [N], otherwise a rank-0 array.
 */
export function crossEntropy(logits: F64, targets: ArrayLike<number>, opts: CrossEntropyOptions = {}): F64 {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  if (logits.ndim !== 2) throw new Error('crossEntropy expects logits[N, C]');
  const [N, C] = logits.shape;
  if (targets.length !== N) throw new Error(`need ${N} targets, got ${targets.length}`);
  const lsm = logSoftmax(logits);
  const losses = new F64([N]);
  let count = 0;
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    if (!Number.isInteger(t) || t < 0 || t >= C) throw new Error(`target ${t} out of range [0, ${C})`);
    losses.data[r] = -lsm.data[r * C + t];
    count++;
  }
  if (reduction === 'none') return losses;
  const total = sumAll(losses);
  return F64.scalar(reduction === 'sum' ? total : total / count);
}

// ---------------------------------------------------------------------------
// Shape ops

export function concat(list: readonly F64[], axis: number): F64 {
  if (list.length === 0) throw new Error('concat of nothing');
  const ndim = list[0].ndim;
  const a = normAxis(axis, ndim);
  for (const x of list) {
    if (x.ndim !== ndim || x.shape.some((d, i) => i !== a && d !== list[0].shape[i])) {
      throw new Error(`concat shape mismatch: ${list.map((y) => `[${y.shape}]`).join(', ')}`);
    }
  }
  const shape = [...list[0].shape];
  shape[a] = list.reduce((s, x) => s + x.shape[a], 0);
  const out = new F64(shape);
  const outer = numel(shape.slice(0, a));
  const inner = numel(shape.slice(a + 1));
  let dst = 0;
  for (let o = 0; o < outer; o++) {
    for (const x of list) {
      const chunk = x.shape[a] * inner;
      out.data.set(x.data.subarray(o * chunk, (o + 1) * chunk), dst);
      dst += chunk;
    }
  }
  return out;
}

/** x[starts[0]:ends[0], ...]; one start/end per axis, negatives count from the end. */
export function slice(x: F64, starts: readonly number[], ends: readonly number[]): F64 {
  if (starts.length !== x.ndim || ends.length !== x.ndim)
    throw new Error(`slice needs ${x.ndim} starts and ends`);
  const st = starts.map((s, i) => (s < 0 ? s + x.shape[i] : s));
  const en = ends.map((e, i) => (e < 0 ? e + x.shape[i] : e));
  for (let i = 0; i < x.ndim; i++) {
    if (!(0 <= st[i] && st[i] <= en[i] && en[i] <= x.shape[i])) {
      throw new Error(`bad slice [${starts}]:[${ends}] of shape [${x.shape}]`);
    }
  }
  const out = new F64(st.map((s, i) => en[i] - s));
  const xs = strides(x.shape);
  for (let f = 0; f < out.size; f++) {
    const idx = unravelIndex(f, out.shape);
    let off = 0;
    for (let i = 0; i < x.ndim; i++) off += (idx[i] + st[i]) * xs[i];
    out.data[f] = x.data[off];
  }
  return out;
}

/** Output axis i is input axis perm[i] (torch.permute / numpy.transpose). */
export function permute(x: F64, perm: readonly number[]): F64 {
  if (perm.length !== x.ndim || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    throw new Error(`invalid permutation [${perm}] for rank ${x.ndim}`);
  }
  const out = new F64(perm.map((p) => x.shape[p]));
  const xs = strides(x.shape);
  for (let f = 0; f < out.size; f++) {
    const idx = unravelIndex(f, out.shape);
    let off = 0;
    for (let i = 0; i < perm.length; i++) off += idx[i] * xs[perm[i]];
    out.data[f] = x.data[off];
  }
  return out;
}

/** numpy.transpose: reverses the axes unless a permutation is given. */
export function transpose(x: F64, perm?: readonly number[]): F64 {
  return permute(x, perm ?? x.shape.map((_, i) => x.ndim - 1 - i));
}

/** Row-major reshape (copies); one dim may be -1. */
export function reshape(x: F64, shape: readonly number[]): F64 {
  const free = shape.indexOf(-1);
  const resolved = [...shape];
  if (free >= 0) {
    const known = numel(shape.filter((_, i) => i !== free));
    resolved[free] = known === 0 ? 0 : x.size / known;
  }
  if (numel(resolved) !== x.size || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`cannot reshape [${x.shape}] to [${shape}]`);
  }
  return new F64(resolved, x.data);
}

/** cond != 0 ? a : b, all three broadcast together. */
export function where(cond: F64, a: Operand, b: Operand): F64 {
  const A = asF64(a);
  const B = asF64(b);
  const shape = broadcastShapes(cond.shape, A.shape, B.shape);
  const mc = broadcastIndexMap(cond.shape, shape);
  const ma = broadcastIndexMap(A.shape, shape);
  const mb = broadcastIndexMap(B.shape, shape);
  const out = new F64(shape);
  for (let i = 0; i < out.size; i++) out.data[i] = cond.data[mc[i]] !== 0 ? A.data[ma[i]] : B.data[mb[i]];
  return out;
}

/** torch.masked_fill: value where mask != 0; mask broadcasts to x's shape (not beyond). */
export function maskedFill(x: F64, mask: F64, value: number): F64 {
  const m = broadcastIndexMap(mask.shape, x.shape);
  const out = x.clone();
  for (let i = 0; i < out.size; i++) if (mask.data[m[i]] !== 0) out.data[i] = value;
  return out;
}
