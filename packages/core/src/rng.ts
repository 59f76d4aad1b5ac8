import type { MemoryCategory } from './device/memory.js';
import { ShapeError, ShareloraError } from './errors.js';
import { tensor } from './ops/creation.js';
import { fmt, numel, type Shape } from './shape.js';
import type { Tensor } from './tensor.js';

/**
 * Seeded CPU random numbers: PCG32 (O'Neill 2014, PCG-XSH-RR 64/32, the generator of pcg-c-basic),
 * seeded through SplitMix64 (Vigna's splitmix64.c). Initialisers, dropout seeds and data order all
 * draw from here, so one seed fixes a run.
 *
 * The 64-bit state is kept as two unsigned 32-bit halves: a BigInt per draw would make initialising
 * a large model's adapters (tens of millions of draws) needlessly slow.
 */

const MASK64 = (1n << 64n) - 1n;
const TWO32 = 4294967296;
// PCG's default 64-bit LCG multiplier 6364136223846793005, as halves.
const MUL_HI = 0x5851f42d;
const MUL_LO = 0x4c957f2d;

/** SplitMix64 step: returns [next state, output]. */
function splitmix64(x: bigint): [bigint, bigint] {
  const s = (x + 0x9e3779b97f4a7c15n) & MASK64;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [s, z ^ (z >> 31n)];
}

/** The first outputs of SplitMix64 started at `seed` (exported so tests can check it against the reference). */
export function splitmix64Outputs(seed: bigint, count: number): bigint[] {
  const out: bigint[] = [];
  let s = BigInt.asUintN(64, seed);
  for (let i = 0; i < count; i++) {
    const [next, z] = splitmix64(s);
    s = next;
    out.push(z);
  }
  return out;
}

/** FNV-1a 64 of a label's UTF-8 bytes: turns fork labels into seed material. */
function fnv1a64(label: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(label)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK64;
  return h;
}

/** High 32 bits of the 64-bit product of two unsigned 32-bit integers (16-bit limbs keep doubles exact). */
function mulhi32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

const hex64 = (hi: number, lo: number): string =>
  ((BigInt(hi) << 32n) | BigInt(lo)).toString(16).padStart(16, '0');

/** A generator's complete state, JSON-serialisable (for checkpoints). */
export interface RngState {
  /** PCG state, 16 hex digits. */
  state: string;
  /** PCG stream increment (odd), 16 hex digits. */
  inc: string;
  /** Seed material that fork() derives child streams from, 16 hex digits. */
  key: string;
  /** Second Box–Muller value not yet returned. */
  spare: number | null;
}

/**
 * A seeded random number generator on the CPU: PCG32 seeded through SplitMix64, so one seed gives the
 * same sequence on every platform. Initialisers ({@link randn}, {@link kaimingUniform}), dropout
 * seeds and data order draw from it. {@link Rng.fork} derives independent streams by label, and
 * {@link Rng.getState} / {@link Rng.fromState} checkpoint one exactly. Layers and initialisers given
 * no generator use {@link defaultRng}.
 */
export class Rng {
  private sHi = 0;
  private sLo = 0;
  private iHi = 0;
  private iLo = 1;
  private key = 0n;
  private spare: number | null = null;

