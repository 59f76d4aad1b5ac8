import type { MemoryCategory } from '../device/memory.js';
import type { DType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { encodeBF16, encodeF16, f32ToBf16Bits } from '../float-codecs.js';
import { elementWindows, f16Enable, grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import { fmt, numel, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';

/**
 * A number, or arrays of numbers nested to any depth, as {@link tensor} takes them: the shape is read
 * from the nesting (`[[1, 2], [3, 4]]` is [2, 2]), and ragged nesting throws {@link ShapeError}.
 */
export type NestedArray = number | NestedArray[];

function flatten(data: NestedArray, shape: number[], out: number[], depth = 0): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new ShapeError('tensor(): ragged nested array');
    for (const d of data) flatten(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new ShapeError('tensor(): ragged nested array');
    out.push(data);
  }
}

/**
 * Uploads data to a new tensor. `data` is a typed array or flat number array (then `shape` is required)
 * or a nested array (shape inferred). f16 and bf16 tensors take float values (rounded to the nearest
 * half) or, as a Uint16Array, the bit patterns themselves.
 */
export function tensor(
  data: ArrayLike<number> | NestedArray,
  shape?: Shape,
  dtype: DType = data instanceof Int32Array ? 'i32' : 'f32',
  category: MemoryCategory = 'activations',
): Tensor {
  let flat: ArrayLike<number>;
  let shp: number[];
  if (typeof data === 'number' || (Array.isArray(data) && Array.isArray(data[0]))) {
    const out: number[] = [];
    const inferred: number[] = [];
    flatten(data as NestedArray, inferred, out);
    flat = out;
    shp = shape ? [...shape] : inferred;
  } else {
    flat = data as ArrayLike<number>;
    shp = shape ? [...shape] : [flat.length];
  }
  if (numel(shp) !== flat.length) {
    throw new ShapeError(`tensor(): ${flat.length} values do not fill shape ${fmt(shp)}`);
  }
  const t = Tensor.empty(shp, dtype, category);
  const bytes =
    dtype === 'f32'
      ? flat instanceof Float32Array
        ? flat
        : Float32Array.from(flat)
      : dtype === 'i32'
        ? flat instanceof Int32Array
          ? flat
          : Int32Array.from(flat, (v) => {
              if (!Number.isInteger(v)) throw new ShapeError(`tensor(): ${v} is not an integer (dtype i32)`);
              return v;
            })
        : flat instanceof Uint16Array
          ? flat
          : dtype === 'bf16'
            ? encodeBF16(flat)
            : encodeF16(flat);
  if (t.size > 0) t.device.write(t.buffer, 0, bytes);
  return t;
}

/** A tensor filled with `value`. */
export function full(
  shape: Shape,
  value: number,
  dtype: DType = 'f32',
  category: MemoryCategory = 'activations',
): Tensor {
  if (Object.is(value, 0)) return Tensor.zeros(shape, dtype, category);
  const t = Tensor.empty(shape, dtype, category);
  if (dtype === 'bf16') {
    fillBf16(t, value);
    return t;
  }
  const ty = dtype;
  for (const [start, len] of elementWindows(t.size))
    runKernel({
      key: `fill:${dtype}`,
      wgsl: () => `${f16Enable([dtype])}${storageDecl(0, 'out', ty, 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  out[gi] = ${ty}(P.v);
}`,
      inputs: [],
      outputs: [t.window(start, len)],
      uniforms: [
        ['n', 'u32', len],
        ['v', 'f32', value],
      ],
      workgroups: grid(len),
    });
  return t;
}

/** bf16 has no WGSL type: each thread stores one u32 word holding two copies of the value's bits. */
function fillBf16(t: Tensor, value: number): void {
  const bits = f32ToBf16Bits(value);
  for (const [start, len] of elementWindows(t.size)) {
    const words = Math.ceil(len / 2);
    runKernel({
      key: 'fill:bf16',
      wgsl: () => `${storageDecl(0, 'out', 'u32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  out[gi] = P.w;
}`,
      inputs: [],
      outputs: [t.window(start, len)],
      uniforms: [
        ['n', 'u32', words],
        ['w', 'u32', (bits | (bits << 16)) >>> 0],
      ],
      workgroups: grid(words),
    });
  }
}

/**
 * A tensor of zeros in any dtype (f16 needs the adapter's shader-f16, else {@link DTypeError}). No
 * kernel or upload: a new buffer is zeroed by WebGPU, a pooled one is cleared. `category` is the
 * memory report's bucket for it, e.g. 'optimizer' for optimizer state.
 */
export function zeros(shape: Shape, dtype: DType = 'f32', category: MemoryCategory = 'activations'): Tensor {
  return full(shape, 0, dtype, category);
}

/** A tensor of ones; dtype and category as {@link zeros}, and {@link full} for any other value. */
export function ones(shape: Shape, dtype: DType = 'f32', category: MemoryCategory = 'activations'): Tensor {
  return full(shape, 1, dtype, category);
}

/**
 * Zeros with t's shape and dtype. Counted as 'activations' whatever t's category: use
 * {@link zeros} to choose one.
 */
export function zerosLike(t: Tensor): Tensor {
  return full(t.shape, 0, t.dtype);
}

/**
 * Ones with t's shape and dtype (the seed gradient {@link backward} starts from). Counted as
 * 'activations' whatever t's category: use {@link ones} to choose one.
 */
export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, t.dtype);
}

/** 0, 1, ..., n-1 as i32 (positions, indices). */
export function arange(n: number, dtype: DType = 'i32'): Tensor {
  const a = dtype === 'i32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return tensor(a, [n], dtype);
}
