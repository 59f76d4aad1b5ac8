import { grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import type { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamState } from './optimizer.js';

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
 * torch.optim.AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps). One fused kernel per parameter; the scalars
 * depending on the step are computed here in float64.
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

  protected update(p: Tensor, grad: Tensor, st: ParamState): void {
    const [b1, b2] = this.hyper.betas;
    const t = st.step;
    runKernel({
      key: 'adamw',
      // The parameter is bound once, read_write: binding a buffer twice with one writable use is invalid.
      wgsl: () => `${storageDecl(0, 'G', 'f32', 'read')}
${storageDecl(1, 'W', 'f32', 'read_write')}
${storageDecl(2, 'M', 'f32', 'read_write')}
${storageDecl(3, 'V', 'f32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let g = G[gi];
  let m = P.b1 * M[gi] + (1.0 - P.b1) * g;
  let v = P.b2 * V[gi] + (1.0 - P.b2) * g * g;
  M[gi] = m;
  V[gi] = v;
  W[gi] = W[gi] * P.decay - P.step_size * m / (sqrt(v) / P.bc2_sqrt + P.eps);
}`,
      inputs: [grad],
      outputs: [p, st.tensors.exp_avg, st.tensors.exp_avg_sq],
      uniforms: [
        ['n', 'u32', p.size],
        ['b1', 'f32', b1],
        ['b2', 'f32', b2],
        ['decay', 'f32', 1 - this.lr * this.hyper.weightDecay],
        ['step_size', 'f32', this.lr / (1 - b1 ** t)],
        ['bc2_sqrt', 'f32', Math.sqrt(1 - b2 ** t)],
        ['eps', 'f32', this.hyper.eps],
      ],
      workgroups: grid(p.size),
    });
  }
}
