/**
 * Quantization formats for frozen base weights, on the CPU (pure TypeScript, no WebGPU): the
 * 4-bit NormalFloat (NF4) and FP4 codes of QLoRA with blockwise absmax scaling and double
 * quantization of the absmax constants, and int8 with one absmax per row (LLM.int8's weight
 * storage, without outlier decomposition). Every step rounds to f32 where bitsandbytes' kernels do,
 * so codes and dequantized values match its output bit for bit (see the tests' float64 reference).
 *
 * Layout of a 4-bit weight [N, K] (rows are output features), flattened row-major to n = N·K
 * elements:
 *  - blocks of 64 consecutive elements; block b's scale is absmax(|w|) over its elements (the last
 *    block may be short: its absmax covers only the elements that exist);
 *  - codes: two per byte, element 2j in the high nibble of byte j and 2j+1 in the low nibble; when n
 *    is odd the last byte's low nibble holds the code of a 0 in the last block;
 *  - double quantization: absmax values minus their mean (the `offset`) in blocks of 256, each
 *    block scaled by its own absmax (`absmax2`) and coded with the signed 8-bit dynamic map.
 *    Dequantized absmax = code8[q]·absmax2 + offset, weight = code4[c]·absmax.
 */

/** A quantization format for frozen weights. */
export type QuantFormat = 'nf4' | 'fp4' | 'int8';

/** The 4-bit formats (blockwise, two codes per byte). */
export type Quant4Format = 'nf4' | 'fp4';

/** Elements per absmax block of the 4-bit formats. */
export const BLOCK_4BIT = 64;
/** Absmax values per block of the second (8-bit) quantization level. */
export const BLOCK_ABSMAX = 256;

const f = Math.fround;

/** The 16 NF4 levels (QLoRA's NormalFloat: quantiles of N(0, 1) scaled to [-1, 1]), code 0..15. */
export const NF4_LEVELS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
].map(f);

/**
 * The 16 FP4 levels (1 sign bit, then 3 bits of an exponent-2 mantissa-1 float with bias 3, scaled
 * so that the largest magnitude, 12, is 1): code c is sign(c & 8) · magnitude(c & 7).
 */
export const FP4_LEVELS: readonly number[] = (() => {
  const mag = [0, 0.005208333333, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25].map(f);
  return [...mag, ...mag.map((m) => -m)];
})();

// Decision thresholds of bitsandbytes' NF4 and FP4 encoders (midpoints of neighbouring levels as
// f32 constants): a value equal to a threshold takes the lower code.
const NF4_CUTS = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(f);
const FP4_CUTS = [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333].map(f);
/** FP4 magnitude codes (3 bits) in increasing order of magnitude. */
const FP4_ORDER = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

/** Number of thresholds in `cuts` that x exceeds (a NaN exceeds none). */
function rank(cuts: readonly number[], x: number): number {
  let r = 0;
  while (r < cuts.length && x > cuts[r]) r++;
  return r;
}

/** The NF4 code of a value already divided by its block's absmax. */
export function encodeNF4(x: number): number {
  return rank(NF4_CUTS, x);
}

/** The FP4 code of a value already divided by its block's absmax (the sign bit is 8). */
export function encodeFP4(x: number): number {
  return FP4_ORDER[rank(FP4_CUTS, Math.abs(x))] | (x < 0 ? 8 : 0);
}

/**
 * bitsandbytes' signed 8-bit dynamic map (create_dynamic_map: 256 sorted f32 values in [-1, 1], 0
 * at index 127, 1 at 255): for each decimal exponent e = -6..0, the 2^(e+6) midpoints of an f32
 * linspace(0.1, 1, 2^(e+6) + 1) scaled by 10^e, with both signs, plus 0 and 1. Pinned as the f32 bit
 * patterns torch computes on the CPU, because the last bit of a few entries depends on how torch's
 * linspace rounds (it changed between torch versions); the tests check every entry against the
 * recipe in float64.
 */
export const DYNAMIC_MAP: Float32Array = new Float32Array(
  new Uint32Array([
    0xbf7e3333, 0xbf7a9999, 0xbf770000, 0xbf736666, 0xbf6fcccc, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccc, 0xbf5a3333, 0xbf569999, 0xbf530000, 0xbf4f6666, 0xbf4bcccc, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6667, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6667,
    0xbf27cccd, 0xbf243333, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccd, 0xbf003333, 0xbef93334, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53332, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13332, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d999a, 0xbe6f3334, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe359999, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f5, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c28, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147a, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae147,
    0xbcfeb852, 0xbce7ae13, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5c, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5c, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae13, 0x3cfeb852, 0x3d0ae147,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147a, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c28, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f5, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e359999, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3334, 0x3e7d999a, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13332, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53332, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93334, 0x3f003333, 0x3f03cccd, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243333, 0x3f27cccd, 0x3f2b6667,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6667, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccc, 0x3f4f6666, 0x3f530000, 0x3f569999, 0x3f5a3333, 0x3f5dcccc, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccc, 0x3f736666, 0x3f770000, 0x3f7a9999, 0x3f7e3333, 0x3f800000,
  ]).buffer,
);

/**
 * The dynamic-map code of x in [-1, 1] by bitsandbytes' search: a binary search over the sorted map
 * that ends on an even index p, then the nearer of p and its neighbour on x's side, comparing x with
 * the f32 midpoint (a tie keeps p).
 */
