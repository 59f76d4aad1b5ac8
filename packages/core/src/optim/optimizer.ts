import { assertDType } from '../dtype.js';
import { ShareloraError } from '../errors.js';
import { assignTensor, type Parameter, type TensorSource } from '../nn/module.js';
import { zeros } from '../ops/creation.js';
import { keep } from '../runtime.js';
import type { Tensor } from '../tensor.js';

/** Per-parameter optimizer state: its own update count (as torch's state['step']) and state tensors. */
export interface ParamState<T = Tensor> {
  step: number;
  tensors: Record<string, T>;
}

/** One parameter's update in a step: its value, its gradient and its state (whose step counts this update). */
export interface ParamUpdate {
  p: Tensor;
  grad: Tensor;
  st: ParamState;
}

/**
 * Everything needed to resume: hyper-parameters, the number of step() calls and, per parameter (by its
 * position in the optimizer's parameter list, as torch), its state. Tensors are the live state tensors.
 */
export interface OptimizerStateDict<T = Tensor> {
  kind: string;
  steps: number;
  lr: number;
  hyper: Record<string, unknown>;
  state: Array<ParamState<T> | null>;
}

/**
 * Base class: one state per distinct Parameter object (a Parameter shared by many layers is updated
 * once, with its summed gradient), created lazily on its first update in memory category 'optimizer'.
 */
export abstract class Optimizer<H extends object> {
  /** Distinct parameters in the order given. */
  readonly params: Parameter[];
  /** Learning rate of the next step(); set it per step from a schedule. */
  lr: number;
  /** Number of step() calls so far. */
  steps = 0;
  private readonly state = new Map<Parameter, ParamState>();

  protected constructor(
    params: Iterable<Parameter>,
    lr: number,
    readonly hyper: H,
    private readonly kind: string,
  ) {
    this.params = [...new Set(params)];
    this.lr = lr;
  }

  /** Names of the per-parameter state tensors (torch's names). */
  protected abstract stateNames(): string[];
  /** Records the fused in-place updates of one step, in parameter order. */
  protected abstract updateAll(updates: ParamUpdate[]): void;

  /** Updates every trainable parameter that has a gradient; others are skipped and their step counts kept. */
  step(): void {
    this.steps++;
    const updates: ParamUpdate[] = [];
    for (const p of this.params) {
      const g = p.grad;
      if (!p.trainable || !g) continue;
      assertDType(p.value.dtype, ['f32'], `${this.kind} parameter ${p.name ?? ''}`);
      const st = this.stateOf(p);
      st.step++;
      updates.push({ p: p.value, grad: g, st });
    }
    this.updateAll(updates);
  }

  /** Frees all gradients (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      const g = p.value.grad;
      if (g) {
        g.dispose();
        p.value.grad = null;
      }
    }
  }

  private stateOf(p: Parameter): ParamState {
    let st = this.state.get(p);
    if (!st) {
      const tensors: Record<string, Tensor> = {};
      for (const n of this.stateNames()) tensors[n] = keep(zeros(p.shape, 'f32', 'optimizer'));
      st = { step: 0, tensors };
      this.state.set(p, st);
    }
    return st;
  }

  stateDict(): OptimizerStateDict {
    return {
      kind: this.kind,
      steps: this.steps,
      lr: this.lr,
      hyper: { ...this.hyper } as Record<string, unknown>,
      state: this.params.map((p) => this.state.get(p) ?? null),
    };
  }

  /** Restores a stateDict() (tensors or host data) into this optimizer, copying values into its own state tensors. */
  async loadStateDict(sd: OptimizerStateDict<TensorSource>): Promise<void> {
    if (sd.kind !== this.kind)
      throw new ShareloraError('BAD_STATE', `optimizer state is for ${sd.kind}, not ${this.kind}`);
    if (sd.state.length !== this.params.length) {
      throw new ShareloraError(
        'BAD_STATE',
        `optimizer state has ${sd.state.length} parameters, this optimizer ${this.params.length}`,
      );
    }
    const names = this.stateNames();
    sd.state.forEach((s, i) => {
      const missing = s ? names.filter((n) => !(n in s.tensors)) : [];
      if (missing.length)
        throw new ShareloraError(
          'BAD_STATE',
          `optimizer state of parameter ${i} lacks ${missing.join(', ')}`,
        );
    });
    this.params.forEach((p, i) => {
      const s = sd.state[i];
      if (!s) {
        const old = this.state.get(p);
        if (old) for (const t of Object.values(old.tensors)) t.dispose();
        this.state.delete(p);
        return;
      }
      const st = this.stateOf(p);
      st.step = s.step;
      for (const n of names) assignTensor(st.tensors[n], s.tensors[n], `optimizer state ${i}.${n}`);
    });
    this.steps = sd.steps;
    this.lr = sd.lr;
    Object.assign(this.hyper, sd.hyper);
  }

  /** Frees the state tensors. */
  dispose(): void {
    for (const st of this.state.values()) for (const t of Object.values(st.tensors)) t.dispose();
    this.state.clear();
  }
}
