import { ShareloraError } from '../errors.js';
import { grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import type { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamState, type ParamUpdate } from './optimizer.js';

/** Hyper-parameters of {@link SGD}, with torch.optim.SGD's meaning and defaults (only `lr` is required). */
export interface SGDOptions {
  /** Learning rate of the first step; a schedule sets the optimizer's `lr` per step (see {@link lrAt}). */
  lr: number;
  /** Momentum factor μ (default 0: no momentum buffer is allocated). */
  momentum?: number;
  /** Dampening τ of the gradient added to the momentum buffer (default 0). */
  dampening?: number;
  /** L2 penalty added to the gradient (coupled, unlike AdamW's), default 0. */
  weightDecay?: number;
  /** Nesterov momentum (default false); needs momentum > 0 and dampening 0, else the constructor throws. */
  nesterov?: boolean;
}

/**
 * torch.optim.SGD: g ← g + wd·p; b ← g on the first step, else μ·b + (1−τ)·g; g ← g + μ·b (Nesterov)
 * or b; p ← p − lr·g. Weight decay here is L2 (coupled), as in torch. One fused kernel per parameter.
 */
export class SGD extends Optimizer<{
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}> {
  constructor(params: Iterable<Parameter>, opts: SGDOptions) {
    const hyper = {
      momentum: opts.momentum ?? 0,
      dampening: opts.dampening ?? 0,
      weightDecay: opts.weightDecay ?? 0,
      nesterov: opts.nesterov ?? false,
    };
    if (hyper.nesterov && (hyper.momentum <= 0 || hyper.dampening !== 0)) {
      throw new ShareloraError(
        'BAD_ARGUMENT',
        'SGD: Nesterov momentum requires momentum > 0 and dampening 0',
      );
    }
    super(params, opts.lr, hyper, 'sgd');
  }

  protected stateNames(): string[] {
    return this.hyper.momentum !== 0 ? ['momentum_buffer'] : [];
  }

  protected updateAll(updates: ParamUpdate[]): void {
    for (const { p, grad, st } of updates) this.update(p, grad, st);
  }

  private update(p: Tensor, grad: Tensor, st: ParamState): void {
    const mom = this.hyper.momentum !== 0;
    const nest = this.hyper.nesterov;
    runKernel({
      key: `sgd:${mom}:${nest}`,
      wgsl: () => `${storageDecl(0, 'G', 'f32', 'read')}
${storageDecl(1, 'W', 'f32', 'read_write')}
${mom ? storageDecl(2, 'B', 'f32', 'read_write') : ''}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let w = W[gi];
  var g = G[gi] + P.wd * w;
  ${
    mom
      ? `let b = select(P.mom * B[gi] + (1.0 - P.damp) * g, g, P.first != 0u);
  B[gi] = b;
  g = ${nest ? 'g + P.mom * b' : 'b'};`
      : ''
  }
  W[gi] = w - P.lr * g;
}`,
      inputs: [grad],
      outputs: mom ? [p, st.tensors.momentum_buffer] : [p],
      uniforms: [
        ['n', 'u32', p.size],
        ['lr', 'f32', this.lr],
        ['wd', 'f32', this.hyper.weightDecay],
        ['mom', 'f32', this.hyper.momentum],
        ['damp', 'f32', this.hyper.dampening],
        ['first', 'u32', st.step === 1 ? 1 : 0],
      ],
      workgroups: grid(p.size),
    });
  }
}