  /** A generator whose PCG state and stream both come from SplitMix64 started at `seed`. */
  constructor(seed: number | bigint = 0) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
      throw new ShareloraError('BAD_SEED', `seed must be a safe integer, got ${seed}`);
    }
    this.reseed(BigInt.asUintN(64, BigInt(seed)));
  }

  /** Exactly pcg-c-basic's pcg32_srandom_r(initstate, initseq): reproduces the reference demo streams. */
  static pcg32(initstate: bigint, initseq: bigint): Rng {
    const r = new Rng(0);
    r.srandom(BigInt.asUintN(64, initstate), BigInt.asUintN(64, initseq));
    r.key = splitmix64(initstate ^ (initseq << 1n))[1];
    return r;
  }

  /** A generator continuing exactly where the one that produced `state` ({@link Rng.getState}) was. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  private reseed(material: bigint): void {
    const [s1, initstate] = splitmix64(material);
    const [, initseq] = splitmix64(s1);
    this.srandom(initstate, initseq);
    this.key = material;
    this.spare = null;
  }

  private srandom(initstate: bigint, initseq: bigint): void {
    const inc = ((initseq << 1n) | 1n) & MASK64;
    this.iHi = Number(inc >> 32n);
    this.iLo = Number(inc & 0xffffffffn);
    this.sHi = 0;
    this.sLo = 0;
    this.nextU32();
    const st = ((BigInt(this.sHi) << 32n) | BigInt(this.sLo)) + initstate;
    this.sHi = Number((st >> 32n) & 0xffffffffn);
    this.sLo = Number(st & 0xffffffffn);
    this.nextU32();
  }

  /** One PCG32 output: a uniform unsigned 32-bit integer. */
  nextU32(): number {
    const oHi = this.sHi;
    const oLo = this.sLo;
    // state = state * MUL + inc (mod 2^64)
    const pLo = Math.imul(oLo, MUL_LO) >>> 0;
    const pHi = (mulhi32(oLo, MUL_LO) + Math.imul(oLo, MUL_HI) + Math.imul(oHi, MUL_LO)) >>> 0;
    const lo = pLo + this.iLo;
    this.sLo = lo >>> 0;
    this.sHi = (pHi + this.iHi + (lo >= TWO32 ? 1 : 0)) >>> 0;
    // XSH-RR output from the old state: rotr32(((old >> 18) ^ old) >> 27, old >> 59)
    const xHi = oHi ^ (oHi >>> 18);
    const xLo = oLo ^ ((oLo >>> 18) | (oHi << 14));
    const xs = ((xLo >>> 27) | (xHi << 5)) >>> 0;
    const rot = oHi >>> 27;
    return ((xs >>> rot) | (xs << (-rot & 31))) >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / TWO32;
  }

  /** Standard normal by Box–Muller; values come in pairs, the second is returned by the next call. */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    // 1 - u is in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Unbiased integer in [0, n) for 1 <= n <= 2^32 (pcg32_boundedrand_r's rejection). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO32)
      throw new ShareloraError('BAD_ARGUMENT', `int(n) needs an integer 1..2^32, got ${n}`);
    const threshold = (TWO32 - n) % n;
    for (;;) {
      const r = this.nextU32();
      if (r >= threshold) return r % n;
    }
  }

  /** Fisher–Yates shuffle in place (data order). */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /**
   * An independent generator for `label`. It depends only on this generator's seed and the label, not
   * on how many values were drawn, so adding draws to one stream never shifts another.
   */
  fork(label: string): Rng {
    const r = new Rng(0);
    r.reseed(splitmix64(this.key ^ fnv1a64(label))[1]);
    return r;
  }

  /** The complete state, JSON-serialisable: {@link Rng.fromState} or {@link Rng.setState} resumes from it. */
  getState(): RngState {
    return {
      state: hex64(this.sHi, this.sLo),
      inc: hex64(this.iHi, this.iLo),
      key: this.key.toString(16).padStart(16, '0'),
      spare: this.spare,
    };
  }

  /**
   * Restores a state from {@link Rng.getState}. Throws {@link ShareloraError} `BAD_RNG_STATE` when the
   * stream increment is even (not a PCG state).
   */
  setState(s: RngState): void {
    const st = BigInt(`0x${s.state}`);
    const inc = BigInt(`0x${s.inc}`);
    if ((inc & 1n) === 0n)
      throw new ShareloraError('BAD_RNG_STATE', 'RNG state: the stream increment must be odd');
    this.sHi = Number(st >> 32n);
    this.sLo = Number(st & 0xffffffffn);
    this.iHi = Number(inc >> 32n);
    this.iLo = Number(inc & 0xffffffffn);
    this.key = BigInt(`0x${s.key}`);
    this.spare = s.spare;
  }
}

