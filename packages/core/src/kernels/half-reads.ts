/** WGSL for reading frozen half-precision or quantized operands in place (no WebGPU imports: plans are pure). */

import { FP4_LEVELS, NF4_LEVELS, type QuantFormat } from '../quant/formats.js';
import { GGML_LAYOUTS, type GgmlFormat, isGgmlFormat, type QuantStorage } from '../quant/ggml.js';

/**
 * WGSL functions reading f16/bf16 values stored two per u32 word (low half first) as f32, for
 * kernels that take a frozen half-precision weight as it is stored: `<t>x4` decodes four values
 * from a vec2<u32>, `<t>at` the half of word w at parity p (0: low, 1: high).
 */
export const HALF_READS = `
fn bf16x4(u: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(bitcast<f32>(u.x << 16u), bitcast<f32>(u.x & 0xffff0000u), bitcast<f32>(u.y << 16u), bitcast<f32>(u.y & 0xffff0000u));
}
fn f16x4(u: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); }
fn bf16at(w: u32, p: u32) -> f32 { return bitcast<f32>(select(w << 16u, w & 0xffff0000u, p == 1u)); }
fn f16at(w: u32, p: u32) -> f32 { return unpack2x16float(w)[p]; }
`;

/** How a kernel stores an operand: f32, a frozen half type, or a quantized format (quant/). */
export type OperandType = 'f32' | 'f16' | 'bf16' | QuantStorage;

/** Whether an operand type is a quantized format (its kernels bind a scale array too). */
export const isQuantType = (t: OperandType | undefined): t is QuantStorage =>
  t === 'nf4' || t === 'fp4' || t === 'int8' || isGgmlFormat(t);

/** A WGSL f32 literal that round-trips exactly. */
const lit = (x: number) => `${x === 0 ? '0.0' : x.toPrecision(9)}f`;

const I8_READS = `fn i8at(w: u32, b: u32) -> f32 { return f32(extractBits(bitcast<i32>(w), b * 8u, 8u)); }
fn i8x4(w: u32, s: f32) -> vec4<f32> {
  return vec4<f32>(i8at(w, 0u), i8at(w, 1u), i8at(w, 2u), i8at(w, 3u)) * s;
}`;

/**
 * WGSL reading quantized values stored as u32 words, with f32 scales in QS (one per 64-element
 * block for nf4/fp4: the decoded absmax; one per row for int8: the row's step, absmax/127):
 *  - 4-bit: byte j of the packed codes holds element 2j in its high nibble and 2j+1 in its low one;
 *    `q4x4(w, h, s)` decodes elements 4i..4i+3 from 16-bit half h of word w, `q4at(w, i, s)` element i;
 *  - int8: byte j of the codes is element j (two's complement); value code·step.
 * Each value is one f32 product, so the decoded bits are the CPU's (quant/formats.ts).
 */
export function quantReads(format: QuantFormat, scales: number): string {
  const decl = `@group(0) @binding(${scales}) var<storage, read> QS: array<f32>;\n`;
  if (format === 'int8') return decl + I8_READS;
  const levels = (format === 'nf4' ? NF4_LEVELS : FP4_LEVELS).map(lit).join(', ');
  return `${decl}const Q4_LEVELS = array<f32, 16>(${levels});
fn q4(c: u32) -> f32 { return Q4_LEVELS[c & 15u]; }
fn q4x4(w: u32, h: u32, s: f32) -> vec4<f32> {
  let b = w >> (h * 16u);
  return vec4<f32>(q4(b >> 4u) * s, q4(b) * s, q4(b >> 12u) * s, q4(b >> 8u) * s);
}
fn q4at(w: u32, i: u32, s: f32) -> f32 { return q4(w >> (((i >> 1u) & 3u) * 8u + select(4u, 0u, (i & 1u) == 1u))) * s; }`;
}

/**
 * Reads of a llama.cpp type as quant/ggml.ts unpacks it: 8-bit codes as int8's, 4-bit codes two per
 * byte with the even element in the low nibble, and QS holding each sub-block's scale (q4_k: scale
 * and min side by side). A vec4 never straddles sub-blocks (they are 16 or 32 elements long).
 */
