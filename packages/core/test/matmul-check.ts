/** Checks of a product against a float64 CPU product, shared by the quantized-weight tests. */
import { expect } from 'vitest';
import { backward, getDevice, matmul, mul, type QuantizedTensor, sum, tensor } from '../src/index.js';

/** C = x·Wᵀ with W dequantized on the CPU, float64 sums. */
export function refMatmul(
  x: Float32Array,
  w: Float32Array,
  M: number,
  N: number,
  K: number,
  transB: boolean,
) {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * (transB ? w[n * K + k] : w[k * N + n]);
      out[m * N + n] = s;
    }
  return out;
}

/** The largest error relative to the largest reference magnitude is below `tol`. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  let scaleMax = 1e-6;
  for (let i = 0; i < want.length; i++) scaleMax = Math.max(scaleMax, Math.abs(want[i]));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scaleMax);
  expect(worst, what).toBeLessThan(tol);
}

/**
 * y = x·qᵀ, and dx = g·q through a backward pass with upstream gradient g, both checked against
 * float64 products with `wd`, the weight's values decoded on the CPU (x is [M, K], q [N, K]).
 */
export async function expectQuantizedProduct(
  q: QuantizedTensor,
  wd: Float32Array,
  x: Float32Array,
  g: Float32Array,
  what: string,
): Promise<void> {
  const [N, K] = q.shape;
  const M = x.length / K;
  const xt = tensor(x, [M, K]);
  xt.requiresGrad = true;
  const y = matmul(xt, q, { transB: true });
  backward(sum(mul(y, tensor(g, [M, N]))));
  expectClose((await y.data()) as Float32Array, refMatmul(x, wd, M, N, K, true), 1e-5, what);
  // dX = dY·W: W [N, K] not transposed.
  expectClose((await xt.grad?.data()) as Float32Array, refMatmul(g, wd, M, K, N, false), 1e-5, `d ${what}`);
  xt.dispose();
  y.dispose();
}

/** Runs `fn` with the device's texture matmul path forced on or off. */
export async function withTextures(mode: 'never' | 'always', fn: () => Promise<void>): Promise<void> {
  const dev = getDevice();
  const prev = dev.matmulTextures;
  dev.matmulTextures = mode;
  try {
    await fn();
  } finally {
    dev.matmulTextures = prev;
  }
}

/**
 * The product kernels' keys of a profile show `type` (a half or quantized weight) read as stored as
 * A and as B, B on a medium tile too, and no packing pass converting it.
 */
export function expectReadAsStored(keys: string[], type: string): void {
  expect(keys.some((k) => k.endsWith(`:a-${type}`))).toBe(true);
  expect(keys.some((k) => k.endsWith(`:b-${type}`))).toBe(true);
  expect(keys.some((k) => k.startsWith('mm_texture:n:8x2') && k.endsWith(`:b-${type}`))).toBe(true);
  expect(keys.filter((k) => k.startsWith('mm_pack') && k.includes(type))).toEqual([]);
}
