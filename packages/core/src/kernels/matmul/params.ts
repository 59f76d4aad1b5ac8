/** The matmul problem description and its uniform block (binding 3), shared by every matmul kernel. */

import type { OperandType } from '../half-reads.js';

export interface MatmulSpec {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Element offsets/strides; only their divisibility by 4 affects the plan (vec4 loads). Default 0 / dense. */
  aOff?: number;
  bOff?: number;
  cOff?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /**
   * Storage of B (default f32): a frozen f16/bf16 weight is read as stored, two halves per u32 word;
   * a quantized one (nf4/fp4/int8, non-batched) as its codes, decoded with the f32 scales bound at
   * QUANT_SCALES_BINDING.
   */
  bType?: OperandType;
}

export const MATMUL_PARAMS_BYTES = 64;

/** Binding of a quantized B's f32 scales (QS) in the buffer matmul kernels. */
export const QUANT_SCALES_BINDING = 5;

export const PARAMS_WGSL = `struct MatmulParams {
  M: u32, N: u32, K: u32, batch: u32,
  strideA: u32, strideB: u32, strideC: u32, aOff: u32,
  bOff: u32, cOff: u32, alpha: f32, accumulate: u32,
  kChunk: u32, splitK: u32, _p0: u32, _p1: u32,
}
@group(0) @binding(3) var<uniform> P: MatmulParams;`;

/**
 * Uniform buffer contents for binding 3. `kChunk` is K per split (plan.splitK > 1), else K.
 */
export function packMatmulParams(
  spec: MatmulSpec,
  plan: { splitK: number },
  opts: { alpha?: number; accumulate?: boolean } = {},
): ArrayBuffer {
  const buf = new ArrayBuffer(MATMUL_PARAMS_BYTES);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  const { M, N, K, batch } = spec;
  const aRows = spec.transA ? K * M : M * K;
  const bRows = spec.transB ? N * K : K * N;
  u[0] = M;
  u[1] = N;
  u[2] = K;
  u[3] = batch;
  u[4] = spec.strideA ?? aRows;
  u[5] = spec.strideB ?? bRows;
  u[6] = spec.strideC ?? M * N;
  u[7] = spec.aOff ?? 0;
  u[8] = spec.bOff ?? 0;
  u[9] = spec.cOff ?? 0;
  f[10] = opts.alpha ?? 1;
  u[11] = opts.accumulate ? 1 : 0;
  u[12] = Math.ceil(K / plan.splitK / 4) * 4;
  u[13] = plan.splitK;
  return buf;
}
