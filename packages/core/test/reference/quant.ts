/**
 * Float64 reference of the weight quantization formats, written from the published algorithms
 * (QLoRA's NF4 with double quantization, bitsandbytes' FP4 and 8-bit dynamic map, LLM.int8's
 * row-wise int8), independently of src/quant (only the 8-bit map's f32 table is shared data):
 * plain loops over explicit f32 roundings (Math.fround) where the algorithm computes in f32.
 */

import { DYNAMIC_MAP } from '../../src/quant/formats.js';

const f = Math.fround;

/**
 * The 8-bit dynamic map is data (torch's f32 rounding of bitsandbytes' recipe, see src/quant): the
 * reference takes it from there, and its test checks it against the recipe in float64.
 */
const DYNAMIC = DYNAMIC_MAP;

/** bitsandbytes' dynamic-map recipe in float64: the exact values the f32 table approximates. */
export function dynamicMapF64(): number[] {
  const out = [0, 1];
  for (let e = -6; e <= 0; e++) {
    const n = 2 ** (e + 6);
    for (let j = 0; j < n; j++) {
      const lo = 0.1 + (0.9 * j) / n;
      const hi = 0.1 + (0.9 * (j + 1)) / n;
      out.push(10 ** e * ((lo + hi) / 2), -(10 ** e) * ((lo + hi) / 2));
    }
  }
  return out.sort((a, b) => a - b);
}

/** NF4 levels as published (the QLoRA paper's appendix table, as decimal f64 values). */
export const NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

/**
 * NF4 code: the nearest level, the decision point between neighbours being their midpoint
 * (computed in f64, used as an f32 constant); a value on it takes the lower level. NaN (0/0 of an
 * all-zero block) takes code 0.
 */
export function nf4Code(x: number): number {
  if (Number.isNaN(x)) return 0;
  let c = 0;
  for (let j = 0; j < 15; j++) if (x > f((NF4[j] + NF4[j + 1]) / 2)) c = j + 1;
  return c;
}

/** FP4 (e2m1, bias 3, max 12) magnitudes by 3-bit code, divided by 12. */
export const FP4_MAG = [0, 0.0625 / 12, 8 / 12, 12 / 12, 4 / 12, 6 / 12, 2 / 12, 3 / 12];
/** bitsandbytes' FP4 decision points between magnitudes (published constants, as f32). */
export const FP4_SPLITS: Array<[number, number]> = [
  // [threshold, code of the magnitudes above it], in increasing order.
  [0.00260417, 0b001],
  [0.0859375, 0b110],
  [0.20833333, 0b111],
  [0.29166667, 0b100],
  [0.4166667, 0b101],
  [0.583333, 0b010],
  [0.8333333, 0b011],
];

/** FP4 code: sign bit 8 for negatives, magnitude code by the decision points (a tie goes lower). */
export function fp4Code(x: number): number {
  if (Number.isNaN(x)) return 0;
  let m = 0;
  for (const [t, code] of FP4_SPLITS) if (Math.abs(x) > f(t)) m = code;
  return m | (x < 0 ? 8 : 0);
}

/** FP4 level of a 4-bit code, as the f32 constant the kernels use. */
export function fp4Value(c: number): number {
  const mags = [0, 0.005208333333, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25];
  return (c & 8 ? -1 : 1) * f(mags[c & 7]);
}

/**
 * Dynamic-map code: the nearest map value, decided by the f32 midpoint of the two neighbours
 * around x; exactly on a midpoint, bitsandbytes' binary search (whose last pivot is always an even
 * index) keeps the even index of the pair.
 */
export function dynamicCode(x: number): number {
  if (Number.isNaN(x) || x <= DYNAMIC[0]) return 0;
  let j = 0; // DYNAMIC[j] < x <= DYNAMIC[j + 1]
  while (j < 254 && x > DYNAMIC[j + 1]) j++;
  const mid = f((DYNAMIC[j] + DYNAMIC[j + 1]) * 0.5);
  if (x > mid) return j + 1;
  if (x < mid) return j;
  return j % 2 === 0 ? j : j + 1;
}

export interface Ref4 {
  codes: number[]; // one 4-bit code per element, padded to even length
  absmax: number[];
  absmaxCodes: number[];
  absmax2: number[];
  offset: number;
  values: number[]; // dequantized, one per real element
}

/** NF4/FP4 with blocks of 64 and double quantization (blocks of 256 absmax values). */
export function quant4(w: ArrayLike<number>, format: 'nf4' | 'fp4'): Ref4 {
  const n = w.length;
  const nb = Math.ceil(n / 64);
  const absmax: number[] = [];
  for (let b = 0; b < nb; b++) {
    let m = 0;
    for (let i = b * 64; i < Math.min(n, b * 64 + 64); i++) m = Math.max(m, Math.abs(w[i]));
    absmax.push(m);
  }
  const code = format === 'nf4' ? nf4Code : fp4Code;
  const codes: number[] = [];
  for (let i = 0; i < n + (n % 2); i++) {
    const recip = f(1 / absmax[Math.floor(i / 64)]);
    codes.push(code(f((i < n ? w[i] : 0) * recip)));
  }
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f(sum / nb);
  const absmax2: number[] = [];
  const absmaxCodes: number[] = [];
  for (let s = 0; s < nb; s += 256) {
    const part = absmax.slice(s, s + 256).map((a) => f(a - offset));
    const m = Math.max(...part.map(Math.abs));
    absmax2.push(m);
    for (const v of part) absmaxCodes.push(dynamicCode(f(v * f(1 / m))));
  }
  const deq = absmaxCodes.map((q, b) => f(f(DYNAMIC[q] * absmax2[Math.floor(b / 256)]) + offset));
  const level = (c: number) => (format === 'nf4' ? f(NF4[c]) : fp4Value(c));
  const values = Array.from({ length: n }, (_, i) => f(level(codes[i]) * deq[Math.floor(i / 64)]));
  return { codes, absmax, absmaxCodes, absmax2, offset, values };
}

/** Packs 4-bit codes two per byte, the first of each pair in the high nibble. */
export function pack4(codes: number[]): Uint8Array {
  const out = new Uint8Array(codes.length / 2);
  for (let j = 0; j < out.length; j++) out[j] = codes[2 * j] * 16 + codes[2 * j + 1];
  return out;
}

/** int8 per row: code = round-half-even(w · f32(127/absmax)), value = code · f32(absmax · f32(1/127)). */
export function quantInt8(w: ArrayLike<number>, rows: number, cols: number) {
  const codes: number[] = [];
  const absmax: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    absmax.push(m);
    const s = f(127 / m);
    for (let c = 0; c < cols; c++) {
      const x = m === 0 ? 0 : f(w[r * cols + c] * s);
      const lo = Math.floor(x);
      const q = x - lo > 0.5 || (x - lo === 0.5 && lo % 2 !== 0) ? lo + 1 : lo;
      codes.push(q);
      values.push(f(q * f(m * f(1 / 127))));
    }
  }
  return { codes, absmax, values };
}
