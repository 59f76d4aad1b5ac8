/** WGSL for reading frozen half-precision operands in place (no WebGPU imports: plans are pure). */

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

/**
 * How a kernel reads an f32, f16 or bf16 operand bound as `name`: the WGSL element type of its
 * binding when read by vec4 or by element, and the expressions loading 4 elements (vec4 index i,
 * elements 4i..4i+3) or one element (index i) as f32. Half operands need HALF_READS in the shader.
 */
export function operandReads(name: string, dtype: 'f32' | 'f16' | 'bf16') {
  if (dtype === 'f32')
    return {
      type: (vec: boolean) => (vec ? 'vec4<f32>' : 'f32'),
      vec4: (i: string) => `${name}[${i}]`,
      scalar: (i: string) => `${name}[${i}]`,
    };
  return {
    type: (vec: boolean) => (vec ? 'vec2<u32>' : 'u32'),
    vec4: (i: string) => `${dtype}x4(${name}[${i}])`,
    scalar: (i: string) => `${dtype}at(${name}[(${i}) >> 1u], (${i}) & 1u)`,
  };
}
