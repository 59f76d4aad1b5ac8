import { isHalf } from '../dtype.js';
import { DTypeError, ShapeError, ShareloraError } from '../errors.js';
import { encodeBF16, encodeF16 } from '../float-codecs.js';
import { cast } from '../ops/elementwise.js';
import { keep } from '../runtime.js';
import { fmt, numel, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';

/** Values accepted when loading state: a GPU tensor, or host data with its shape (e.g. read from safetensors). */
export type TensorSource = Tensor | { data: ArrayLike<number>; shape: readonly number[] };

/**
 * Copies `src` into `dst` in place (dst keeps its buffer, dtype, category and identity, so optimizer
 * state and shared references stay valid). Host data is converted to dst's dtype.
 */
export function assignTensor(dst: Tensor, src: TensorSource, what = 'tensor'): void {
  if (!shapesEqual(dst.shape, src.shape))
    throw new ShapeError(`${what}: expected ${fmt(dst.shape)}, got ${fmt(src.shape)}`);
  if (src === dst) return;
  const dev = dst.device;
  if (src instanceof Tensor) {
    const same = src.dtype === dst.dtype ? src : cast(src, dst.dtype);
    // copyBufferToBuffer needs a multiple of 4 bytes; pooled buffers are at least that large.
    dev.copy(same.buffer, 0, dst.buffer, 0, Math.ceil(dst.bytes / 4) * 4);
    if (same !== src) same.dispose();
    return;
  }
  const d = src.data;
  const host =
    dst.dtype === 'f16'
      ? encodeF16(d)
      : dst.dtype === 'bf16'
        ? encodeBF16(d)
        : dst.dtype === 'i32'
          ? d instanceof Int32Array
            ? d
            : Int32Array.from(d)
          : d instanceof Float32Array
            ? d
            : Float32Array.from(d);
  dev.write(dst.buffer, 0, host);
}

/** Options of {@link Parameter}. */
export interface ParameterOptions {
  /**
   * Trainable parameters get gradients and count as 'trainable' memory; frozen ones count as 'weights'.
   * Default true. An f16/bf16 value must be frozen: gradients and optimizer state are f32.
   */
  trainable?: boolean;
  /** Dotted name for error messages and state dicts; Module.namedParameters() sets it when absent. */
  name?: string;
  /**
   * The shape of the weight the value encodes when the value is packed (a quantized weight's codes):
   * `shape` and `numel` then report it, so parameter counts and checkpoint names see the matrix.
   * Only for frozen values.
   */
  shape?: readonly number[];
}

/**
 * A leaf tensor owned by a module. The same Parameter object may be used by several modules (tied
 * embeddings, ShareLoRA's shared matrices): it then has one tensor, one gradient (the sum over its
 * uses) and one optimizer state.
 */
export class Parameter {
  /** Dotted name where the module tree first reaches it; set by Module.namedParameters() if not given. */
  name?: string;
  private _value: Tensor;
  private _trainable: boolean;
  /** Shape of the encoded weight when the value is packed (see ParameterOptions.shape). */
  private _packedShape: readonly number[] | null;

  constructor(value: Tensor, opts: ParameterOptions = {}) {
    this.name = opts.name;
    this._trainable = opts.trainable ?? true;
    this._packedShape = opts.shape ? [...opts.shape] : null;
    if (this._packedShape && this._trainable)
      throw new DTypeError(`parameter ${opts.name ?? ''} with a packed value can only be frozen`.trim());
    this.check(value, this._trainable);
    this._value = keep(value);
    this.apply();
  }

  get value(): Tensor {
    return this._value;
  }

  /** Replaces the tensor (the old one is disposed). Prefer assignTensor() to change values in place. */
  set value(t: Tensor) {
    this.setValue(t, null);
  }

  /**
   * Replaces the value by a packed encoding of a weight of `shape` (a quantized weight's codes):
   * the parameter must be frozen, and `shape`/`numel` keep reporting the weight's shape.
   */
  setPacked(t: Tensor, shape: readonly number[]): void {
    if (this._trainable)
      throw new DTypeError(`parameter ${this.name ?? ''} with a packed value can only be frozen`);
    this.setValue(t, [...shape]);
  }

  private setValue(t: Tensor, packedShape: readonly number[] | null): void {
    this._packedShape = packedShape;
    if (t === this._value) return;
    this.check(t, this._trainable);
    const old = this._value;
    this._value = keep(t);
    this.apply();
    old.dispose();
  }

  /** Whether the value is a packed encoding of a weight of `shape` (see setPacked). */
  get packed(): boolean {
    return this._packedShape !== null;
  }

  get trainable(): boolean {
    return this._trainable;
  }

  set trainable(on: boolean) {
    if (on && this._packedShape)
      throw new DTypeError(
        `parameter ${this.name ?? ''} holds a packed (quantized) weight, which can only be frozen`,
      );
    this.check(this._value, on);
    this._trainable = on;
    this.apply();
  }

  get grad(): Tensor | null {
    return this._value.grad;
  }

  /** The weight's shape: the value's, or for a packed value the shape of the weight it encodes. */
  get shape(): readonly number[] {
    return this._packedShape ?? this._value.shape;
  }

  /** Number of weight elements (of the encoded weight, for a packed value). */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /**
   * Half-precision values are frozen base weights: training one would need f32 gradients and state.
   * Integer values (a quantized weight's packed codes) have no gradient at all.
   */
  private check(t: Tensor, trainable: boolean): void {
    if (trainable && t.dtype === 'i32')
      throw new DTypeError(
        `parameter ${this.name ?? t.name ?? `of shape [${t.shape.join(', ')}]`} holds integers (e.g. quantized codes), which can only be frozen`,
      );
    if (trainable && isHalf(t.dtype)) {
      throw new DTypeError(
        `parameter ${this.name ?? t.name ?? `of shape [${t.shape.join(', ')}]`} is ${t.dtype}, which can only be frozen: ` +
          'train it in f32 (load the model with f32 weights, or replace its value with cast(value, "f32"))',
      );
    }
  }

  private apply(): void {
    const t = this._value;
    t.requiresGrad = this._trainable;
    t.setCategory(this._trainable ? 'trainable' : 'weights');
    if (this.name && !t.name) t.name = this.name;
    if (!this._trainable && t.grad) {
      t.grad.dispose();
      t.grad = null;
    }
  }

  dispose(): void {
    this._value.dispose();
  }
}

/** Raised by loadStateDict; lists every offending name so a whole checkpoint mismatch is visible at once. */
export class StateDictError extends ShapeError {
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: Array<{ name: string; expected: readonly number[]; got: readonly number[] }>,
  ) {
    const list = (xs: string[]): string =>
      xs.length > 10 ? `${xs.slice(0, 10).join(', ')}, ... (${xs.length} in all)` : xs.join(', ');
    const parts: string[] = [];
    if (mismatched.length)
      parts.push(
        `shape mismatch: ${list(mismatched.map((m) => `${m.name} expected ${fmt(m.expected)} got ${fmt(m.got)}`))}`,
      );
    if (missing.length) parts.push(`missing: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected: ${list(unexpected)}`);
    super(`loadStateDict: ${parts.join('; ')}`);
  }
}

