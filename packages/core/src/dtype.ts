import { DTypeError } from './errors.js';

/**
 * Element types a GPU tensor can hold. f16 requires the adapter's shader-f16 feature. bf16 has no
 * WGSL type: it is stored as raw 16-bit patterns, two per u32 word (low half first), which kernels
 * decode with integer ops; it serves frozen weights (see cast and matmul).
 */
export type DType = 'f32' | 'i32' | 'f16' | 'bf16';

/** The 16-bit float types frozen weights may be kept in. */
export type HalfDType = 'f16' | 'bf16';

/** What a weight may be stored as. */
export type FloatDType = 'f32' | HalfDType;

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, i32: 4, f16: 2, bf16: 2 };

/**
 * Whether `dtype` is a 16-bit float storage type (f16 or bf16). Such tensors are frozen weights: only
 * some ops read them ({@link matmul} as b, {@link embedding}, {@link cast}), and a trainable
 * {@link Parameter} cannot hold one.
 */
export function isHalf(dtype: string): dtype is HalfDType {
  return dtype === 'f16' || dtype === 'bf16';
}

export type TypedArrayFor<D extends DType> = D extends 'i32'
  ? Int32Array
  : D extends HalfDType
    ? Uint16Array
    : Float32Array;

export function assertDType(actual: DType, allowed: readonly DType[], op: string): void {
  if (!allowed.includes(actual)) {
    throw new DTypeError(`${op}: dtype ${actual} not supported (expected ${allowed.join(' or ')})`);
  }
}
