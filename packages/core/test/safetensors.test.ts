import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  bf16BitsToF32,
  decodeBF16,
  decodeF16,
  encodeBF16,
  encodeF16,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../src/float-codecs.js';
import {
  DTYPE_ITEMSIZE,
  decodeTensor,
  encodeTensorData,
  parseSafetensors,
  type ReadAs,
  SAFETENSORS_DTYPES,
  type SafetensorsDtype,
  SafetensorsError,
  serializeSafetensors,
  type TensorData,
  type TensorInput,
} from '../src/safetensors/index.js';
import { SafetensorsReader, writeSafetensors } from '../src/safetensors/node-file.js';

// ---------------------------------------------------------------------------------------------
// Helpers written from the spec, independent of the implementation under test
// ---------------------------------------------------------------------------------------------

/** Seeded PRNG so that any fuzz failure reproduces. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const utf8 = (s: string) => new TextEncoder().encode(s);

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u64le(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

/** A file per the spec: u64 LE header length, JSON text (optionally space-padded to 8), data. */
function buildFile(json: string, data: Uint8Array, pad = true): Uint8Array {
  let header = utf8(json);
  if (pad && header.length % 8 !== 0) header = concat(header, utf8(' '.repeat(8 - (header.length % 8))));
  return concat(u64le(BigInt(header.length)), header, data);
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Runs fn; returns 'ok' or the SafetensorsError code; anything else fails the test. */
function outcome(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof SafetensorsError))
      throw new Error(`expected SafetensorsError, got ${String(e)}`, { cause: e });
    expect(e.message).not.toMatch(/[\r\n]/);
    return e.code;
  }
}

/** Parse, then read every tensor every way: all must succeed or throw SafetensorsError. */
function parseAndReadAll(bytes: Uint8Array): string {
  return outcome(() => {
    const f = parseSafetensors(bytes);
    for (const name of f.keys()) {
      f.bytes(name);
      for (const as of ['f32', 'f16', 'raw'] as const) f.read(name, { as });
      outcome(() => f.read(name, { as: 'i32' }));
    }
  });
}

function expectCode(fn: () => unknown, code: string): SafetensorsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    const err = e as SafetensorsError;
    expect(err.code, err.message).toBe(code);
    expect(err.message).not.toMatch(/[\r\n]/);
    return err;
  }
  throw new Error(`expected SafetensorsError ${code}, nothing was thrown`);
}

async function expectCodeAsync(p: Promise<unknown>, code: string): Promise<SafetensorsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SafetensorsError);
  const err = e as SafetensorsError;
  expect(err.code, err.message).toBe(code);
  expect(err.message).not.toMatch(/[\r\n]/);
  return err;
}

/** Byte equality for big arrays (much faster than toEqual). */
function sameBytes(x: ArrayBufferView, y: ArrayBufferView): boolean {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(
    Buffer.from(y.buffer, y.byteOffset, y.byteLength),
  );
}