export function encodeDynamic(x: number, map: Float32Array = DYNAMIC_MAP): number {
  let p = 127;
  let lo = 0;
  let hi = 255;
  for (let step = 64; step > 0; step >>= 1) {
    if (x > map[p]) {
      lo = p;
      p += step;
    } else {
      hi = p;
      p -= step;
    }
  }
  const v = map[p];
  if (x > v) return x > f(f(map[hi] + v) * 0.5) ? hi : p;
  return x < f(f(map[lo] + v) * 0.5) ? lo : p;
}

/** A 4-bit quantized matrix on the CPU (see the module comment for the layout). */
export interface Quantized4Bit {
  format: Quant4Format;
  /** ceil(n / 2) bytes of packed codes. */
  codes: Uint8Array;
  /** Double-quantized absmax: one 8-bit dynamic-map code per 64-element block. */
  absmaxCodes: Uint8Array;
  /** f32 scale per 256 absmax codes. */
  absmax2: Float32Array;
  /** Mean of the absmax values, subtracted before their quantization (f32). */
  offset: number;
}

/** An int8 matrix: codes round(127·w / absmax) per row, with each row's absmax. */
export interface QuantizedInt8 {
  format: 'int8';
  codes: Int8Array;
  rowAbsmax: Float32Array;
}

/** Absmax of each block of `block` consecutive values (the last block may be short). */
function blockAbsmax(x: ArrayLike<number>, block: number): Float32Array {
  const out = new Float32Array(Math.ceil(x.length / block));
  for (let i = 0; i < x.length; i++) {
    const b = Math.floor(i / block);
    out[b] = Math.max(out[b], Math.abs(x[i]));
  }
  return out;
}

/**
 * Quantizes f32 values to NF4 or FP4 codes with double-quantized absmax (bitsandbytes'
 * quantize_4bit with blocksize 64 and compress_statistics). Each value is multiplied by the f32
 * reciprocal of its block's absmax before coding; an all-zero block (reciprocal ∞, 0·∞ = NaN) takes
 * code 0, as it does there, and still dequantizes to zero.
 */
export function quantize4bit(w: Float32Array, format: Quant4Format): Quantized4Bit {
  const encode = format === 'nf4' ? encodeNF4 : encodeFP4;
  const absmax = blockAbsmax(w, BLOCK_4BIT);
  const codes = new Uint8Array(Math.ceil(w.length / 2));
  for (let i = 0; i < codes.length * 2; i++) {
    const inv = f(1 / absmax[Math.floor(i / BLOCK_4BIT)]);
    const c = encode(f((i < w.length ? w[i] : 0) * inv));
    codes[i >> 1] |= i & 1 ? c : c << 4;
  }
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f(sum / absmax.length);
  const centered = absmax.map((a) => f(a - offset));
  const absmax2 = blockAbsmax(centered, BLOCK_ABSMAX);
  const absmaxCodes = new Uint8Array(absmax.length);
  for (let b = 0; b < absmax.length; b++) {
    const inv = f(1 / absmax2[Math.floor(b / BLOCK_ABSMAX)]);
    absmaxCodes[b] = encodeDynamic(f(centered[b] * inv));
  }
  return { format, codes, absmaxCodes, absmax2, offset };
}

/** The f32 absmax of each 64-element block, decoded from its double quantization. */
export function decodeAbsmax(q: Quantized4Bit): Float32Array {
  return Float32Array.from(q.absmaxCodes, (c, b) =>
    f(f(DYNAMIC_MAP[c] * q.absmax2[Math.floor(b / BLOCK_ABSMAX)]) + q.offset),
  );
}

/** The f32 values of the first n elements of a 4-bit matrix: level(code) · absmax of its block. */
export function dequantize4bit(q: Quantized4Bit, n: number): Float32Array {
  const levels = q.format === 'nf4' ? NF4_LEVELS : FP4_LEVELS;
  const absmax = decodeAbsmax(q);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const byte = q.codes[i >> 1];
    out[i] = f(levels[i & 1 ? byte & 15 : byte >> 4] * absmax[Math.floor(i / BLOCK_4BIT)]);
  }
  return out;
}

/**
 * The f32 step of an int8 row, absmax · f32(1/127): a value is code · step, one f32 product, so a
 * GPU kernel gets the same bits (shader compilers may reassociate a chain of two products).
 */
export const int8Step = (absmax: number): number => f(absmax * f(1 / 127));

/**
 * Quantizes a row-major [rows, cols] matrix to int8 with one absmax per row: code =
 * round-half-even(w · f32(127 / absmax)) (LLM.int8's vector-wise quantization). A row of zeros has
 * absmax 0 and codes 0.
 */
export function quantizeInt8(w: Float32Array, rows: number, cols: number): QuantizedInt8 {
  const rowAbsmax = blockAbsmax(w, cols);
  const codes = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    if (rowAbsmax[r] === 0) continue;
    const s = f(127 / rowAbsmax[r]);
    for (let c = 0; c < cols; c++) codes[r * cols + c] = roundHalfEven(f(w[r * cols + c] * s));
  }
  return { format: 'int8', codes, rowAbsmax };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The f32 values of an int8 matrix [rows, cols]: code · int8Step(absmax of its row). */
export function dequantizeInt8(q: QuantizedInt8, cols: number): Float32Array {
  const steps = q.rowAbsmax.map(int8Step);
  return Float32Array.from(q.codes, (c, i) => f(c * steps[Math.floor(i / cols)]));
}

/** The quantization of a weight [rows, cols] (row-major f32 values) in `format`, on the CPU. */
export function quantizeValues(
  w: Float32Array,
  format: QuantFormat,
  rows: number,
  cols: number,
): Quantized4Bit | QuantizedInt8 {
  return format === 'int8' ? quantizeInt8(w, rows, cols) : quantize4bit(w, format);
}
