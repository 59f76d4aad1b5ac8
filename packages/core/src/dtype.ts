import { DTypeError } from './errors.js';

/** Element types a GPU tensor can hold. f16 requires the adapter's shader-f16 feature. */
export type DType = 'f32' | 'i32' | 'f16';

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, i32: 4, f16: 2 };

/** WGSL scalar type for a dtype. */
export function wgslType(dtype: DType): string {
  return dtype === 'f32' ? 'f32' : dtype === 'i32' ? 'i32' : 'f16';
}

export type TypedArrayFor<D extends DType> = D extends 'i32'
  ? Int32Array
  : D extends 'f16'
    ? Uint16Array
    : Float32Array;

export function assertDType(actual: DType, allowed: readonly DType[], op: string): void {
  if (!allowed.includes(actual)) {
    throw new DTypeError(`${op}: dtype ${actual} not supported (expected ${allowed.join(' or ')})`);
  }
}