/** Same bits for floats (so NaN == NaN and -0 != 0). */
function sameF32(a: Float32Array, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const want = new Uint32Array(Float32Array.from(b).buffer);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    if (bits[i] !== want[i]) expect(`element ${i}: ${a[i]}`).toBe(`element ${i}: ${b[i]}`);
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sharelora-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------------
// Float conversions
// ---------------------------------------------------------------------------------------------

describe('f16 / bf16 / f8 conversions', () => {
  it('decodes known f16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3555, 0.333251953125],
      [0x3c01, 1 + 2 ** -10],
      [0x0000, 0],
      [0x7c00, Number.POSITIVE_INFINITY],
      [0xfc00, Number.NEGATIVE_INFINITY],
    ];
    const bits = Uint16Array.from(cases.map((c) => c[0]));
    sameF32(
      decodeF16(bits),
      cases.map((c) => c[1]),
    );
    sameF32(
      decodeTensor('F16', bytesOf(bits), 'f32'),
      cases.map((c) => c[1]),
    );
    for (const [b, v] of cases) expect(f16BitsToF32(b)).toBe(v);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(f16BitsToF32(0xfc01)).toBeNaN();
  });

  it('decodes known bf16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x3f80, 1],
      [0xc000, -2],
      [0x4049, 3.140625],
      [0x7f7f, 3.3895313892515355e38],
      [0x0080, 2 ** -126],
      [0x0001, 2 ** -133],
      [0x7f80, Number.POSITIVE_INFINITY],
      [0xff80, Number.NEGATIVE_INFINITY],
    ];
    const bits = Uint16Array.from(cases.map((c) => c[0]));
    sameF32(
      decodeBF16(bits),
      cases.map((c) => c[1]),
    );
    sameF32(
      decodeTensor('BF16', bytesOf(bits), 'f32'),
      cases.map((c) => c[1]),
    );
    for (const [b, v] of cases) expect(bf16BitsToF32(b)).toBe(v);
    expect(bf16BitsToF32(0x7fc0)).toBeNaN();
    expect(Object.is(bf16BitsToF32(0x8000), -0)).toBe(true);
  });

  it('encodes f32 to f16 with round-to-nearest-even, overflow and subnormals', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the midpoint to 65536
      [65520, 0x7c00], // the midpoint rounds to even = Inf
      [1e10, 0x7c00],
      [-1e10, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
      [Math.fround(2 ** -25 * 1.0000001), 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps: even is 2
      [1023 * 2 ** -24, 0x03ff],
      [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], // tie: even mantissa 0
      [1 + 3 * 2 ** -11, 0x3c02], // tie: even mantissa 2
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up out of the subnormals
      [-0, 0x8000],
      [Number.POSITIVE_INFINITY, 0x7c00],
    ];
    for (const [x, bits] of cases) expect(f32ToF16Bits(x), `f16(${x})`).toBe(bits);
    const nan = f32ToF16Bits(Number.NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(Array.from(encodeF16(new Float32Array([1, -2])))).toEqual([0x3c00, 0xc000]);
  });

  it('encodes f32 to bf16 with round-to-nearest-even', () => {
    const cases: [number, number][] = [
      [1, 0x3f80],
      [1 + 2 ** -8, 0x3f80], // tie: even
      [1 + 3 * 2 ** -8, 0x3f82], // tie: even
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [3.4028234663852886e38, 0x7f80], // f32 max rounds to Inf
      [-0, 0x8000],
      [Number.NEGATIVE_INFINITY, 0xff80],
      [2 ** -133, 0x0001],
    ];
    for (const [x, bits] of cases) expect(f32ToBf16Bits(x), `bf16(${x})`).toBe(bits);
    expect(bf16BitsToF32(f32ToBf16Bits(Number.NaN))).toBeNaN();
    expect(Array.from(encodeBF16(new Float32Array([1, -2])))).toEqual([0x3f80, 0xc000]);
  });

  it('every f16 and bf16 bit pattern survives decode → encode', () => {
    for (let b = 0; b < 65536; b++) {
      const f = f16BitsToF32(b);
      if (Number.isNaN(f)) expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(f)))).toBe(true);
      else expect(f32ToF16Bits(f)).toBe(b);
      const g = bf16BitsToF32(b);
      if (Number.isNaN(g)) expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(g)))).toBe(true);
      else expect(f32ToBf16Bits(g)).toBe(b);
    }
  });

  it('bit-level f32 encoders agree with the exact (f64-source) encoder on random f32 values', () => {
    const rand = mulberry32(7);
    const bits = new Uint32Array(200_000);
    for (let i = 0; i < bits.length; i++) bits[i] = (rand() * 2 ** 32) >>> 0;
    // Bias towards the interesting f16 range: exponents near 2^-25 .. 2^16.
    for (let i = 0; i < bits.length; i += 2)
      bits[i] = (bits[i] & 0x807fffff) | ((100 + (bits[i] % 45)) << 23);
    const f32 = new Float32Array(bits.buffer);
    const f64 = Float64Array.from(f32);
    for (const dtype of ['F16', 'BF16'] as const) {
      const fast = new Uint16Array(encodeTensorData(dtype, f32, 0, f32.length).slice().buffer);
      const exact = new Uint16Array(encodeTensorData(dtype, f64, 0, f64.length).slice().buffer);
      for (let i = 0; i < f32.length; i++) {
        if (Number.isNaN(f32[i])) continue;
        if (fast[i] !== exact[i])
          expect(`${dtype}(${f32[i]}) = ${fast[i]}`).toBe(`${dtype}(${f32[i]}) = ${exact[i]}`);
      }
    }
  });

  it('decodes and encodes F8_E4M3 (fn) and F8_E5M2', () => {
    const e4m3 = Uint8Array.from([0x38, 0xb8, 0x7e, 0x01, 0x08, 0x00, 0x7f, 0xff]);
    sameF32(decodeTensor('F8_E4M3', e4m3, 'f32'), [1, -1, 448, 2 ** -9, 2 ** -6, 0, Number.NaN, Number.NaN]);
    const e5m2 = Uint8Array.from([0x3c, 0x7b, 0x7c, 0xfc, 0x01, 0x7d]);
    sameF32(decodeTensor('F8_E5M2', e5m2, 'f32'), [1, 57344, Infinity, -Infinity, 2 ** -16, Number.NaN]);
    for (const dtype of ['F8_E4M3', 'F8_E5M2'] as const) {
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      const values = decodeTensor(dtype, all, 'f32');
      const back = encodeTensorData(dtype, values, 0, 256);
      for (let i = 0; i < 256; i++) if (!Number.isNaN(values[i])) expect(back[i], `${dtype} ${i}`).toBe(i);
    }
    // E4M3FN has no Inf: values past 464 (the midpoint above 448) become NaN, like PyTorch.
    const big = encodeTensorData('F8_E4M3', new Float32Array([464, 480, 1e9, -Infinity]), 0, 4);
    expect(Array.from(big)).toEqual([0x7e, 0x7f, 0x7f, 0xff]);
    expect(Array.from(encodeTensorData('F8_E5M2', new Float32Array([1e6, 57344]), 0, 2))).toEqual([
      0x7c, 0x7b,
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

/** Random data in the storage type of each dtype, including edge values. */
function sampleData(dtype: SafetensorsDtype, n: number, rand: () => number): TensorData {
  const u32 = () => (rand() * 2 ** 32) >>> 0;
  switch (dtype) {
    case 'F64':
      return Float64Array.from(
        { length: n },
        (_, i) =>
          [Number.NaN, Number.POSITIVE_INFINITY, -0, 1e300, 5e-324][i] ??
          (rand() - 0.5) * 10 ** (rand() * 20 - 10),
      );
    case 'F32':
      return new Float32Array(Uint32Array.from({ length: n }, u32).buffer);
    case 'F16':
    case 'BF16':
    case 'U16':
      return Uint16Array.from({ length: n }, () => u32() & 0xffff);
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'U8':
      return Uint8Array.from({ length: n }, () => u32() & 0xff);
    case 'BOOL':
      return Uint8Array.from({ length: n }, () => u32() & 1);
    case 'I8':
      return Int8Array.from({ length: n }, () => u32() & 0xff);
    case 'I16':
      return Int16Array.from({ length: n }, () => u32() & 0xffff);
    case 'I32':
      return Int32Array.from({ length: n }, (_, i) => [-0x80000000, 0x7fffffff][i] ?? u32() | 0);
    case 'U32':
      return Uint32Array.from({ length: n }, (_, i) => [0xffffffff][i] ?? u32());
    case 'I64':
      return BigInt64Array.from(
        { length: n },
        (_, i) => BigInt.asIntN(64, (BigInt(u32()) << 32n) | BigInt(u32())) >> BigInt(i % 40),
      );
    case 'U64':
      return BigUint64Array.from(
        { length: n },
        (_, i) => ((BigInt(u32()) << 32n) | BigInt(u32())) >> BigInt(i % 40),
      );
  }
}

/** What reading `data` stored as `dtype` with as: 'f32' must give, computed without the library. */
function expectedF32(dtype: SafetensorsDtype, data: TensorData): number[] {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (dtype === 'F16') out.push(f16Ref(v as number));
    else if (dtype === 'BF16') {
      const f = new Float32Array(new Uint32Array([(v as number) << 16]).buffer)[0];
      out.push(f);
    } else if (dtype === 'F8_E4M3' || dtype === 'F8_E5M2') continue;
    else out.push(Math.fround(Number(v)));
  }
  return out;
}

/** Textbook f16 decode used as an oracle. */
function f16Ref(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const SHAPES: number[][] = [[], [0, 3], [5], [2, 3, 4]];

describe('round trips', () => {
  it('every dtype and shape survives serialize → parse byte for byte, in memory and on disk', async () => {
    const rand = mulberry32(1);
    const tensors: Record<string, TensorInput> = {};
    for (const dtype of SAFETENSORS_DTYPES) {
      for (const shape of SHAPES) {
        const n = shape.reduce((a, b) => a * b, 1);
        tensors[`${dtype}.${shape.join('x') || 'scalar'}`] = {
          dtype,
          shape,
          data: sampleData(dtype, n, rand),
        };
      }
    }
    const metadata = { format: 'pt', note: 'ünïcode ✓ "quoted"\n' };
    const bytes = serializeSafetensors(tensors, metadata);
    const file = join(dir, 'all-dtypes.safetensors');
    await writeSafetensors(file, tensors, metadata);
    expect(new Uint8Array(await readFile(file))).toEqual(bytes);

    const mem = parseSafetensors(bytes);
    const reader = await SafetensorsReader.open(file);
    try {
      expect(mem.metadata).toEqual(metadata);
      expect(reader.metadata).toEqual(metadata);
      expect(new Set(reader.keys())).toEqual(new Set(Object.keys(tensors)));
      for (const [name, t] of Object.entries(tensors)) {
        const info = reader.info(name);
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        expect(mem.read(name, { as: 'raw' })).toEqual(bytesOf(t.data));
        expect(await reader.read(name, { as: 'raw' })).toEqual(bytesOf(t.data));
        if (!t.dtype.startsWith('F8')) {
          const want = expectedF32(t.dtype, t.data);
          sameF32(mem.read(name), want);
          sameF32(await reader.read(name, { as: 'f32' }), want);
        }
        if (t.dtype === 'F16') expect(await reader.read(name, { as: 'f16' })).toEqual(t.data);
      }
    } finally {
      await reader.close();
    }
  });

  it('writes tensors in dtype-alignment order then name order, each naturally aligned', () => {
    const t = (dtype: SafetensorsDtype, n: number): TensorInput => ({
      dtype,
      shape: [n],
      data: dtype === 'I64' ? new BigInt64Array(n) : new Float32Array(n),
    });
    const bytes = serializeSafetensors({
      b: t('F32', 1),
      z: t('I8', 3),
      a: t('F16', 1),
      y: t('I64', 1),
      c: t('F32', 2),
    });
    const f = parseSafetensors(bytes);
    expect(f.keys()).toEqual(['y', 'b', 'c', 'a', 'z']);
    for (const name of f.keys()) {
      const { dtype, dataOffsets } = f.info(name);
      expect((f.header.dataStart + dataOffsets[0]) % DTYPE_ITEMSIZE[dtype]).toBe(0);
    }
    // Names sort by code point (UTF-8 byte order), not UTF-16 code unit order.
    const g = parseSafetensors(
      serializeSafetensors({ '\u{1F600}': t('F32', 1), '\uFF01': t('F32', 1), a: t('F32', 1) }),
    );
    expect(g.keys()).toEqual(['a', '\uFF01', '\u{1F600}']);
  });

  it('converts values to the stored dtype and rejects unrepresentable ones', () => {
    const f32 = new Float32Array([1, -2.5, 65504, 0.1]);
    const f = parseSafetensors(
      serializeSafetensors({
        h: { dtype: 'F16', shape: [4], data: f32 },
        b: { dtype: 'BF16', shape: [2, 2], data: f32 },
        d: { dtype: 'F64', shape: [4], data: f32 },
        i: { dtype: 'I32', shape: [3], data: new Float32Array([1, -7, 2 ** 24]) },
        l: { dtype: 'I64', shape: [2], data: new Int32Array([-5, 2 ** 31 - 1]) },
        u: { dtype: 'U8', shape: [2], data: new Int32Array([0, 255]) },
        q: { dtype: 'BOOL', shape: [3], data: new Float32Array([0, 1, 1]) },
        k: { dtype: 'F32', shape: [2], data: new BigInt64Array([3n, -(2n ** 40n)]) },
      }),
    );
    expect(Array.from(f.read('h', { as: 'f16' }))).toEqual([0x3c00, 0xc100, 0x7bff, 0x2e66]);
    // bf16 rounds 65504 up to 65536 (f16 Inf) and 0.1 to 0.10009765625 (f16 0x2e68).
    expect(Array.from(f.read('b', { as: 'f16' }))).toEqual([0x3c00, 0xc100, 0x7c00, 0x2e68]);
    expect(Array.from(f.read('d'))).toEqual(Array.from(f32));
    expect(Array.from(f.read('i', { as: 'i32' }))).toEqual([1, -7, 2 ** 24]);
    expect(Array.from(f.read('l', { as: 'i32' }))).toEqual([-5, 2 ** 31 - 1]);
    expect(Array.from(f.read('u', { as: 'i32' }))).toEqual([0, 255]);
    expect(Array.from(f.read('q', { as: 'i32' }))).toEqual([0, 1, 1]);
    expect(Array.from(f.read('k'))).toEqual([3, -(2 ** 40)]);
    expect(f.read('h', { as: 'raw' })).toEqual(bytesOf(new Uint16Array([0x3c00, 0xc100, 0x7bff, 0x2e66])));

    const bad: [SafetensorsDtype, TensorData][] = [
      ['I32', new Float32Array([1.5])],
      ['I32', new Float64Array([2 ** 31])],
      ['U8', new Int32Array([256])],
      ['I8', new Int32Array([-129])],
      ['BOOL', new Uint8Array([2])],
      ['U64', new Float32Array([-1])],
      ['U64', new BigInt64Array([-1n])],
      ['I64', new BigUint64Array([2n ** 63n])],
      ['I64', new Float64Array([Number.NaN])],
      ['U32', new Float64Array([Number.POSITIVE_INFINITY])],
    ];
    for (const [dtype, data] of bad) {
      expectCode(() => serializeSafetensors({ x: { dtype, shape: [1], data } }), 'OUT_OF_RANGE');
    }
  });

  it('reads integers as i32 only when every value fits', () => {
    const mk = (dtype: SafetensorsDtype, data: TensorData) =>
      parseSafetensors(serializeSafetensors({ x: { dtype, shape: [data.length], data } }));
    expect(
      Array.from(mk('I64', new BigInt64Array([-(2n ** 31n), 2n ** 31n - 1n])).read('x', { as: 'i32' })),
    ).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    expect(
      expectCode(() => mk('I64', new BigInt64Array([2n ** 31n])).read('x', { as: 'i32' }), 'OUT_OF_RANGE')
        .message,
    ).toContain('2147483648');
    expectCode(
      () => mk('I64', new BigInt64Array([-(2n ** 31n) - 1n])).read('x', { as: 'i32' }),
      'OUT_OF_RANGE',
    );
    expectCode(() => mk('U64', new BigUint64Array([2n ** 63n])).read('x', { as: 'i32' }), 'OUT_OF_RANGE');
    expectCode(() => mk('U32', new Uint32Array([2 ** 31])).read('x', { as: 'i32' }), 'OUT_OF_RANGE');
    expectCode(() => mk('F32', new Float32Array([1])).read('x', { as: 'i32' }), 'UNSUPPORTED');
    expectCode(() => mk('F32', new Float32Array([1])).read('x', { as: 'f64' as ReadAs }), 'UNSUPPORTED');
  });

  it('validates inputs before writing', () => {
    const ok: TensorInput = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    expectCode(() => serializeSafetensors({ __metadata__: ok }), 'BAD_HEADER');
    expectCode(() => serializeSafetensors({ x: { ...ok, shape: [3] } }), 'BAD_DATA');
    expectCode(() => serializeSafetensors({ x: { ...ok, shape: [-2] } }), 'BAD_SHAPE');
    expectCode(() => serializeSafetensors({ x: { ...ok, shape: [1.5] } }), 'BAD_SHAPE');
    expectCode(() => serializeSafetensors({ x: { ...ok, dtype: 'F12' as SafetensorsDtype } }), 'BAD_DTYPE');
    expectCode(
      () => serializeSafetensors({ x: { ...ok, data: [1, 2] as unknown as Float32Array } }),
      'BAD_DATA',
    );
    expectCode(() => serializeSafetensors({ x: ok }, { n: 5 as unknown as string }), 'BAD_METADATA');
    // Map input works and yields the same bytes as a record.
    expect(serializeSafetensors(new Map([['x', ok]]), {})).toEqual(serializeSafetensors({ x: ok }, {}));
  });
});

// ---------------------------------------------------------------------------------------------
// Byte-level format
// ---------------------------------------------------------------------------------------------

describe('byte-level layout', () => {
  it('matches a file assembled by hand from the spec', () => {
    const json =
      '{"__metadata__":{"format":"pt","z":"1"},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"a":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}}';
    expect(utf8(json).length % 8).not.toBe(0); // so that padding is exercised
    const data = concat(bytesOf(new Float32Array([1.5, -2])), Uint8Array.from([1, 0xff, 0x80]));
    const expected = buildFile(json, data);
    const got = serializeSafetensors(
      {
        a: { dtype: 'I8', shape: [3], data: new Int8Array([1, -1, -128]) },
        b: { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) },
      },
      { z: '1', format: 'pt' },
    );
    expect(got).toEqual(expected);
    const n = Number(new DataView(got.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(Array.from(got.subarray(8 + utf8(json).length, 8 + n)).every((c) => c === 0x20)).toBe(true);
  });

  it('matches the reference writer for a single F32 tensor (header of exactly 64 bytes)', () => {
    const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(utf8(json).length).toBe(64);
    const values = new Float32Array([0, 1, 2, 3, 4, 5]);
    const got = serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: values } });
    expect(got).toEqual(concat(Uint8Array.from([64, 0, 0, 0, 0, 0, 0, 0]), utf8(json), bytesOf(values)));
    // An empty file is "{}" plus six spaces.
    expect(serializeSafetensors({})).toEqual(
      Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]),
    );
  });

  it('reads spec-valid files from other writers: unpadded, any key order, whitespace, gaps, trailing bytes', () => {
    const json =
      ' { "w": {"shape": [2, 2], "data_offsets": [3, 19], "dtype": "F32"},\n "__metadata__": {}, "e": {"dtype":"BF16","shape":[0],"data_offsets":[0,0]},' +
      ' "v": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]} }';
    const w = new Float32Array([1, 2, 3, 4]);
    const data = concat(Uint8Array.from([7, 8, 9]), bytesOf(w), Uint8Array.from([0, 0, 0, 0, 42]));
    const bytes = buildFile(json, data, false);
    expect((8 + utf8(json).length) % 4).not.toBe(0); // F32 data is unaligned in memory
    const f = parseSafetensors(bytes);
    expect(f.keys()).toEqual(['e', 'v', 'w']);
    expect(f.metadata).toEqual({});
    expect(Array.from(f.read('w'))).toEqual([1, 2, 3, 4]);
    expect(Array.from(f.read('v', { as: 'i32' }))).toEqual([7, 8, 9]);
    expect(f.read('e').length).toBe(0);
    expect(f.header.dataLength).toBe(data.length);
    // Reads are copies: writing into them leaves the buffer alone.
    f.read('v', { as: 'raw' })[0] = 99;
    expect(f.bytes('v')[0]).toBe(7);
  });
});