type Child = Module | Parameter;

/**
 * Base of every layer and model. Children are discovered from the instance's own fields (in declaration
 * order) whose values are Modules or Parameters, so a child replaced with setSubmodule() is the one the
 * owner's forward() calls. Fields starting with `_` are private and not part of the tree.
 */
export abstract class Module {
  training = true;
  private _buffers: Record<string, Tensor> = {};

  /** Direct children as [name, child] in order. ModuleList overrides this. */
  protected childEntries(): Array<[string, Child]> {
    const out: Array<[string, Child]> = [];
    for (const [k, v] of Object.entries(this)) {
      if (k.startsWith('_')) continue;
      if (v instanceof Module || v instanceof Parameter) out.push([k, v]);
    }
    return out;
  }

  /** Sets a direct child by name (adds it when absent). */
  protected setChild(name: string, child: Child): void {
    if (!name || name.includes('.') || name.startsWith('_'))
      throw new ShareloraError('BAD_NAME', `invalid child name "${name}"`);
    const cur = (this as Record<string, unknown>)[name];
    if (cur !== undefined && cur !== null && !(cur instanceof Module || cur instanceof Parameter)) {
      throw new ShareloraError(
        'BAD_NAME',
        `${this.constructor.name}.${name} is not a module or parameter field`,
      );
    }
    (this as Record<string, unknown>)[name] = child;
  }

