import {
  add,
  addmm,
  assignTensor,
  cast,
  clone,
  concat,
  Dropout,
  isHalf,
  keep,
  type Linear,
  Module,
  matmul,
  noGrad,
  Parameter,
  reshape,
  scale,
  sub,
  Tensor,
  tidy,
  transpose,
  zeros,
} from '@sharelora/core';
import { AdapterError } from './errors.js';

/** Named children (modules or parameters) that appear in the module tree as `<dict>.<name>`. */
export class ChildDict<T extends Module | Parameter> extends Module {
  private _items = new Map<string, T>();

  get(name: string): T | undefined {
    return this._items.get(name);
  }

  set(name: string, item: T): void {
    this._items.set(name, item);
  }

  delete(name: string): void {
    this._items.delete(name);
  }

  keys(): string[] {
    return [...this._items.keys()];
  }

  protected override childEntries(): Array<[string, Module | Parameter]> {
    return [...this._items];
  }

  protected override setChild(name: string, child: Module | Parameter): void {
    this._items.set(name, child as T);
  }
}

/** One low-rank update inside a LoraLinear: the whole output, or one part of a fused projection. */
export interface LoraBranch {
  part: string | null;
  A: Parameter;
  B: Parameter;
}

/** What one adapter adds to one linear module. */
export interface LoraSlot {
  branches: LoraBranch[];
  /** s in W x + s·B A x. */
  scaling: number;
  /** All parts of the fused projection, in output order, when branches adapt parts; null otherwise. */
  parts: string[] | null;
}

/**
 * A linear layer with LoRA adapters: y = W x (+ b) + s·B(A(dropout(x))) for the active adapter,
 * computed as two skinny matmuls (BA is never formed). The wrapped layer stays as `base_layer` and
 * is frozen by injectAdapter. A fused projection (GPT-2's c_attn: q|k|v) may carry one branch per
 * adapted part; each branch's output lands in its part of y and the other parts get nothing.
 * Matrices live in `lora_A.<adapter>` / `lora_B.<adapter>` (`.<part>` for parts); a shared matrix
 * is the same Parameter object in every layer that uses it.
 */
export class LoraLinear extends Module {
  base_layer: Linear;
  lora_A = new ChildDict<Parameter | ChildDict<Parameter>>();
  lora_B = new ChildDict<Parameter | ChildDict<Parameter>>();
  lora_dropout = new ChildDict<Dropout>();
  private _slots = new Map<string, LoraSlot>();
  private _merged = new Set<string>();
  private _active: string | null = null;
  private _disabled = false;

  constructor(base: Linear) {
    super();
    this.base_layer = base;
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }

  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  get layout(): 'out_in' | 'in_out' {
    return this.base_layer.layout;
  }

  get weight(): Parameter {
    return this.base_layer.weight;
  }

  get bias(): Parameter | null {
    return this.base_layer.bias;
  }

  get activeAdapter(): string | null {
    return this._active;
  }

  /** Adapters of this layer, in the order they were added. */
  adapters(): string[] {
    return [...this._slots.keys()];
  }

  slot(name: string): LoraSlot {
    const s = this._slots.get(name);
    if (!s)
      throw new AdapterError(
        'ADAPTER_STATE',
        `this layer has no adapter "${name}" (has: ${this.adapters().join(', ') || 'none'})`,
      );
    return s;
  }

  isMerged(name: string): boolean {
    return this._merged.has(name);
  }

  addAdapter(name: string, slot: LoraSlot, dropout: { p: number; seed: number }): void {
    if (this._slots.has(name))
      throw new AdapterError('ADAPTER_STATE', `adapter "${name}" already exists on this layer`);
    const single = slot.branches.length === 1 && slot.branches[0].part === null;
    for (const key of ['A', 'B'] as const) {
      const dict = key === 'A' ? this.lora_A : this.lora_B;
      if (single) dict.set(name, slot.branches[0][key]);
      else {
        const parts = new ChildDict<Parameter>();
        for (const b of slot.branches) parts.set(b.part as string, b[key]);
        dict.set(name, parts);
      }
    }
    if (dropout.p > 0) this.lora_dropout.set(name, new Dropout(dropout.p, { seed: dropout.seed }));
    this._slots.set(name, slot);
  }