// ---------------------------------------------------------------------------------------------
// Header validation
// ---------------------------------------------------------------------------------------------

describe('header validation', () => {
  const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });
  const file = (header: unknown, dataLen = 16) => buildFile(JSON.stringify(header), new Uint8Array(dataLen));

  it.each([
    ['empty buffer', new Uint8Array(0), 'TRUNCATED'],
    ['7 bytes', new Uint8Array(7), 'TRUNCATED'],
    ['length 2^64-1', concat(u64le(2n ** 64n - 1n), utf8('{}')), 'HEADER_TOO_LARGE'],
    ['length 100 MB + 1', concat(u64le(100_000_001n), utf8('{}')), 'HEADER_TOO_LARGE'],
    ['length past the end', concat(u64le(16n), utf8('{}      ')), 'TRUNCATED'],
    ['zero-length header', u64le(0n), 'BAD_JSON'],
    ['invalid UTF-8', concat(u64le(4n), Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])), 'BAD_JSON'],
    ['BOM', concat(u64le(5n), Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), 'BAD_JSON'],
    ['not JSON', buildFile('{"a":', new Uint8Array(0)), 'BAD_JSON'],
    ['array root', buildFile('[]', new Uint8Array(0)), 'BAD_HEADER'],
    ['null root', buildFile('null', new Uint8Array(0)), 'BAD_HEADER'],
    ['entry is a number', file({ a: 3 }), 'BAD_HEADER'],
    ['unknown dtype', file({ a: entry('F12', [4], [0, 16]) }), 'BAD_DTYPE'],
    ['lower-case dtype', file({ a: entry('f32', [4], [0, 16]) }), 'BAD_DTYPE'],
    ['missing dtype', file({ a: { shape: [4], data_offsets: [0, 16] } }), 'BAD_DTYPE'],
    ['prototype key as dtype', file({ a: entry('toString', [4], [0, 16]) }), 'BAD_DTYPE'],
    ['negative dim', file({ a: entry('F32', [-4], [0, 16]) }), 'BAD_SHAPE'],
    ['fractional dim', file({ a: entry('F32', [2.5], [0, 10]) }), 'BAD_SHAPE'],
    ['string dim', file({ a: entry('F32', ['4'], [0, 16]) }), 'BAD_SHAPE'],
    ['shape not array', file({ a: entry('F32', 4, [0, 16]) }), 'BAD_SHAPE'],
    ['numel overflow', file({ a: entry('F32', [2 ** 30, 2 ** 30, 2 ** 30], [0, 16]) }), 'BAD_SHAPE'],
    ['offsets too short', file({ a: entry('F32', [4], [0, 12]) }), 'BAD_OFFSETS'],
    ['offsets reversed', file({ a: entry('F32', [0], [16, 0]) }), 'BAD_OFFSETS'],
    ['one offset', file({ a: entry('F32', [0], [0]) }), 'BAD_OFFSETS'],
    ['negative offset', file({ a: entry('U8', [1], [-1, 0]) }), 'BAD_OFFSETS'],
    ['offsets missing', file({ a: { dtype: 'F32', shape: [4] } }), 'BAD_OFFSETS'],
    ['past the data', file({ a: entry('F32', [4], [4, 20]) }), 'TRUNCATED'],
    ['huge offsets', file({ a: entry('U8', [1], [2 ** 53, 2 ** 53 + 1]) }), 'BAD_OFFSETS'],
    ['overlap', file({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }), 'BAD_OFFSETS'],
    ['same range', file({ a: entry('F32', [2], [0, 8]), b: entry('I32', [2], [0, 8]) }), 'BAD_OFFSETS'],
    ['contained', file({ a: entry('U8', [16], [0, 16]), b: entry('U8', [1], [5, 6]) }), 'BAD_OFFSETS'],
    ['metadata number', file({ __metadata__: { a: 1 } }), 'BAD_METADATA'],
    ['metadata nested', file({ __metadata__: { a: {} } }), 'BAD_METADATA'],
    ['metadata array', file({ __metadata__: ['a'] }), 'BAD_METADATA'],
    ['metadata string', file({ __metadata__: 'x' }), 'BAD_METADATA'],
  ] as const)('rejects %s', (_label, bytes, code) => {
    expectCode(() => parseSafetensors(bytes), code);
  });

  it('accepts empty tensors anywhere and adjacent tensors', () => {
    const f = parseSafetensors(
      file({
        a: entry('F32', [2], [0, 8]),
        b: entry('F32', [2], [8, 16]),
        e1: entry('F32', [0, 5], [4, 4]),
        e2: entry('U8', [0], [16, 16]),
      }),
    );
    expect(f.keys()).toEqual(['a', 'e1', 'b', 'e2']);
  });

  it('names the file, the tensor and the problem in one line', async () => {
    const bytes = file({ 'layer\n.0': entry('F32', [4], [0, 12]) });
    const err = expectCode(() => parseSafetensors(bytes, { path: '/models/x.safetensors' }), 'BAD_OFFSETS');
    expect(err.message).toContain('/models/x.safetensors');
    expect(err.message).toContain('"layer\\n.0"');
    expect(err.message).toContain('F32 [4] needs 16');
    expect(err.path).toBe('/models/x.safetensors');

    const p = join(dir, 'bad-offsets.safetensors');
    await writeFile(p, bytes);
    const e2 = await expectCodeAsync(SafetensorsReader.open(p), 'BAD_OFFSETS');
    expect(e2.path).toBe(p);
    expect(e2.message).toContain(p);

    expect(
      (await expectCodeAsync(SafetensorsReader.open(join(dir, 'missing.safetensors')), 'IO')).message,
    ).toContain('missing.safetensors');
    const ok = parseSafetensors(file({ a: entry('F32', [4], [0, 16]) }));
    expect(expectCode(() => ok.read('nope'), 'NOT_FOUND').message).toContain('"a"');
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzzing
// ---------------------------------------------------------------------------------------------

describe('fuzzing (seeded)', () => {
  const rand = mulberry32(0x5afe);
  const int = (n: number) => Math.floor(rand() * n);
  const valid = serializeSafetensors(
    {
      'w.f32': { dtype: 'F32', shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      'w.f16': { dtype: 'F16', shape: [4], data: new Float32Array([1, -1, 0.5, 2]) },
      'w.bf16': { dtype: 'BF16', shape: [2, 1], data: new Float32Array([3, 4]) },
      ids: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -2n, 3n]) },
      mask: { dtype: 'BOOL', shape: [5], data: new Uint8Array([1, 0, 1, 1, 0]) },
      q: { dtype: 'F8_E4M3', shape: [2], data: new Uint8Array([0x38, 0x40]) },
      s: { dtype: 'I32', shape: [], data: new Int32Array([7]) },
    },
    { format: 'pt' },
  );
  const n = Number(new DataView(valid.buffer).getBigUint64(0, true));
  const json = new TextDecoder().decode(valid.subarray(8, 8 + n)).trimEnd();
  const data = valid.subarray(8 + n);

  it('accepts the unmutated file', () => {
    expect(parseAndReadAll(valid)).toBe('ok');
  });

  it('random buffers', () => {
    const codes = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const len = int(i < 100 ? 16 : 600);
      const b = Uint8Array.from({ length: len }, () => int(256));
      // Half of them get a plausible length field so the JSON stage is reached too.
      if (i % 2 === 0 && len >= 8) b.set(u64le(BigInt(int(len - 7))), 0);
      if (i % 4 === 0 && len > 9) b[8] = 0x7b;
      const c = parseAndReadAll(b);
      codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    expect(codes.size).toBeGreaterThan(2);
  });

  it('every truncation fails cleanly', () => {
    for (let len = 0; len < valid.length; len++) {
      const code = parseAndReadAll(valid.subarray(0, len));
      expect(code, `truncated to ${len}`).not.toBe('ok');
    }
  });

  it('random bit flips', () => {
    let ok = 0;
    for (let i = 0; i < 400; i++) {
      const b = valid.slice();
      const flips = 1 + int(4);
      for (let k = 0; k < flips; k++) {
        // Aim half the flips at the length field and the header, where the parser works hardest.
        const pos = rand() < 0.5 ? int(8 + n) : int(b.length);
        b[pos] ^= 1 << int(8);
      }
      if (parseAndReadAll(b) === 'ok') ok++;
    }
    expect(ok).toBeGreaterThan(0); // flips in tensor data leave a valid file
  });

  it('length field overwritten', () => {
    const values = [
      2n ** 64n - 1n,
      2n ** 63n,
      2n ** 53n + 1n,
      2n ** 32n,
      2n ** 31n,
      100_000_001n,
      100_000_000n,
      BigInt(valid.length),
      BigInt(valid.length - 8),
      BigInt(valid.length - 7),
      BigInt(n + 1),
      BigInt(n - 1),
      BigInt(n + 8),
      BigInt(n - 8),
      0n,
      1n,
      7n,
    ];
    for (let i = 0; i < 200; i++)
      values.push(BigInt.asUintN(64, (BigInt(int(2 ** 32)) << BigInt(int(33))) | BigInt(int(2 ** 32))));
    for (const v of values) {
      const b = valid.slice();
      b.set(u64le(v), 0);
      const code = parseAndReadAll(b);
      // Smaller values may still parse (e.g. N − 1 only drops a padding space); parseAndReadAll
      // already insists that anything else is a SafetensorsError.
      if (v > 100_000_000n) expect(code).toBe('HEADER_TOO_LARGE');
      else if (v > BigInt(valid.length - 8)) expect(code).toBe('TRUNCATED');
    }
  });

  it('structural JSON mutations', () => {
    const nasty: unknown[] = [
      -1,
      0,
      1.5,
      2 ** 53,
      1e300,
      '',
      'F32',
      'BF16',
      'I64',
      '__proto__',
      null,
      true,
      [],
      {},
      [1, 2, 3],
      [0, 0],
      [2 ** 53, 2 ** 53],
      [-8, 0],
      [0, 1e308],
      ['0', '8'],
      [[0], [8]],
      { a: 1 },
    ];
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
    const codes = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const h = JSON.parse(json) as Record<string, Record<string, unknown>>;
      const names = Object.keys(h).filter((k) => k !== '__metadata__');
      const t = pick(names);
      switch (int(8)) {
        case 0:
          h[t][pick(['dtype', 'shape', 'data_offsets'])] = pick(nasty);
          break;
        case 1:
          delete h[t][pick(['dtype', 'shape', 'data_offsets'])];
          break;
        case 2: {
          const o = h[t].data_offsets as number[];
          o[int(2)] += int(17) - 8;
          break;
        }
        case 3: {
          // Claim another tensor's bytes (or part of them).
          const u = h[pick(names)].data_offsets as number[];
          h[`dup${i}`] = { dtype: 'U8', shape: [int(4)], data_offsets: [u[0] + int(3), u[0] + int(3)] };
          (h[`dup${i}`].data_offsets as number[])[1] += (h[`dup${i}`].shape as number[])[0];
          break;
        }
        case 4:
          (h as Record<string, unknown>).__metadata__ = pick([...nasty, { k: pick(nasty) }]);
          break;
        case 5:
          (h[t].shape as unknown[]).push(pick(nasty));
          break;
        case 6:
          (h as Record<string, unknown>)[t] = pick(nasty);
          break;
        default:
          h[t].dtype = pick(SAFETENSORS_DTYPES);
      }
      const c = parseAndReadAll(buildFile(JSON.stringify(h), data, rand() < 0.8));
      codes.add(c);
    }
    for (const c of ['BAD_DTYPE', 'BAD_SHAPE', 'BAD_OFFSETS', 'BAD_METADATA', 'BAD_HEADER'])
      expect(codes).toContain(c);
  });

  it('textual JSON mutations', () => {
    const alphabet = '{}[]":,0123456789-.eE \\u\u00e9\u{1F600}\x00\n';
    let ok = 0;
    for (let i = 0; i < 400; i++) {
      const chars = Array.from(json);
      const edits = 1 + int(3);
      for (let k = 0; k < edits; k++) {
        const pos = int(chars.length);
        const c = alphabet[int(alphabet.length)];
        const op = int(3);
        if (op === 0) chars[pos] = c;
        else if (op === 1) chars.splice(pos, 0, c);
        else chars.splice(pos, 1);
      }
      if (parseAndReadAll(buildFile(chars.join(''), data, rand() < 0.5)) === 'ok') ok++;
    }
    expect(ok).toBeLessThan(400);
  });

  it('mutated files fail with SafetensorsError through the file reader too', async () => {
    for (let i = 0; i < 40; i++) {
      const b = valid.slice();
      b[int(8 + n)] ^= 1 << int(8);
      const p = join(dir, `fuzz-${i}.safetensors`);
      await writeFile(p, b);
      const r = await SafetensorsReader.open(p).then(
        (reader) => reader,
        (e: unknown) => {
          expect(e).toBeInstanceOf(SafetensorsError);
          expect((e as SafetensorsError).path).toBe(p);
          return undefined;
        },
      );
      if (r) {
        for (const name of r.keys()) await r.read(name, { as: 'f32' });
        await r.close();
      }
      await rm(p);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Node file I/O: partial reads, chunks, atomic writes
// ---------------------------------------------------------------------------------------------

/** The FileHandle prototype, so tests can observe every positioned read/write. */
async function fileHandleProto(): Promise<{
  read: (...a: unknown[]) => unknown;
  write: (...a: unknown[]) => unknown;
}> {
  const fh = await open(join(dir, '.probe'), 'w');
  await fh.close();
  return Object.getPrototypeOf(fh);
}

describe('node file reader', () => {
  const rows = 3072;
  const cols = 2048;
  let big: string;
  let a: Float32Array;
  let b: Float32Array;

  beforeAll(async () => {
    a = Float32Array.from({ length: rows * cols }, (_, i) => i);
    b = Float32Array.from({ length: rows * cols }, (_, i) => -i / 8);
    big = join(dir, 'big.safetensors');
    const tensors = {
      'big.a': { dtype: 'F32', shape: [rows, cols], data: a },
      'big.b': { dtype: 'F32', shape: [rows, cols], data: b },
      small: { dtype: 'F16', shape: [7, 3], data: Float32Array.from({ length: 21 }, (_, i) => i / 4) },
    } satisfies Record<string, TensorInput>;
    // Observe the target while writing: it must never exist with partial contents.
    let writing = true;
    const sizes = new Set<number>();
    const watcher = (async () => {
      while (writing) {
        const s = await stat(big).then(
          (x) => x.size,
          () => -1,
        );
        sizes.add(s);
        await new Promise((r) => setImmediate(r));
      }
    })();
    await writeSafetensors(big, tensors);
    writing = false;
    await watcher;
    const size = (await stat(big)).size;
    expect(size).toBeGreaterThan(50_000_000);
    for (const s of sizes) expect([-1, size]).toContain(s);
    expect(sizes.has(-1)).toBe(true);
  });

  it('reads one tensor with positioned reads of only the header and that tensor', async () => {
    const proto = await fileHandleProto();
    const spy = vi.spyOn(proto, 'read');
    const r = await SafetensorsReader.open(big);
    try {
      const small = await r.read('small');
      expect(Array.from(small)).toEqual(Array.from({ length: 21 }, (_, i) => i / 4));
      let total = 0;
      for (const res of spy.mock.results) total += ((await res.value) as { bytesRead: number }).bytesRead;
      expect(total).toBe(r.header.dataStart + 21 * 2);
      for (const call of spy.mock.calls) expect(typeof call[3]).toBe('number'); // explicit position
      expect(Array.from(await r.read('small', { as: 'f16' }))).toEqual(Array.from(encodeF16(small)));
    } finally {
      await r.close();
    }
  });

  it('reads a big tensor whole and in row-aligned chunks', async () => {
    const r = await SafetensorsReader.open(big);
    try {
      const whole = await r.read('big.a');
      expect(whole.length).toBe(a.length);
      expect(whole[12345]).toBe(12345);
      expect(sameBytes(whole, a)).toBe(true);

      const proto = await fileHandleProto();
      const spy = vi.spyOn(proto, 'read');
      const maxBytes = 3_000_000;
      const got = new Float32Array(b.length);
      let next = 0;
      for await (const chunk of r.readChunks('big.b', maxBytes)) {
        expect(chunk.rowStart).toBe(next);
        expect(chunk.data.length).toBe(chunk.rowCount * cols);
        expect(chunk.data.length * 4).toBeLessThanOrEqual(maxBytes);
        got.set(chunk.data, chunk.rowStart * cols);
        next += chunk.rowCount;
      }
      expect(next).toBe(rows);
      expect(sameBytes(got, b)).toBe(true);
      let total = 0;
      for (const res of spy.mock.results) total += ((await res.value) as { bytesRead: number }).bytesRead;
      expect(total).toBe(b.byteLength);

      // A row larger than maxBytes still comes whole; a scalar comes as one chunk.
      const one = [];
      for await (const c of r.readChunks('small', 1, { as: 'raw' })) one.push(c);
      expect(one.map((c) => [c.rowStart, c.rowCount, c.data.length])).toEqual(
        Array.from({ length: 7 }, (_, i) => [i, 1, 6]),
      );
      await expect(r.readChunks('small', 0).next()).rejects.toThrow(RangeError);
      await expectCodeAsync(r.read('nope'), 'NOT_FOUND');
    } finally {
      await r.close();
    }
    await expectCodeAsync(r.read('small'), 'IO');
  });

  it('reports a file truncated after opening', async () => {
    const p = join(dir, 'shrinks.safetensors');
    await writeSafetensors(p, { x: { dtype: 'F32', shape: [1000], data: new Float32Array(1000) } });
    const r = await SafetensorsReader.open(p);
    try {
      const fh = await open(p, 'r+');
      await fh.truncate(100);
      await fh.close();
      await expectCodeAsync(r.read('x'), 'TRUNCATED');
    } finally {
      await r.close();
    }
  });
});

describe('atomic writes', () => {
  const v1 = { x: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } } satisfies Record<
    string,
    TensorInput
  >;

  async function freshDir(name: string): Promise<string> {
    return mkdtemp(join(dir, `${name}-`));
  }

  it('leaves only the target file behind', async () => {
    const d = await freshDir('ok');
    const p = join(d, 'model.safetensors');
    await writeSafetensors(p, v1, { step: '1' });
    await writeSafetensors(p, v1, { step: '2' }); // replacing an existing file
    expect(await readdir(d)).toEqual(['model.safetensors']);
    expect(parseSafetensors(new Uint8Array(await readFile(p))).metadata).toEqual({ step: '2' });
  });

  it('keeps the previous file when a conversion fails midway', async () => {
    const d = await freshDir('convert');
    const p = join(d, 'model.safetensors');
    await writeSafetensors(p, v1);
    const before = await readFile(p);
    const proto = await fileHandleProto();
    const spy = vi.spyOn(proto, 'write');
    // F32 'a' is written first (alignment order); then I32 'z' hits a non-integer.
    const bad = {
      a: { dtype: 'F32', shape: [1024], data: new Float32Array(1024) },
      z: { dtype: 'I32', shape: [2], data: new Float32Array([1, 1.5]) },
    } satisfies Record<string, TensorInput>;
    const err = await expectCodeAsync(writeSafetensors(p, bad), 'OUT_OF_RANGE');
    expect(err.message).toContain('"z"');
    expect(spy.mock.calls.length).toBeGreaterThanOrEqual(2); // header and 'a' had been written
    expect(await readFile(p)).toEqual(before);
    expect(await readdir(d)).toEqual(['model.safetensors']);
  });

  it('keeps the previous file when the disk fails midway', async () => {
    const d = await freshDir('io');
    const p = join(d, 'model.safetensors');
    await writeSafetensors(p, v1);
    const before = await readFile(p);
    const proto = await fileHandleProto();
    const real = proto.write;
    let calls = 0;
    vi.spyOn(proto, 'write').mockImplementation(function (this: unknown, ...args: unknown[]) {
      if (++calls === 2)
        return Promise.reject(
          Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }),
        );
      return real.apply(this, args);
    });
    const err = await expectCodeAsync(
      writeSafetensors(p, { ...v1, y: { dtype: 'F32', shape: [4], data: new Float32Array(4) } }),
      'IO',
    );
    expect(err.message).toContain('ENOSPC');
    expect(err.message).toContain(p);
    expect(await readFile(p)).toEqual(before);
    expect(await readdir(d)).toEqual(['model.safetensors']);
  });

  it('reports an unwritable location as IO and validation errors before touching disk', async () => {
    await expectCodeAsync(writeSafetensors(join(dir, 'no', 'such', 'dir', 'm.safetensors'), v1), 'IO');
    const d = await freshDir('invalid');
    await expectCodeAsync(
      writeSafetensors(join(d, 'm.safetensors'), {
        x: { dtype: 'F32', shape: [3], data: new Float32Array(2) },
      }),
      'BAD_DATA',
    );
    expect(await readdir(d)).toEqual([]);
  });
});
