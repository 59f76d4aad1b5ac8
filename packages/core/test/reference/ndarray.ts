/**
 * Minimal float64 ndarray for the CPU reference ops. Row-major, contiguous,
 * always owns its data: every op returns a fresh array, so a reference result
 * can never alias a test input.
 */

export type Shape = readonly number[];

/** Nested JS arrays of numbers, e.g. `[[1, 2], [3, 4]]`. */
export type Nested = number | readonly Nested[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major element strides. */
export function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Flat offset of a multi-index; throws when out of bounds so test bugs surface. */
export function flatIndex(shape: Shape, idx: readonly number[]): number {
  if (idx.length !== shape.length) {
    throw new Error(`index rank ${idx.length} != shape rank ${shape.length}`);
  }
  let off = 0;
  for (let i = 0; i < shape.length; i++) {
    if (!Number.isInteger(idx[i]) || idx[i] < 0 || idx[i] >= shape[i]) {
      throw new Error(`index [${idx}] out of bounds for shape [${shape}]`);
    }
    off = off * shape[i] + idx[i];
  }
  return off;
}

/** Inverse of flatIndex. */
export function unravelIndex(flat: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = flat % shape[i];
    flat = Math.floor(flat / shape[i]);
  }
  return idx;
}

/** Resolves a possibly negative axis against a rank. */
export function normAxis(axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) {
    throw new Error(`axis ${axis} out of range for rank ${ndim}`);
  }
  return a;
}

function checkShape(shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape}]`);
  }
}

export class F64 {
  readonly data: Float64Array;
  readonly shape: number[];

  /** Copies `data` (defaults to zeros); its length must equal numel(shape). */
  constructor(shape: Shape, data?: ArrayLike<number>) {
    checkShape(shape);
    this.shape = [...shape];
    const n = numel(shape);
    if (data === undefined) {
      this.data = new Float64Array(n);
    } else {
      if (data.length !== n) {
        throw new Error(`data length ${data.length} != numel ${n} of shape [${shape}]`);
      }
      this.data = Float64Array.from(data);
    }
  }

  static zeros(shape: Shape): F64 {
    return new F64(shape);
  }

  static full(shape: Shape, value: number): F64 {
    const x = new F64(shape);
    x.data.fill(value);
    return x;
  }

  static scalar(value: number): F64 {
    return new F64([], [value]);
  }

  static from(nested: Nested): F64 {
    return fromNested(nested);
  }

  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get(...idx: number[]): number {
    return this.data[flatIndex(this.shape, idx)];
  }

  set(value: number, ...idx: number[]): void {
    this.data[flatIndex(this.shape, idx)] = value;
  }

  clone(): F64 {
    return new F64(this.shape, this.data);
  }

  /** For uploading the same values to the GPU. */
  toFloat32(): Float32Array {
    return Float32Array.from(this.data);
  }

  toNested(): Nested {
    const rec = (dim: number, off: number): Nested => {
      if (dim === this.shape.length) return this.data[off];
      const step = numel(this.shape.slice(dim + 1));
      const out: Nested[] = [];
      for (let i = 0; i < this.shape[dim]; i++) out.push(rec(dim + 1, off + i * step));
      return out;
    };
    return rec(0, 0);
  }
}

/** Builds an F64 from rectangular nested arrays; a bare number gives a rank-0 array. */
export function fromNested(nested: Nested): F64 {
  const shape: number[] = [];
  let probe: Nested = nested;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    if (probe.length === 0) break;
    probe = probe[0];
  }
  const flat: number[] = [];
  const walk = (v: Nested, dim: number): void => {
    if (dim === shape.length) {
      if (typeof v !== 'number') throw new Error('ragged nested array');
      flat.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[dim]) throw new Error('ragged nested array');
    for (const c of v as readonly Nested[]) walk(c, dim + 1);
  };
  walk(nested, 0);
  return new F64(shape, flat);
}

/** Rounds every value to the nearest float32 so GPU and reference see identical inputs. */
export function roundToF32(x: F64): F64 {
  return new F64(x.shape, Float32Array.from(x.data));
}

/** mulberry32: tiny, fast, good-enough 32-bit PRNG; returns uniforms in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seeded random source: uniforms from mulberry32, normals by Box-Muller. */
export class Rng {
  private readonly next: () => number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.next();
  }

  /** Standard normal. Box-Muller yields pairs; the second is kept for the next call. */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    // 1 - u lies in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const phi = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(phi);
    return r * Math.cos(phi);
  }

  /** Integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

function asRng(seed: number | Rng): Rng {
  return typeof seed === 'number' ? new Rng(seed) : seed;
}

/** Normal(mean, std^2) entries. */
export function randn(shape: Shape, seed: number | Rng, std = 1, mean = 0): F64 {
  const rng = asRng(seed);
  const x = new F64(shape);
  for (let i = 0; i < x.size; i++) x.data[i] = mean + std * rng.normal();
  return x;
}

/** Uniform entries in [lo, hi). */
export function randUniform(shape: Shape, seed: number | Rng, lo = -1, hi = 1): F64 {
  const rng = asRng(seed);
  const x = new F64(shape);
  for (let i = 0; i < x.size; i++) x.data[i] = lo + (hi - lo) * rng.uniform();
  return x;
}

/** `count` integers uniform in [0, hi), e.g. token ids or class targets. */
export function randInts(count: number, hi: number, seed: number | Rng): number[] {
  const rng = asRng(seed);
  return Array.from({ length: count }, () => rng.int(hi));
}

/** numpy broadcasting: align shapes on the right; each dim must match or be 1. */
export function broadcastShapes(...shapes: Shape[]): number[] {
  const ndim = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(ndim).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = ndim - s.length + i;
      if (s[i] === out[o] || s[i] === 1) continue;
      if (out[o] !== 1) {
        throw new Error(`cannot broadcast shapes ${shapes.map((x) => `[${x}]`).join(', ')}`);
      }
      out[o] = s[i];
    }
  }
  return out;
}

/**
 * For every flat index of `outShape`, the flat index of the element of an
 * `inShape` array that broadcasting maps to it.
 */
export function broadcastIndexMap(inShape: Shape, outShape: Shape): Int32Array {
  if (broadcastShapes(inShape, outShape).join() !== outShape.join()) {
    throw new Error(`shape [${inShape}] does not broadcast to [${outShape}]`);
  }
  const lead = outShape.length - inShape.length;
  const inStrides = strides(inShape);
  const n = numel(outShape);
  const map = new Int32Array(n);
  for (let flat = 0; flat < n; flat++) {
    const idx = unravelIndex(flat, outShape);
    let off = 0;
    for (let i = 0; i < inShape.length; i++) {
      if (inShape[i] !== 1) off += idx[lead + i] * inStrides[i];
    }
    map[flat] = off;
  }
  return map;
}

/** Materialises `x` broadcast to `shape`. */
export function broadcastTo(x: F64, shape: Shape): F64 {
  const map = broadcastIndexMap(x.shape, shape);
  const out = new F64(shape);
  for (let i = 0; i < out.size; i++) out.data[i] = x.data[map[i]];
  return out;
}
