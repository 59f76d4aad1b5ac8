/**
 * llama.cpp's block-quantized tensor types (as stored in GGUF files) on the CPU: Q8_0, Q4_0, Q4_K
 * and Q6_K. A row of a weight is a run of fixed-size blocks, each a few f16 scales and packed
 * integer codes:
 *  - Q8_0: 32 elements in 34 bytes: f16 d, then 32 signed bytes q; value q·d.
 *  - Q4_0: 32 elements in 18 bytes: f16 d, then 16 bytes whose low nibbles are elements 0..15 and
 *    high nibbles elements 16..31; value (q − 8)·d.
 *  - Q4_K: 256 elements in 144 bytes: f16 d, f16 dmin, 12 bytes holding eight 6-bit scales and
 *    eight 6-bit mins (one pair per 32 elements), then 128 bytes of codes, each 32 of them holding
 *    64 elements (low nibbles first, then high nibbles); value (d·scale)·q − (dmin·min).
 *  - Q6_K: 256 elements in 210 bytes: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed
 *    byte scales (one per 16 elements), then f16 d; value (d·scale)·(q − 32).
 * Every product rounds to f32 where llama.cpp's reference dequantization does (without fused
 * multiply-adds), so values equal its output.
 *
 * For the matmul kernels a tensor is unpacked into {@link QuantizedGgml}: codes in element order and
 * each sub-block's f32 scale (and min) already multiplied out. Nothing is requantized: the values
 * decoded from it are the stored ones.
 */
import { f16BitsToF32 } from '../float-codecs.js';
import type { QuantFormat } from './formats.js';

/** A llama.cpp quantized type kept quantized on the GPU. */
export type GgmlFormat = 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';

/** What a QuantizedTensor holds: a format sharelora quantizes to, or a llama.cpp type kept as imported. */
export type QuantStorage = QuantFormat | GgmlFormat;

/** How a llama.cpp type is stored in a file and unpacked for the kernels. */
export interface GgmlLayout {
  /** The type's ggml_type id in GGUF tensor infos. */
  typeId: number;
  /** Elements per stored block and its bytes. */
  block: number;
  blockBytes: number;
  /** Elements sharing one f32 scale once unpacked. */
  sub: number;
  /** Bits per unpacked code: 8 (one signed byte per element) or 4 (two unsigned codes per byte). */
  bits: 4 | 8;
  /** Whether each sub-block has a min subtracted (Q4_K), stored after its scale. */
  mins: boolean;
  /** Added to a 4-bit code before scaling (Q4_0's −8). */
  zero: number;
}

/** The llama.cpp types sharelora keeps quantized, by name. */
export const GGML_LAYOUTS: Readonly<Record<GgmlFormat, GgmlLayout>> = {
  q8_0: { typeId: 8, block: 32, blockBytes: 34, sub: 32, bits: 8, mins: false, zero: 0 },
  q4_0: { typeId: 2, block: 32, blockBytes: 18, sub: 32, bits: 4, mins: false, zero: -8 },
  q4_k: { typeId: 12, block: 256, blockBytes: 144, sub: 32, bits: 4, mins: true, zero: 0 },
  q6_k: { typeId: 14, block: 256, blockBytes: 210, sub: 16, bits: 8, mins: false, zero: 0 },
};

/** The format with GGUF type id `typeId`, or undefined for a type not kept quantized. */
export function ggmlFormatOf(typeId: number): GgmlFormat | undefined {
  return (Object.keys(GGML_LAYOUTS) as GgmlFormat[]).find((f) => GGML_LAYOUTS[f].typeId === typeId);
}

/** Whether a string names a llama.cpp format. */
export const isGgmlFormat = (s: string | undefined): s is GgmlFormat =>
  s !== undefined && Object.hasOwn(GGML_LAYOUTS, s);

/**
 * A llama.cpp-quantized tensor unpacked for the kernels. Element e's code: 8-bit formats byte e
 * (two's complement: Q8_0's q, Q6_K's q − 32); 4-bit formats the low nibble of byte e/2 for even e
 * and the high nibble for odd e. Sub-block b = ⌊e / sub⌋ has scale `scales[b]` (Q4_K: `scales[2b]`
 * and its min `scales[2b + 1]`), and the value is (code + zero)·scale (− min).
 */
export interface QuantizedGgml {
  format: GgmlFormat;
  codes: Uint8Array;
  scales: Float32Array;
}

const f = Math.fround;

/** Bytes `n` elements of `format` take in a file (n a multiple of the block). */
export function ggmlStoredBytes(format: GgmlFormat, n: number): number {
  const { block, blockBytes } = GGML_LAYOUTS[format];
  if (n % block !== 0) throw new RangeError(`${format}: ${n} elements are not whole blocks of ${block}`);
  return (n / block) * blockBytes;
}