let globalRng = new Rng(0);

/** Reseeds the process-wide generator used when no rng/seed is passed. */
export function manualSeed(seed: number | bigint): void {
  globalRng = new Rng(seed);
}

/**
 * The process-wide generator, used when a layer or initialiser is given neither an `rng` nor a seed
 * (Linear, Embedding, Dropout, randn, randUniform, kaimingUniform). It starts at seed 0, and
 * {@link manualSeed} replaces it with a new object, so ask for it again after reseeding instead of
 * keeping a reference.
 */
export function defaultRng(): Rng {
  return globalRng;
}

const toRng = (r: Rng | number | undefined): Rng =>
  r === undefined ? globalRng : typeof r === 'number' ? new Rng(r) : r;

/** Options of {@link randn}. */
export interface RandnOptions {
  /** Seed for a fresh generator; ignored when `rng` is given. */
  seed?: number;
  /** Generator to draw from (advanced by the draws); default: a fresh one from `seed`, else {@link defaultRng}. */
  rng?: Rng;
  /** Standard deviation (default 1). */
  std?: number;
  /** Mean (default 0). */
  mean?: number;
  /** Memory report bucket of the result (default 'activations'). */
  category?: MemoryCategory;
}

/** Normal(mean, std²) entries, drawn in row-major order. */
export function randn(shape: Shape, opts: RandnOptions = {}): Tensor {
  const rng = opts.rng ?? toRng(opts.seed);
  const std = opts.std ?? 1;
  const mean = opts.mean ?? 0;
  const a = new Float32Array(numel(shape));
  for (let i = 0; i < a.length; i++) a[i] = mean + std * rng.normal();
  return tensor(a, shape, 'f32', opts.category);
}

/** Uniform entries in [lo, hi), drawn in row-major order. */
export function randUniform(
  shape: Shape,
  lo: number,
  hi: number,
  rng?: Rng | number,
  category?: MemoryCategory,
): Tensor {
  const r = toRng(rng);
  const a = new Float32Array(numel(shape));
  for (let i = 0; i < a.length; i++) a[i] = lo + (hi - lo) * r.uniform();
  return tensor(a, shape, 'f32', category);
}

/** torch.nn.init's fan_in: shape[1] times the receptive field (prod of shape[2:]), for a [out, in, ...] weight. */
export function fanInOf(shape: Shape): number {
  if (shape.length < 2) throw new ShapeError(`fan_in needs a weight of rank >= 2, got ${fmt(shape)}`);
  return shape[1] * numel(shape.slice(2));
}

/** kaiming_uniform_'s bound for leaky-ReLU slope `a`: sqrt(2 / (1 + a²)) · sqrt(3 / fan_in). */
export function kaimingBound(fanIn: number, a = Math.sqrt(5)): number {
  return Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fanIn);
}

/** Options of {@link kaimingUniform}. */
export interface KaimingOptions {
  /** Overrides the fan_in taken from shape[1], e.g. shape[0] for a GPT-2 Conv1D weight stored [in, out]. */
  fanIn?: number;
  /** Memory report bucket of the result (default 'activations'). */
  category?: MemoryCategory;
}

/**
 * torch.nn.init.kaiming_uniform_(w, a) with mode fan_in: U(-bound, bound), bound = sqrt(2/(1+a²))·sqrt(3/fan_in).
 * a = √5 (nn.Linear's default, also LoRA's A) gives bound = 1/sqrt(fan_in).
 */
export function kaimingUniform(
  shape: Shape,
  rng?: Rng | number,
  a = Math.sqrt(5),
  opts: KaimingOptions = {},
): Tensor {
  const bound = kaimingBound(opts.fanIn ?? fanInOf(shape), a);
  return randUniform(shape, -bound, bound, rng, opts.category);
}
