import type { QuantizedTensor } from '../../quant/tensor.js';
import { getDevice } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import { type MatmulSpec, packMatmulParams, QUANT_SCALES_BINDING } from './params.js';
import { runTextureMatmul, textureMatmulSuits } from './run-texture.js';
import { chooseMatmulPlan, type MatmulPlan } from './wgsl.js';

/**
 * Shape, transposes and batch strides (elements; 0 broadcasts one matrix over the batch). B's
 * storage type comes from its tensor: a frozen f16/bf16 B is read as stored.
 */
export type MatmulDispatch = Required<
  Pick<MatmulSpec, 'M' | 'N' | 'K' | 'batch' | 'transA' | 'transB' | 'strideA' | 'strideB' | 'strideC'>
>;

/** A single product (no batch) of M x N x K, neither operand transposed unless `trans` says so. */
export const denseDispatch = (
  M: number,
  N: number,
  K: number,
  trans: { transA?: boolean; transB?: boolean } = {},
): MatmulDispatch => ({
  M,
  N,
  K,
  batch: 1,
  transA: trans.transA ?? false,
  transB: trans.transB ?? false,
  strideA: 0,
  strideB: 0,
  strideC: 0,
});

/** Where each of a matrix's row blocks starts: block i's first row is the sum of the rows before it. */
export function rowBlockOffsets(blocks: readonly { shape: readonly number[] }[]): number[] {
  let row = 0;
  return blocks.map((b) => {
    const at = row;
    row += b.shape[0];
    return at;
  });
}

const UNIFORM_BINDING = 3;

/** Plans by shape and device: building one generates its WGSL source, too slow to repeat per call. */
const plans = new Map<string, MatmulPlan>();

/**
 * Records C = op(A)·op(B) for row-major operands with the plan chosen for this shape (register-tiled
 * kernel; lanes along M for skinny outputs; split-K with a reduction pass for long K and few tiles;
 * small-K for LoRA-rank inner dimensions).
 *
 * An operand or output over the storage binding limit (an LM head's [positions, vocabulary] logits
 * or their gradient) is handled in windows of whole rows: rows of A and C when A is not transposed,
 * or ranges of K (rows of Aᵀ and B) accumulated into C when it is. Windows start on multiples of 64
 * elements, which keeps every binding offset a multiple of 256 bytes.
 *
 * On CPU adapters, large products pack both operands into textures first (run-texture.ts).
 * A, C and every windowed operand are f32; B may be a frozen f16/bf16 tensor when it is bound whole,
 * or a quantized weight (2-D, bound whole), whose kernels decode it as they load it.
 */
export function runMatmul(
  a: Tensor,
  b: Tensor | QuantizedTensor,
  c: Tensor,
  d: MatmulDispatch,
  epilogue: MatmulEpilogue = {},
): void {
  const e = { alpha: epilogue.alpha ?? 1, accumulate: epilogue.accumulate ?? false, bias: epilogue.bias };
  if (b instanceof Tensor) {
    run(a, b, c, d, b.dtype === 'f16' || b.dtype === 'bf16' ? b.dtype : 'f32', b.binding(), e);
    return;
  }
  // The scales the kernels read (decoded from double quantization for nf4/fp4: N·K/64 floats).
  const scales = b.kernelScales();
  run(a, b, c, d, b.format, b.codes.binding(), e, scales);
  if (scales !== b.scales) scales.dispose();
}

/**
 * What {@link runMatmul} does with the product: C = alpha·op(A)·op(B), added to C's contents when
 * `accumulate`, then `bias` ([N]) added to every row. A bias is only taken where the texture path
 * runs the product (textureMatmulSuits): elsewhere the caller adds it.
 */
export interface MatmulEpilogue {
  alpha?: number;
  accumulate?: boolean;
  bias?: Tensor;
}

