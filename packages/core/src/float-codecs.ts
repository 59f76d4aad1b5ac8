/**
 * Codecs between numbers and the small float formats sharelora stores: f16 and bf16 (tensors,
 * checkpoints) and the two f8 formats safetensors files may hold, bit-exact with round-to-nearest-even.
 * Tensors, ops and the safetensors reader all use them, so they live apart from any one of those.
 */

export interface FloatFormat {
  expBits: number;
  mantBits: number;
  bias: number;
  /** E4M3FN: no infinities; the all-ones pattern S.1111.111 is the only NaN. */
  finiteOnly: boolean;
}

export const F16_FORMAT: FloatFormat = { expBits: 5, mantBits: 10, bias: 15, finiteOnly: false };
export const BF16_FORMAT: FloatFormat = { expBits: 8, mantBits: 7, bias: 127, finiteOnly: false };
export const E4M3_FORMAT: FloatFormat = { expBits: 4, mantBits: 3, bias: 7, finiteOnly: true };
export const E5M2_FORMAT: FloatFormat = { expBits: 5, mantBits: 2, bias: 15, finiteOnly: false };

function decodeFloatBits(bits: number, f: FloatFormat): number {
  const mb = f.mantBits;
  const expMax = (1 << f.expBits) - 1;
  const sign = (bits >> (f.expBits + mb)) & 1 ? -1 : 1;
  const e = (bits >> mb) & expMax;
  const m = bits & ((1 << mb) - 1);
  if (f.finiteOnly) {
    if (e === expMax && m === (1 << mb) - 1) return Number.NaN;
  } else if (e === expMax) {
    return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  }
  if (e === 0) return sign * m * 2 ** (1 - f.bias - mb);
  return sign * (2 ** mb + m) * 2 ** (e - f.bias - mb);
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Correctly rounded (nearest-even) encoding of any double; overflow gives ±Inf, or NaN for
 * E4M3FN (the non-saturating behaviour of PyTorch's float8_e4m3fn cast). Scaling by powers of two
 * is exact, so the only rounding is the final roundHalfEven.
 */
export function encodeFloatBits(x: number, f: FloatFormat): number {
  const mb = f.mantBits;
  const expMax = (1 << f.expBits) - 1;
  const nanBits = f.finiteOnly ? (expMax << mb) | ((1 << mb) - 1) : (expMax << mb) | (1 << (mb - 1));
  if (Number.isNaN(x)) return nanBits;
  const sign = x < 0 || Object.is(x, -0) ? 1 << (f.expBits + mb) : 0;
  const overflow = sign | (f.finiteOnly ? nanBits : expMax << mb);
  const a = Math.abs(x);
  if (a === Number.POSITIVE_INFINITY) return overflow;
  if (a === 0) return sign;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let bits: number;
  if (e < 1 - f.bias) {
    // Subnormal: the mantissa counts units of 2^(1-bias-mb); rounding up to 2^mb yields the
    // smallest normal's bit pattern by itself.
    bits = roundHalfEven(a * 2 ** (f.bias - 1 + mb));
  } else {
    // m in [2^mb, 2^(mb+1)]; a carry out of the mantissa lands in the exponent field.
    const m = roundHalfEven(a * 2 ** (mb - e));
    bits = ((e + f.bias) << mb) + m - (1 << mb);
  }
  const maxFinite = f.finiteOnly ? nanBits - 1 : (expMax << mb) - 1;
  return bits > maxFinite ? overflow : sign | bits;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * The value of one IEEE half-precision bit pattern (the low 16 bits of `bits`), exactly:
 * subnormals, ±Infinity and NaN included. {@link decodeF16} converts a whole array.
 */
export function f16BitsToF32(bits: number): number {
  return decodeFloatBits(bits & 0xffff, F16_FORMAT);
}

/**
 * The value of one bfloat16 bit pattern (the low 16 bits of `bits`), exactly: bf16 is the top half
 * of an f32. {@link decodeBF16} converts a whole array.
 */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** f32 → f16 bits, round-to-nearest-even; `x` is first rounded to f32. Bit-level for speed on large tensors. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // f16 subnormal (or zero): shift the full significand right; |x| < 2^-25 always rounds to 0.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1) !== 0)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (m & 1) !== 0)) m++;
  // A mantissa carry (m = 0x400) correctly bumps the exponent, up to Inf (0x7c00).
  return sign | ((e << 10) + m);
}

/** f32 → bf16 bits, round-to-nearest-even; `x` is first rounded to f32. NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Encode a Float32Array (or any numbers) to f16 bit patterns. */
export function encodeF16(values: ArrayLike<number>): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

/**
 * bfloat16 bit patterns of `values`, each rounded first to f32 and then to nearest-even bf16 (NaN
 * stays a quiet NaN): what {@link tensor} uploads for a bf16 tensor given numbers, and how
 * checkpoints store bf16 weights. {@link decodeBF16} is its inverse on representable values.
 */
export function encodeBF16(values: ArrayLike<number>): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16Bits(values[i]);
  return out;
}

let f16Table: Float32Array | undefined;
const f8Tables = new Map<FloatFormat, Float32Array>();

function tableFor(f: FloatFormat, size: number): Float32Array {
  const t = new Float32Array(size);
  for (let i = 0; i < size; i++) t[i] = decodeFloatBits(i, f);
  return t;
}

/**
 * f32 values of IEEE half-precision bit patterns, exactly (every f16 is an f32), through a
 * 65,536-entry table built on first use. Inverse of {@link encodeF16}; {@link Tensor.data} uses
 * it to return an f16 tensor as f32 values.
 */
export function decodeF16(bits: Uint16Array): Float32Array<ArrayBuffer> {
  f16Table ??= tableFor(F16_FORMAT, 65536);
  const t = f16Table;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/**
 * f32 values of bfloat16 bit patterns, exactly (each pattern becomes the top half of an f32).
 * Inverse of {@link encodeBF16}; {@link Tensor.data} uses it to return a bf16 tensor as f32 values.
 */
export function decodeBF16(bits: Uint16Array): Float32Array<ArrayBuffer> {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

export function decodeF8(bytes: Uint8Array, f: FloatFormat): Float32Array<ArrayBuffer> {
  let t = f8Tables.get(f);
  if (t === undefined) {
    t = tableFor(f, 256);
    f8Tables.set(f, t);
  }
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = t[bytes[i]];
  return out;
}