function ggmlReads(name: string, format: GgmlFormat, scales: number) {
  const { sub, bits, mins, zero } = GGML_LAYOUTS[format];
  const shift = (per: number) => Math.log2(sub / per);
  // Scale and min of the sub-block holding vec4 / element index i.
  const scaled = (v: string, i: string, per: number) => {
    const b = `((${i}) >> ${shift(per)}u)`;
    const q = zero ? `(${v} - ${(-zero).toFixed(1)})` : v;
    return mins ? `(${q} * QS[2u * ${b}] - QS[2u * ${b} + 1u])` : `(${q} * QS[${b}])`;
  };
  const decl = `@group(0) @binding(${scales}) var<storage, read> QS: array<f32>;\n`;
  if (bits === 8)
    return {
      vec4: (i: string) => scaled(`i8x4(${name}[${i}], 1.0)`, i, 4),
      scalar: (i: string) => scaled(`i8at(${name}[(${i}) >> 2u], (${i}) & 3u)`, i, 1),
      prelude: decl + I8_READS,
    };
  return {
    vec4: (i: string) => scaled(`g4x4(${name}[(${i}) >> 1u], (${i}) & 1u)`, i, 4),
    scalar: (i: string) => scaled(`f32((${name}[(${i}) >> 3u] >> (((${i}) & 7u) * 4u)) & 15u)`, i, 1),
    prelude: `${decl}fn g4x4(w: u32, h: u32) -> vec4<f32> {
  let b = w >> (h * 16u);
  return vec4<f32>(f32(b & 15u), f32((b >> 4u) & 15u), f32((b >> 8u) & 15u), f32((b >> 12u) & 15u));
}`,
  };
}

/** Where a quantized operand's scales are bound and how long its rows are (int8: one scale per row). */
export interface QuantBinding {
  /** Binding number of the f32 scale array QS. */
  scales: number;
  /** WGSL u32 expression: elements per stored row of the operand. */
  rowLen: string;
}

/**
 * How a kernel reads an operand bound as `name`: the WGSL element type of its binding when read by
 * vec4 or by element, the expressions loading 4 elements (vec4 index i, elements 4i..4i+3) or one
 * element (index i) as f32, and the WGSL the shader needs for them (`prelude`: decoding functions
 * and, for a quantized operand, the declaration of its scales at `quant.scales`). Vec4 reads of an
 * int8 operand need rows that are a multiple of 4 long (the 4 elements share a row's scale).
 */
export function operandReads(name: string, dtype: OperandType, quant?: QuantBinding) {
  if (dtype === 'f32')
    return {
      type: (vec: boolean) => (vec ? 'vec4<f32>' : 'f32'),
      vec4: (i: string) => `${name}[${i}]`,
      scalar: (i: string) => `${name}[${i}]`,
      prelude: '',
    };
  if (isQuantType(dtype)) {
    if (!quant) throw new Error(`operandReads: a ${dtype} operand needs its scale binding`);
    if (isGgmlFormat(dtype)) return { type: () => 'u32', ...ggmlReads(name, dtype, quant.scales) };
    const { rowLen } = quant;
    const int8 = dtype === 'int8';
    return {
      type: () => 'u32',
      vec4: (i: string) =>
        int8
          ? `i8x4(${name}[${i}], QS[(4u * (${i})) / ${rowLen}])`
          : `q4x4(${name}[(${i}) >> 1u], (${i}) & 1u, QS[(${i}) >> 4u])`,
      scalar: (i: string) =>
        int8
          ? `(i8at(${name}[(${i}) >> 2u], (${i}) & 3u) * QS[(${i}) / ${rowLen}])`
          : `q4at(${name}[(${i}) >> 3u], ${i}, QS[(${i}) >> 6u])`,
      prelude: quantReads(dtype, quant.scales),
    };
  }
  return {
    type: (vec: boolean) => (vec ? 'vec2<u32>' : 'u32'),
    vec4: (i: string) => `${dtype}x4(${name}[${i}])`,
    scalar: (i: string) => `${dtype}at(${name}[(${i}) >> 1u], (${i}) & 1u)`,
    prelude: HALF_READS,
  };
}