/** runMatmul for B of storage type bType, bound as `bBinding` (a quantized B's f32 scales: `scales`). */
function run(
  a: Tensor,
  b: Tensor | QuantizedTensor,
  c: Tensor,
  d: MatmulDispatch,
  bType: NonNullable<MatmulSpec['bType']>,
  bBinding: GPUBufferBinding,
  { alpha, accumulate, bias }: MatmulEpilogue & { alpha: number; accumulate: boolean },
  scales?: Tensor,
): void {
  if (textureMatmulSuits(a, b, c, d)) {
    const n = d.transA ? d.M : d.K;
    const view = { aCol: 0, aPitch: n, cCol: 0, cPitch: d.N, accumulate };
    runTextureMatmul(a, b, c, d, { scales, view, alpha, bias });
    return;
  }
  if (bias) throw new Error('runMatmul: a bias is only fused on the texture path');
  const sb = scales?.binding();
  const limit = getDevice().maxBindingBytes;
  const over = (elements: number) => elements * 4 > limit;
  const { M, N, K } = d;
  if (d.batch === 1 && (over(M * K) || over(M * N))) {
    if (!d.transA) {
      // Rows of A and C; B whole.
      const rows = windowRows(limit, Math.max(K, N));
      if (rows > 0) {
        for (let m0 = 0; m0 < M; m0 += rows) {
          const m = Math.min(rows, M - m0);
          record(
            { ...d, M: m },
            a.window(m0 * K, m * K),
            bBinding,
            c.window(m0 * N, m * N),
            { alpha, accumulate },
            bType,
            sb,
          );
        }
        return;
      }
    } else if (!d.transB && !over(M * N) && bType === 'f32' && b instanceof Tensor) {
      // Aᵀ is [K, M] and B [K, N]: windows of K rows of both, summed into C.
      const rows = windowRows(limit, Math.max(M, N));
      if (rows > 0) {
        for (let k0 = 0; k0 < K; k0 += rows) {
          const k = Math.min(rows, K - k0);
          const win = { ...d, K: k, strideA: 0, strideB: 0, strideC: 0 };
          const windowEpilogue = { alpha, accumulate: accumulate || k0 > 0 };
          record(win, a.window(k0 * M, k * M), b.window(k0 * N, k * N), c.binding(), windowEpilogue, bType);
        }
        return;
      }
    }
  }
  record(d, a.binding(), bBinding, c.binding(), { alpha, accumulate }, bType, sb);
}

/** Rows of `width` f32 elements per window: as many as fit `limit` bytes, a multiple of 64 (0: none fit). */
function windowRows(limit: number, width: number): number {
  return Math.floor(limit / (4 * width) / 64) * 64;
}

/** Records one product on the given bindings, scaled by alpha and added to what C holds when `accumulate`. */
function record(
  d: MatmulDispatch,
  a: GPUBufferBinding,
  b: GPUBufferBinding,
  c: GPUBufferBinding,
  epilogue: Required<Omit<MatmulEpilogue, 'bias'>>,
  bType: MatmulSpec['bType'],
  bScales?: GPUBufferBinding,
): void {
  const dev = getDevice();
  const spec: MatmulSpec = { ...d, bType };
  const limits = {
    maxComputeWorkgroupStorageSize: dev.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: dev.limits.maxComputeInvocationsPerWorkgroup,
    subgroupMinSize: dev.info.subgroupMinSize,
  };
  const key = [
    d.M,
    d.N,
    d.K,
    d.batch,
    d.transA,
    d.transB,
    d.strideA,
    d.strideB,
    d.strideC,
    bType,
    ...Object.values(limits),
  ].join();
  let plan = plans.get(key);
  if (!plan) {
    plan = chooseMatmulPlan(spec, limits);
    // Shapes vary with sequence length: bound the cache rather than let it grow with every new length.
    if (plans.size >= 512) plans.clear();
    plans.set(key, plan);
  }
  const params = packMatmulParams(spec, plan, epilogue);
  const scratch = plan.scratchBytes > 0 ? Tensor.empty([plan.scratchBytes / 4], 'f32') : null;
  const resources: Record<number, GPUBufferBinding> = { 0: a, 1: b, 2: c };
  if (scratch) resources[4] = scratch.binding();
  if (bScales) resources[QUANT_SCALES_BINDING] = bScales;
  for (const pass of plan.passes) {
    const bufs = pass.bindings.filter((i) => i !== UNIFORM_BINDING);
    dev.dispatch({
      key: pass.key,
      wgsl: () => pass.wgsl,
      buffers: bufs.map((i) => resources[i]),
      layout: { buffers: bufs, uniforms: UNIFORM_BINDING },
      uniforms: params,
      workgroups: pass.workgroups,
    });
  }
  scratch?.dispose();
}