/** Q4_K's 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at `at`. */
function scaleMinK4(b: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [b[at + j] & 63, b[at + j + 4] & 63];
  return [(b[at + j + 4] & 15) | ((b[at + j - 4] >> 6) << 4), (b[at + j + 4] >> 4) | ((b[at + j] >> 6) << 4)];
}

/** Unpacks `n` elements of `format` stored as in a GGUF file (whole blocks) for the kernels. */
export function unpackGgml(format: GgmlFormat, bytes: Uint8Array, n: number): QuantizedGgml {
  const L = GGML_LAYOUTS[format];
  const need = ggmlStoredBytes(format, n);
  if (bytes.length < need)
    throw new RangeError(`${format}: ${n} elements need ${need} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const half = (at: number) => f16BitsToF32(dv.getUint16(at, true));
  const codes = new Uint8Array(L.bits === 8 ? n : Math.ceil(n / 2));
  const scales = new Float32Array((n / L.sub) * (L.mins ? 2 : 1));
  const put4 = (e: number, q: number) => {
    codes[e >> 1] |= (e & 1) === 0 ? q : q << 4;
  };
  for (let blk = 0; blk < n / L.block; blk++) {
    const at = blk * L.blockBytes;
    const e0 = blk * L.block;
    if (format === 'q8_0') {
      scales[blk] = half(at);
      codes.set(bytes.subarray(at + 2, at + 34), e0);
    } else if (format === 'q4_0') {
      scales[blk] = half(at);
      for (let j = 0; j < 16; j++) {
        put4(e0 + j, bytes[at + 2 + j] & 15);
        put4(e0 + j + 16, bytes[at + 2 + j] >> 4);
      }
    } else if (format === 'q4_k') {
      const d = half(at);
      const dmin = half(at + 2);
      for (let j = 0; j < 8; j++) {
        const [sc, m] = scaleMinK4(bytes, at + 4, j);
        scales[2 * (blk * 8 + j)] = f(d * sc);
        scales[2 * (blk * 8 + j) + 1] = f(dmin * m);
      }
      // Each 32 code bytes hold 64 elements: low nibbles the first 32, high nibbles the next.
      for (let c = 0; c < 4; c++)
        for (let l = 0; l < 32; l++) {
          const q = bytes[at + 16 + 32 * c + l];
          put4(e0 + 64 * c + l, q & 15);
          put4(e0 + 64 * c + 32 + l, q >> 4);
        }
    } else {
      const d = half(at + 208);
      for (let j = 0; j < 16; j++) scales[blk * 16 + j] = f(d * ((bytes[at + 192 + j] << 24) >> 24));
      // Each half of the block: 64 low-bit bytes and 32 high-bit bytes give 128 elements.
      for (let h = 0; h < 2; h++) {
        const ql = at + 64 * h;
        const qh = at + 128 + 32 * h;
        const e = e0 + 128 * h;
        for (let l = 0; l < 32; l++) {
          const hi = bytes[qh + l];
          codes[e + l] = ((bytes[ql + l] & 15) | ((hi & 3) << 4)) - 32;
          codes[e + l + 32] = ((bytes[ql + l + 32] & 15) | (((hi >> 2) & 3) << 4)) - 32;
          codes[e + l + 64] = ((bytes[ql + l] >> 4) | (((hi >> 4) & 3) << 4)) - 32;
          codes[e + l + 96] = ((bytes[ql + l + 32] >> 4) | (((hi >> 6) & 3) << 4)) - 32;
        }
      }
    }
  }
  return { format, codes, scales };
}

/** The f32 values of an unpacked tensor (what the kernels decode, computed on the CPU). */
export function dequantizeGgmlParts(parts: QuantizedGgml): Float32Array {
  const L = GGML_LAYOUTS[parts.format];
  const n = L.bits === 8 ? parts.codes.length : (parts.scales.length / (L.mins ? 2 : 1)) * L.sub;
  const out = new Float32Array(n);
  const signed = new Int8Array(parts.codes.buffer, parts.codes.byteOffset, parts.codes.length);
  for (let e = 0; e < n; e++) {
    const q = L.bits === 8 ? signed[e] : (parts.codes[e >> 1] >> ((e & 1) * 4)) & 15;
    const b = Math.floor(e / L.sub);
    out[e] = L.mins
      ? f(f((q + L.zero) * parts.scales[2 * b]) - parts.scales[2 * b + 1])
      : f((q + L.zero) * parts.scales[b]);
  }
  return out;
}

/** The f32 values of `n` elements of `format` stored as in a GGUF file: llama.cpp's dequantization. */
export function dequantizeGgml(format: GgmlFormat, bytes: Uint8Array, n: number): Float32Array {
  return dequantizeGgmlParts(unpackGgml(format, bytes, n));
}