  /** Forgets an adapter (its parameters are not disposed here: shared ones belong to other layers too). */
  removeAdapter(name: string): void {
    this.slot(name);
    if (this._merged.has(name)) this.unmerge(name);
    this._slots.delete(name);
    this.lora_A.delete(name);
    this.lora_B.delete(name);
    this.lora_dropout.delete(name);
    if (this._active === name) this._active = null;
  }

  setActive(name: string | null): void {
    this._active = name !== null && this._slots.has(name) ? name : null;
  }

  setDisabled(disabled: boolean): void {
    this._disabled = disabled;
  }

  /** The adapted output; with `residual`, residual + it (the base product accumulates onto it, see Linear). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    if (x.rank === 1) {
      const r2 = residual && reshape(residual, [1, this.outFeatures]);
      return reshape(this.forward(reshape(x, [1, x.shape[0]]), r2), [this.outFeatures]);
    }
    const y = this.base_layer.forward(x, residual);
    const name = this._active;
    if (this._disabled || name === null || this._merged.has(name)) return y;
    const slot = this.slot(name);
    const xd = this.lora_dropout.get(name)?.forward(x) ?? x;
    const down = (b: LoraBranch) => matmul(xd, b.A.value, { transB: true });
    // The scaling rides on the up-projection's product (and its backward products): no scale pass.
    const up = { transB: true, alpha: slot.scaling };
    // One branch over the whole output is accumulated straight onto the base output.
    if (!slot.parts) return addmm(y, down(slot.branches[0]), slot.branches[0].B.value, up);
    return add(
      y,
      assemble(slot, (b) => matmul(down(b), b.B.value, up), x.rank - 1),
    );
  }

  /** s·B A as a new [out, in] tensor (whatever the base layout), parts placed in their rows. No autograd. */
  deltaWeight(name: string): Tensor {
    const slot = this.slot(name);
    return noGrad(() =>
      tidy(() =>
        scale(
          assemble(slot, (b) => matmul(b.B.value, b.A.value), 0),
          slot.scaling,
        ),
      ),
    );
  }

  /**
   * W ← W + s·B A for `name`; the forward then skips that adapter's branch. A half-precision (f16/bf16)
   * base weight stays in its dtype: the sum is formed in f32 and rounded, W ← half(W + s·B A), so
   * outputs differ from the unmerged adapter by that rounding. Load the base in f32 to merge exactly.
   */
  merge(name: string): void {
    if (this._merged.has(name))
      throw new AdapterError('ADAPTER_STATE', `adapter "${name}" is already merged`);
    this.checkMergeable();
    this.applyDelta(name, add);
    this._merged.add(name);
  }

  /** W ← W − s·B A: the inverse of merge() up to float32 rounding (the half rounding, for a half W). */
  unmerge(name: string): void {
    if (!this._merged.has(name)) throw new AdapterError('ADAPTER_STATE', `adapter "${name}" is not merged`);
    this.applyDelta(name, sub);
    this._merged.delete(name);
  }

  /**
   * Throws if the base weight cannot take a merged delta: a quantized weight would be re-quantized,
   * losing the adapter's update in the rounding (QLoRA keeps adapters separate for this reason).
   */
  checkMergeable(): void {
    const q = this.base_layer.quantized;
    if (q)
      throw new AdapterError(
        'ADAPTER_STATE',
        `cannot merge into ${this.base_layer.weight.name ?? 'a'} ${q.format} base weight: merging would re-quantize it and lose most of the adapter's update. ` +
          'Keep the adapter separate, or write a float copy of the base (sharelora quantize --to bf16), load that and merge there',
      );
  }

