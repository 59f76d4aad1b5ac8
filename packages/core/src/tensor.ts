import type { Device } from './device/device.js';
import type { MemoryCategory } from './device/memory.js';
import { BYTES_PER_ELEMENT, type DType } from './dtype.js';
import { DisposedError, DTypeError, ShapeError } from './errors.js';
import { decodeBF16, decodeF16 } from './float-codecs.js';
import { getDevice, trackTensor } from './runtime.js';
import { checkShape, fmt, numel, type Shape } from './shape.js';

/** A GPU buffer shared by a tensor and its reshape views; returned to the pool when the last one is disposed. */
export class Storage {
  refs = 1;
  constructor(
    readonly device: Device,
    readonly buffer: GPUBuffer,
    readonly bytes: number,
    public category: MemoryCategory,
  ) {
    device.memory.add(category, bytes);
    device.memory.storages++;
  }

  setCategory(cat: MemoryCategory): void {
    if (cat === this.category) return;
    this.device.memory.remove(this.category, this.bytes);
    this.device.memory.add(cat, this.bytes);
    this.category = cat;
  }

  release(): void {
    if (--this.refs > 0) return;
    this.device.memory.remove(this.category, this.bytes);
    this.device.memory.storages--;
    if (!this.device.isDestroyed) this.device.pool.release(this.buffer);
  }
}

/** Autograd record: the inputs of the op that produced a tensor and how to map its gradient to theirs. */
export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  backward: (grad: Tensor) => readonly (Tensor | null)[];
  /**
   * Like `backward`, for when some inputs already have gradient from other uses: prior[k] is input
   * k's gradient so far (or null), and result k must be prior[k] plus this use's gradient. A matmul
   * accumulates its product onto prior[k] in its own pass, saving the add that would sum them.
   */
  backwardOnto?: (grad: Tensor, prior: readonly (Tensor | null)[]) => readonly (Tensor | null)[];
}

let nextId = 1;

/** An n-dimensional array in GPU memory. Contiguous row-major; reshape makes a view. */
export class Tensor {
  readonly id = nextId++;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  /** Optional label used in error messages and state dicts. */
  name?: string;
  private _storage: Storage | null;

  constructor(
    storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    this._storage = storage;
    trackTensor(this);
  }

  /** Allocates an uninitialised tensor on the current (or given) device. */
  static empty(
    shape: Shape,
    dtype: DType = 'f32',
    category: MemoryCategory = 'activations',
    device = getDevice(),
  ): Tensor {
    return Tensor.allocate(shape, dtype, category, device, false);
  }

  /** A tensor of zeros: a new buffer as it comes (WebGPU zero-initialises them), a reused one cleared. */
  static zeros(
    shape: Shape,
    dtype: DType = 'f32',
    category: MemoryCategory = 'activations',
    device = getDevice(),
  ): Tensor {
    return Tensor.allocate(shape, dtype, category, device, true);
  }

  private static allocate(
    shape: Shape,
    dtype: DType,
    category: MemoryCategory,
    device: Device,
    zero: boolean,
  ): Tensor {
    checkShape(shape);
    if (dtype === 'f16' && !device.features.has('shader-f16')) {
      throw new DTypeError('f16 tensors need the adapter feature shader-f16, which this adapter lacks');
    }
    const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
    const { buffer, fresh } = device.pool.take(Math.max(bytes, 4));
    if (zero && !fresh) device.clear(buffer, 0, Math.max(4, Math.ceil(bytes / 4) * 4));
    return new Tensor(new Storage(device, buffer, bytes, category), [...shape], dtype);
  }

  get storage(): Storage {
    if (!this._storage)
      throw new DisposedError(`tensor #${this.id}${this.name ? ` (${this.name})` : ''} ${fmt(this.shape)}`);
    return this._storage;
  }

  get buffer(): GPUBuffer {
    return this.storage.buffer;
  }

  get device(): Device {
    return this.storage.device;
  }

  get size(): number {
    return numel(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get bytes(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  get isDisposed(): boolean {
    return this._storage === null;
  }

  /** Binding covering this tensor's elements. */
  binding(): GPUBufferBinding {
    return { buffer: this.buffer, offset: 0, size: Math.max(4, Math.ceil(this.bytes / 4) * 4) };
  }

  /** Binding of elements [start, start + len): lets kernels process tensors over the binding limit in windows. */
  window(start: number, len: number): GPUBufferBinding {
    const bpe = BYTES_PER_ELEMENT[this.dtype];
    return { buffer: this.buffer, offset: start * bpe, size: Math.max(4, Math.ceil((len * bpe) / 4) * 4) };
  }

  /** A view with a new shape over the same storage (one dim may be -1). No autograd; see ops.reshape. */
  view(shape: Shape): Tensor {
    const resolved = resolveShape(shape, this.size, this.shape);
    const s = this.storage;
    s.refs++;
    return new Tensor(s, resolved, this.dtype);
  }

  /** Copies the data to the CPU. f16 and bf16 tensors come back as (exact) float32 values. */
  async data(): Promise<Float32Array | Int32Array> {
    const raw = await this.device.read(this.buffer, 0, this.bytes);
    if (this.dtype === 'i32') return new Int32Array(raw);
    if (this.dtype === 'f16') return decodeF16(new Uint16Array(raw));
    if (this.dtype === 'bf16') return decodeBF16(new Uint16Array(raw));
    return new Float32Array(raw);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item() needs a one-element tensor, got ${fmt(this.shape)}`);
    return (await this.data())[0];
  }

  setCategory(cat: MemoryCategory): this {
    this.storage.setCategory(cat);
    return this;
  }

  /**
   * Frees the GPU memory (shared storage is freed with its last view). Idempotent. The autograd record
   * stays, so disposing an intermediate does not cut the graph; a backward rule that needs its data throws.
   */
  dispose(): void {
    if (!this._storage) return;
    this._storage.release();
    this._storage = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  toString(): string {
    return `Tensor(${fmt(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

export function resolveShape(shape: Shape, size: number, from: Shape): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(out.filter((_, i) => i !== neg));
    if (rest === 0 || size % rest !== 0) throw new ShapeError(`cannot reshape ${fmt(from)} to ${fmt(shape)}`);
    out[neg] = size / rest;
  }
  checkShape(out);
  if (numel(out) !== size)
    throw new ShapeError(`cannot reshape ${fmt(from)} (${size} elements) to ${fmt(shape)}`);
  return out;
}