  /** Adds a child module under `name` (equivalent to assigning the field); returns it. */
  registerModule<M extends Module>(name: string, m: M): M {
    this.setChild(name, m);
    return m;
  }

  registerParameter(name: string, p: Parameter): Parameter {
    this.setChild(name, p);
    return p;
  }

  /** A non-parameter tensor the module owns (constants, tables): kept alive, disposed with it, not in stateDict(). */
  registerBuffer(name: string, t: Tensor): Tensor {
    this._buffers[name]?.dispose();
    this._buffers[name] = keep(t).setCategory('weights');
    return t;
  }

  buffer(name: string): Tensor {
    const t = this._buffers[name];
    if (!t) throw new ShareloraError('NO_BUFFER', `${this.constructor.name} has no buffer "${name}"`);
    return t;
  }

  namedChildren(): Array<[string, Module]> {
    return this.childEntries().filter((e): e is [string, Module] => e[1] instanceof Module);
  }

  /**
   * Every module in the tree with its dotted name ('' for this one), depth first in declaration order.
   * A module reachable twice is listed once unless removeDuplicate is false.
   */
  namedModules(opts: { prefix?: string; removeDuplicate?: boolean } = {}): Array<[string, Module]> {
    const out: Array<[string, Module]> = [];
    const seen = new Set<Module>();
    const dedup = opts.removeDuplicate ?? true;
    const ancestors = new Set<Module>();
    const visit = (m: Module, name: string): void => {
      if (ancestors.has(m)) throw new ShareloraError('MODULE_CYCLE', `module tree has a cycle at "${name}"`);
      if (dedup && seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      ancestors.add(m);
      for (const [k, c] of m.namedChildren()) visit(c, name ? `${name}.${k}` : k);
      ancestors.delete(m);
    };
    visit(this, opts.prefix ?? '');
    return out;
  }

  /**
   * Every parameter with its dotted name. A shared Parameter is listed once (under its first name)
   * unless removeDuplicate is false. Parameters without a name get this one.
   */
  namedParameters(
    opts: { removeDuplicate?: boolean; trainableOnly?: boolean } = {},
  ): Array<[string, Parameter]> {
    const dedup = opts.removeDuplicate ?? true;
    const out: Array<[string, Parameter]> = [];
    const seen = new Set<Parameter>();
    for (const [mname, m] of this.namedModules({ removeDuplicate: dedup })) {
      for (const [k, c] of m.childEntries()) {
        if (!(c instanceof Parameter)) continue;
        if (opts.trainableOnly && !c.trainable) continue;
        if (dedup && seen.has(c)) continue;
        seen.add(c);
        const full = mname ? `${mname}.${k}` : k;
        if (!c.name) {
          c.name = full;
          c.value.name ??= full;
        }
        out.push([full, c]);
      }
    }
    return out;
  }

  /** Distinct parameters (a shared one once), in tree order. */
  parameters(opts: { trainableOnly?: boolean } = {}): Parameter[] {
    return this.namedParameters(opts).map(([, p]) => p);
  }

  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    return this.parameters(opts).reduce((s, p) => s + p.numel, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** name -> the parameter's live tensor (not a copy), every name of a shared parameter included, as PyTorch. */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, p] of this.namedParameters({ removeDuplicate: false })) out[n] = p.value;
    return out;
  }

  /**
   * Copies values into the existing parameters (in place: identities, categories and optimizer state
   * are kept). Shape mismatches always throw; missing/unexpected names throw when strict (default).
   * Nothing is written unless the whole dict is accepted.
   */
  async loadStateDict(
    dict: Record<string, TensorSource>,
    opts: { strict?: boolean } = {},
  ): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }> {
    const strict = opts.strict ?? true;
    const own = this.namedParameters({ removeDuplicate: false });
    const ownNames = new Set(own.map(([n]) => n));
    const missing = own.filter(([n]) => !(n in dict)).map(([n]) => n);
    const unexpected = Object.keys(dict).filter((n) => !ownNames.has(n));
    const mismatched = own
      .filter(([n, p]) => n in dict && !shapesEqual(dict[n].shape, p.shape))
      .map(([n, p]) => ({ name: n, expected: p.shape, got: dict[n].shape }));
    for (const [n] of own) {
      const s = dict[n];
      if (s && !(s instanceof Tensor) && s.data.length !== numel(s.shape)) {
        throw new ShapeError(`loadStateDict: ${n} has ${s.data.length} values for shape ${fmt(s.shape)}`);
      }
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(missing, unexpected, mismatched);
    }
    for (const [n, p] of own) if (n in dict) assignTensor(p.value, dict[n], n);
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  /** The module at a dotted path ('' is this module), e.g. 'layers.3.self_attn.q_proj'. */
  getSubmodule(name: string): Module {
    if (name === '') return this;
    let cur: Module = this;
    for (const part of name.split('.')) {
      const next = cur.childEntries().find(([k]) => k === part)?.[1];
      if (!(next instanceof Module)) {
        throw new ShareloraError(
          'NO_SUBMODULE',
          `${this.constructor.name} has no submodule "${name}" (no module "${part}" in ${cur.constructor.name})`,
        );
      }
      cur = next;
    }
    return cur;
  }

  /** Replaces (or adds) the module at a dotted path; its parent must exist. Used to wrap layers with adapters. */
  setSubmodule(name: string, module: Module): void {
    const dot = name.lastIndexOf('.');
    const parent = this.getSubmodule(dot < 0 ? '' : name.slice(0, dot));
    parent.setChild(name.slice(dot + 1), module);
  }

  /** Makes every parameter frozen (no gradients, 'weights' memory). */
  freeze(): this {
    for (const p of this.parameters()) p.trainable = false;
    return this;
  }

  unfreeze(): this {
    for (const p of this.parameters()) p.trainable = true;
    return this;
  }

  /** Frees every parameter and buffer in the tree. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const [, m] of this.namedModules()) {
      for (const t of Object.values(m._buffers)) t.dispose();
      m._buffers = {};
    }
  }
}

/** Numbered children: `layers.0`, `layers.1`, ... */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private _items: M[];

  constructor(items: Iterable<M> = []) {
    super();
    this._items = [...items];
  }

  get length(): number {
    return this._items.length;
  }

  at(i: number): M {
    const m = this._items[i];
    if (!m)
      throw new ShareloraError(
        'NO_SUBMODULE',
        `ModuleList index ${i} out of range (length ${this._items.length})`,
      );
    return m;
  }

  push(m: M): this {
    this._items.push(m);
    return this;
  }

  [Symbol.iterator](): Iterator<M> {
    return this._items[Symbol.iterator]();
  }

  protected override childEntries(): Array<[string, Child]> {
    return this._items.map((m, i) => [String(i), m]);
  }

  protected override setChild(name: string, child: Child): void {
    const i = Number(name);
    if (!Number.isInteger(i) || i < 0 || i > this._items.length || !(child instanceof Module)) {
      throw new ShareloraError(
        'BAD_NAME',
        `ModuleList: cannot set "${name}" (length ${this._items.length}; children must be modules)`,
      );
    }
    this._items[i] = child as M;
  }
}
