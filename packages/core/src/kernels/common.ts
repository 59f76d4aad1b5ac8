import type { DType } from '../dtype.js';
import { getDevice } from '../runtime.js';
import type { Tensor } from '../tensor.js';

/** One field of a kernel's uniform block. Arrays are packed as vec4 groups to meet WGSL's 16-byte array stride. */
export type UniformField =
  | readonly [name: string, type: 'u32' | 'i32' | 'f32', value: number]
  | readonly [name: string, type: 'vec4u', values: readonly number[]];

export interface PackedUniforms {
  /** WGSL `struct Params { ... }` declaration. */
  struct: string;
  data: ArrayBuffer;
}

/** Lays out uniform fields following WGSL's uniform-address-space rules. */
export function packUniforms(fields: readonly UniformField[]): PackedUniforms {
  const lines: string[] = [];
  let offset = 0;
  const writes: Array<() => void> = [];
  const buf = new ArrayBuffer(256);
  const dv = new DataView(buf);
  for (const f of fields) {
    if (f[1] === 'vec4u') {
      offset = Math.ceil(offset / 16) * 16;
      const groups = Math.max(1, Math.ceil(f[2].length / 4));
      const at = offset;
      const vals = f[2];
      writes.push(() => {
        vals.forEach((v, i) => {
          dv.setUint32(at + i * 4, v >>> 0, true);
        });
      });
      lines.push(`  ${f[0]}: array<vec4<u32>, ${groups}>,`);
      offset += groups * 16;
    } else {
      const at = offset;
      const [, type, value] = f;
      writes.push(() => {
        if (type === 'f32') dv.setFloat32(at, value, true);
        else if (type === 'i32') dv.setInt32(at, value, true);
        else dv.setUint32(at, value >>> 0, true);
      });
      lines.push(`  ${f[0]}: ${type},`);
      offset += 4;
    }
  }
  for (const w of writes) w();
  const size = Math.max(16, Math.ceil(offset / 16) * 16);
  return {
    struct: `struct Params {\n${lines.join('\n')}\n}\n@group(0) @binding(BINDING) var<uniform> P: Params;`,
    data: buf.slice(0, size),
  };
}

/** WGSL accessor for element `i` of a vec4-packed uniform array. */
export function uarr(name: string, i: number | string): string {
  return typeof i === 'number' ? `P.${name}[${i >> 2}][${i & 3}]` : `P.${name}[(${i}) / 4u][(${i}) % 4u]`;
}

export type Access = 'read' | 'read_write';

export function storageDecl(binding: number, name: string, type: string, access: Access): string {
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${type}>;`;
}

/** Threads per workgroup for 1-D elementwise kernels. */
export const WG = 256;

/** Workgroup grid for `threads` invocations of size `wg`, split over x/y to stay under the per-dimension limit. */
export function grid(threads: number, wg = WG): [number, number, number] {
  const groups = Math.ceil(threads / wg);
  if (groups === 0) return [0, 1, 1];
  const maxX = getDevice().limits.maxComputeWorkgroupsPerDimension;
  if (groups <= maxX) return [groups, 1, 1];
  const y = Math.ceil(groups / maxX);
  return [Math.ceil(groups / y), y, 1];
}

/** Header for 1-D kernels: declares `main` with a flat invocation index `gi`. */
export function main1d(wg = WG): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.y * nwg.x + wid.x) * ${wg}u + lid;`;
}

export function f16Enable(dtypes: readonly DType[]): string {
  return dtypes.includes('f16') ? 'enable f16;\n' : '';
}

/**
 * WGSL helpers converting between f32 and the 16-bit floats as bit patterns (u32 in, u32 out), for
 * kernels that read or write half tensors as u32 words (two halves per word, low first): bf16 then
 * needs no WGSL type and f16 no shader-f16, and NaN payloads, infinities and subnormals follow the
 * CPU codecs in safetensors/format.ts exactly (WGSL leaves float conversions of NaN and out-of-range
 * values indeterminate). Encoding rounds to nearest even.
 */
export const HALF_BITS = `
fn f16_to_f32(h: u32) -> u32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0x1fu) { return s | 0x7f800000u | (m << 13u); }
  if (e != 0u) { return s | ((e + 112u) << 23u) | (m << 13u); }
  if (m == 0u) { return s; }
  // Subnormal m·2^-24: normalise around its leading bit p.
  let p = firstLeadingBit(m);
  return s | ((p + 103u) << 23u) | ((m << (23u - p)) & 0x7fffffu);
}
fn f32_to_f16(b: u32) -> u32 {
  let s = (b >> 16u) & 0x8000u;
  let exp = (b >> 23u) & 0xffu;
  let mant = b & 0x7fffffu;
  if (exp == 0xffu) { return s | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u); }
  let e = i32(exp) - 112;
  if (e >= 0x1f) { return s | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return s; }
    let full = mant | 0x800000u;
    let shift = u32(14 - e);
    let rem = full & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    var m = full >> shift;
    if (rem > half || (rem == half && (m & 1u) != 0u)) { m += 1u; }
    return s | m;
  }
  var m = mant >> 13u;
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (m & 1u) != 0u)) { m += 1u; }
  // A mantissa carry bumps the exponent, up to Inf.
  return s | ((u32(e) << 10u) + m);
}
fn bf16_to_f32(h: u32) -> u32 { return h << 16u; }
fn f32_to_bf16(b: u32) -> u32 {
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0u) { return (b >> 16u) | 0x40u; }
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
`;

export interface KernelCall {
  key: string;
  /** WGSL source without the uniform declaration; `PARAMS` is replaced by it. */
  wgsl: () => string;
  inputs: readonly (Tensor | GPUBufferBinding)[];
  outputs: readonly (Tensor | GPUBufferBinding)[];
  uniforms?: readonly UniformField[];
  workgroups: readonly [number, number, number];
}

/**
 * Records one dispatch. Bindings: inputs (read) first, then outputs (read_write), then the uniform block.
 * The WGSL must declare them in that order; `PARAMS` in the source is replaced by the uniform struct.
 */
export function runKernel(call: KernelCall): void {
  const dev = getDevice();
  const buffers = [...call.inputs, ...call.outputs].map((t) => ('binding' in t ? t.binding() : t));
  const packed = call.uniforms ? packUniforms(call.uniforms) : null;
  dev.dispatch({
    key: call.key,
    wgsl: () => {
      const src = call.wgsl();
      return packed ? src.replace('PARAMS', packed.struct.replace('BINDING', String(buffers.length))) : src;
    },
    buffers,
    uniforms: packed?.data,
    workgroups: call.workgroups,
  });
}

/**
 * Splits n elements into windows that each fit one binding (the adapter's maxStorageBufferBindingSize)
 * and start on a 256-element boundary, which satisfies every adapter's storage offset alignment.
 */
export function elementWindows(n: number): Array<[start: number, len: number]> {
  const maxElems = Math.max(256, Math.floor(getDevice().maxBindingBytes / 4 / 256) * 256);
  const out: Array<[number, number]> = [];
  for (let s = 0; s < n; s += maxElems) out.push([s, Math.min(maxElems, n - s)]);
  if (out.length === 0) out.push([0, 0]);
  return out;
}