  private applyDelta(name: string, op: (a: Tensor, b: Tensor) => Tensor): void {
    const w = this.base_layer.weight.value;
    const delta = this.deltaWeight(name);
    noGrad(() =>
      tidy(() => {
        const d = this.layout === 'out_in' ? delta : transpose(delta);
        // cast() is a view for an f32 W; assignTensor rounds the f32 sum back into a half W.
        assignTensor(w, op(cast(w, 'f32'), d), 'merged weight');
      }),
    );
    delta.dispose();
  }
}

/**
 * Combines per-branch results along `axis` (the output axis): one branch over the whole output is
 * returned as is; parts are concatenated in output order with zeros for parts without a branch.
 */
function assemble(slot: LoraSlot, compute: (b: LoraBranch) => Tensor, axis: number): Tensor {
  if (!slot.parts) return compute(slot.branches[0]);
  const byPart = new Map(slot.branches.map((b) => [b.part, compute(b)]));
  const shape = [...(byPart.values().next().value as Tensor).shape];
  return concat(
    slot.parts.map((p) => byPart.get(p) ?? zeros(shape)),
    axis,
  );
}

/**
 * Copy of a module tree with fresh tensors: fields are copied, Modules and Parameters (and tensors
 * in arrays, maps and plain objects, e.g. buffers) are cloned, anything else is shared. Half-precision
 * parameters are copied as f32, since copies are made to be trained.
 */
export function cloneModule<M extends Module>(m: M): M {
  const copyValue = (v: unknown): unknown => {
    if (v instanceof Parameter) {
      const value = isHalf(v.value.dtype) ? cast(v.value, 'f32') : clone(v.value);
      return new Parameter(value, { trainable: v.trainable });
    }
    if (v instanceof Module) return cloneModule(v);
    if (v instanceof Tensor) return keep(clone(v)).setCategory(v.storage.category);
    if (Array.isArray(v)) return v.map(copyValue);
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, copyValue(x)]));
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copyValue(x)]));
    }
    return v;
  };
  const copy = Object.create(Object.getPrototypeOf(m)) as M;
  noGrad(() => {
    for (const [k, v] of Object.entries(m)) (copy as Record<string, unknown>)[k] = copyValue(v);
  });
  return copy;
}

/**
 * PEFT's modules_to_save: the wrapped module stays as `original_module` (frozen) and each adapter
 * trains its own full copy under `modules_to_save.<adapter>`; calls go to the active adapter's copy
 * (to the original when adapters are disabled). Reads of other properties reach the module in use,
 * so code written against the wrapped module keeps working.
 */
export class ModulesToSaveWrapper extends Module {
  original_module: Module;
  modules_to_save = new ChildDict<Module>();
  private _active: string | null = null;
  private _disabled = false;

  constructor(module: Module) {
    super();
    this.original_module = module;
    // biome-ignore lint/correctness/noConstructorReturn: the proxy forwards unknown properties to the module in use.
    return new Proxy(this, {
      get: (target, prop, receiver) =>
        prop in target ? Reflect.get(target, prop, receiver) : Reflect.get(target.current(), prop),
    });
  }

  /** The module calls go to now. */
  current(): Module {
    const copy =
      this._active !== null && !this._disabled ? this.modules_to_save.get(this._active) : undefined;
    return copy ?? this.original_module;
  }

  get activeAdapter(): string | null {
    return this._active;
  }

  addAdapter(name: string): Module {
    const copy = cloneModule(this.original_module);
    this.modules_to_save.set(name, copy);
    return copy;
  }

  setActive(name: string | null): void {
    this._active = name !== null && this.modules_to_save.get(name) ? name : null;
  }

  setDisabled(disabled: boolean): void {
    this._disabled = disabled;
  }

  forward(...args: unknown[]): unknown {
    return (this.current() as unknown as { forward: (...a: unknown[]) => unknown }).forward(...args);
  }
}
