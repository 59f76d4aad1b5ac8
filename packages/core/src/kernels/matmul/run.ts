import { getDevice } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import { type MatmulSpec, packMatmulParams } from './params.js';
import { chooseMatmulPlan, type MatmulPlan } from './wgsl.js';

/** Shape, transposes and batch strides (elements; 0 broadcasts one matrix over the batch). */
export type MatmulDispatch = Required<
  Pick<MatmulSpec, 'M' | 'N' | 'K' | 'batch' | 'transA' | 'transB' | 'strideA' | 'strideB' | 'strideC'>
>;

const UNIFORM_BINDING = 3;

/** Plans by shape and device: building one generates its WGSL source, too slow to repeat per call. */
const plans = new Map<string, MatmulPlan>();

/**
 * Records C = op(A)·op(B) for row-major operands with the plan chosen for this shape (register-tiled
 * kernel; lanes along M for skinny outputs; split-K with a reduction pass for long K and few tiles).
 */
export function runMatmul(a: Tensor, b: Tensor, c: Tensor, d: MatmulDispatch): void {
  const dev = getDevice();
  const spec: MatmulSpec = { ...d };
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
    ...Object.values(limits),
  ].join();
  let plan = plans.get(key);
  if (!plan) {
    plan = chooseMatmulPlan(spec, limits);
    // Shapes vary with sequence length: bound the cache rather than let it grow with every new length.
    if (plans.size >= 512) plans.clear();
    plans.set(key, plan);
  }
  const params = packMatmulParams(spec, plan);
  const scratch = plan.scratchBytes > 0 ? Tensor.empty([plan.scratchBytes / 4], 'f32') : null;
  const resources: Record<number, GPUBufferBinding> = { 0: a.binding(), 1: b.binding(), 2: c.binding() };
  if (scratch) resources[4] = scratch.binding();
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
