import { runKernel, storageDecl, type UniformField } from '../kernels/common.js';
import {
  dispatchGroups,
  elementRanges,
  elementwiseOverTensors,
  tensorsPerDispatch,
} from '../kernels/multi-tensor.js';
import type { Parameter } from '../nn/module.js';
import { Optimizer, type ParamUpdate } from './optimizer.js';

/** Hyper-parameters of {@link AdamW}; the defaults are torch.optim.AdamW's. */
export interface AdamWOptions {
  /** Learning rate of the first step (default 1e-3); a schedule sets the optimizer's `lr` per step (see {@link lrAt}). */
  lr?: number;
  /** Decay rates of the first and second moment averages (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Added to the bias-corrected √v in the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay: each step scales the parameter by 1 - lr·weightDecay (default 0.01). */
  weightDecay?: number;
}

/**
 * WGSL updating `n` parameters: parameter j's gradient, value, m and v are bound at j, n + j, 2n + j
 * and 3n + j.
 */
function adamwWgsl(n: number): string {
  const decls = ['G', 'W', 'M', 'V'].flatMap((name, role) =>
    Array.from({ length: n }, (_, j) =>
      storageDecl(role * n + j, `${name}${j}`, 'f32', role === 0 ? 'read' : 'read_write'),
    ),
  );
  return elementwiseOverTensors(
    n,
    decls.join('\n'),
    (j) => `      let g = G${j}[i];
      let m = P.b1 * M${j}[i] + (1.0 - P.b1) * g;
      let v = P.b2 * V${j}[i] + (1.0 - P.b2) * g * g;
      M${j}[i] = m;
      V${j}[i] = v;
      W${j}[i] = W${j}[i] * P.decay - P.step_size${j} * m / (sqrt(v) / P.bc2_sqrt${j} + P.eps);`,
  );
}

/**
 * torch.optim.AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps). One fused kernel updates several
 * parameters at once (as many as the device's bindings allow), each with its own
 * step count; the scalars depending on the step are computed here in float64.
 */
export class AdamW extends Optimizer<{ betas: [number, number]; eps: number; weightDecay: number }> {
  constructor(params: Iterable<Parameter>, opts: AdamWOptions = {}) {
    super(
      params,
      opts.lr ?? 1e-3,
      { betas: opts.betas ?? [0.9, 0.999], eps: opts.eps ?? 1e-8, weightDecay: opts.weightDecay ?? 0.01 },
      'adamw',
    );
  }

  protected stateNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected updateAll(updates: ParamUpdate[]): void {
    // Four bindings per parameter: gradient, value, m, v.
    const groups = dispatchGroups(updates, tensorsPerDispatch(4), (u) => u.p.buffer);
    for (const group of groups) this.updateGroup(group);
  }

  private updateGroup(group: ParamUpdate[]): void {
    const [b1, b2] = this.hyper.betas;
    const n = group.length;
    const ranges = elementRanges(group.map((u) => u.p));
    const uniforms: UniformField[] = [
      ['b1', 'f32', b1],
      ['b2', 'f32', b2],
      ['decay', 'f32', 1 - this.lr * this.hyper.weightDecay],
      ['eps', 'f32', this.hyper.eps],
      ...ranges.uniforms,
      ...group.flatMap(({ st }, j): UniformField[] => [
        [`step_size${j}`, 'f32', this.lr / (1 - b1 ** st.step)],
        [`bc2_sqrt${j}`, 'f32', Math.sqrt(1 - b2 ** st.step)],
      ]),
    ];
    runKernel({
      key: `adamw:${n}`,
      wgsl: () => adamwWgsl(n),
      inputs: group.map((u) => u.grad),
      outputs: [
        ...group.map((u) => u.p),
        ...group.map((u) => u.st.tensors.exp_avg),
        ...group.map((u) => u.st.tensors.exp_avg_sq),
      ],
      uniforms,
      workgroups: ranges.workgroups,
    });
  }
}
