/**
 * Platform-neutral safetensors codec (runs in browsers and Node; no I/O here).
 *
 * File layout: u64 little-endian N, then N bytes of UTF-8 JSON
 * `{"__metadata__"?: {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`
 * (our writer pads it with spaces to a multiple of 8), then the data section; offsets are relative to
 * its start (byte 8 + N). Tensor data is little-endian, row-major.
 */

import {
  BF16_FORMAT,
  decodeBF16,
  decodeF8,
  decodeF16,
  E4M3_FORMAT,
  E5M2_FORMAT,
  encodeFloatBits,
  F16_FORMAT,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../float-codecs.js';
import { SafetensorsError, type SafetensorsErrorCode } from './errors.js';

/**
 * Every dtype we read and write, in the reference implementation's enum order (ascending alignment).
 * Writers sort tensors by this order descending so each tensor's data is naturally aligned.
 * F8_E4M3 is the "fn" variant (no infinities, max 448); F8_E5M2 is IEEE-like.
 */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
] as const;

/** A dtype name as the safetensors header spells it (`"F32"`, `"BF16"`, ...): one of {@link SAFETENSORS_DTYPES}. */
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

/** Bytes per element of each safetensors dtype (BOOL and F8 take one byte each). */
export const DTYPE_ITEMSIZE: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Whether `value` is a dtype name safetensors files may use (case-sensitive, e.g. `"F32"`, not `"f32"`). */
export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_ITEMSIZE, value);
}

/** Same limit as the reference implementation: a larger length field means a corrupt or foreign file. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Quote a (possibly hostile) tensor name for an error message: escaped, bounded length. */
function quoteName(name: string): string {
  const q = JSON.stringify(name);
  return q.length > 80 ? `${q.slice(0, 77)}…"` : q;
}

/** Where an error should say it happened. */
export interface SafetensorsContext {
  path?: string;
  name?: string;
}

function fail(code: SafetensorsErrorCode, detail: string, ctx: SafetensorsContext): never {
  const prefix = ctx.name === undefined ? '' : `tensor ${quoteName(ctx.name)}: `;
  throw new SafetensorsError(code, prefix + detail, ctx.path === undefined ? {} : { path: ctx.path });
}

// Typed-array views use host byte order while the format is little-endian. Every platform with
// WebGPU is little-endian, so we refuse big-endian hosts instead of byte-swapping.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndianHost(ctx: SafetensorsContext): void {
  if (!HOST_IS_LITTLE_ENDIAN) fail('UNSUPPORTED', 'big-endian hosts are not supported', ctx);
}

// ---------------------------------------------------------------------------------------------
// Decoding tensor bytes
// ---------------------------------------------------------------------------------------------

/** Element type a tensor is read as: f32 values, f16 bit patterns, int32 values, or the stored bytes. */
export type ReadAs = 'f32' | 'f16' | 'i32' | 'raw';

/**
 * The array type a tensor is read into, for each {@link ReadAs}: a type map (`ReadResult['f16']`)
 * that gives `read(name, { as })` its return type, not a value to construct.
 */
export interface ReadResult {
  /** Values converted to f32 (rounded where f32 cannot hold them: F64, large integers). */
  f32: Float32Array;
  /** IEEE half bit patterns, rounded once from the stored type; decode with {@link decodeF16}. */
  f16: Uint16Array;
  /** Integer values; integer and BOOL dtypes only, and every value must fit int32. */
  i32: Int32Array;
  /** The stored bytes, little-endian. */
  raw: Uint8Array;
}

/** Typed-array views need offsets aligned to the element size; copy when they are not. */
function aligned(bytes: Uint8Array, itemsize: number): Uint8Array {
  return bytes.byteOffset % itemsize === 0 ? bytes : bytes.slice();
}

function toF32(dtype: SafetensorsDtype, b: Uint8Array): Float32Array {
  const n = b.length / DTYPE_ITEMSIZE[dtype];
  switch (dtype) {
    case 'F32':
      return new Float32Array(b.buffer, b.byteOffset, n);
    case 'F64':
      return new Float32Array(new Float64Array(b.buffer, b.byteOffset, n));
    case 'F16':
      return decodeF16(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'BF16':
      return decodeBF16(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'F8_E4M3':
      return decodeF8(b, E4M3_FORMAT);
    case 'F8_E5M2':
      return decodeF8(b, E5M2_FORMAT);
    case 'BOOL': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = b[i] !== 0 ? 1 : 0;
      return out;
    }
    case 'U8':
      return new Float32Array(b);
    case 'I8':
      return new Float32Array(new Int8Array(b.buffer, b.byteOffset, n));
    case 'I16':
      return new Float32Array(new Int16Array(b.buffer, b.byteOffset, n));
    case 'U16':
      return new Float32Array(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'I32':
      return new Float32Array(new Int32Array(b.buffer, b.byteOffset, n));
    case 'U32':
      return new Float32Array(new Uint32Array(b.buffer, b.byteOffset, n));
    case 'I64':
    case 'U64': {
      // lo (unsigned) + hi·2^32 is one correctly rounded double; faster than BigInt per element.
      const lo = new Uint32Array(b.buffer, b.byteOffset, 2 * n);
      const hi = dtype === 'I64' ? new Int32Array(b.buffer, b.byteOffset, 2 * n) : lo;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = lo[2 * i] + hi[2 * i + 1] * 4294967296;
      return out;
    }
  }
}

function toI32(dtype: SafetensorsDtype, b: Uint8Array, ctx: SafetensorsContext): Int32Array {
  const n = b.length / DTYPE_ITEMSIZE[dtype];
  const outOfRange = (i: number, v: string): never =>
    fail('OUT_OF_RANGE', `element ${i} = ${v} (${dtype}) does not fit in int32`, ctx);
  switch (dtype) {
    case 'I32':
      return new Int32Array(b.buffer, b.byteOffset, n);
    case 'BOOL': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = b[i] !== 0 ? 1 : 0;
      return out;
    }
    case 'U8':
      return new Int32Array(b);
    case 'I8':
      return new Int32Array(new Int8Array(b.buffer, b.byteOffset, n));
    case 'I16':
      return new Int32Array(new Int16Array(b.buffer, b.byteOffset, n));
    case 'U16':
      return new Int32Array(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'U32': {
      const out = new Int32Array(b.buffer, b.byteOffset, n);
      for (let i = 0; i < n; i++) if (out[i] < 0) outOfRange(i, String(out[i] >>> 0));
      return out;
    }
    case 'I64':
    case 'U64': {
      const w = new Int32Array(b.buffer, b.byteOffset, 2 * n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const lo = w[2 * i];
        const hi = w[2 * i + 1];
        // Fits iff the high word is the sign extension of the low word (and, unsigned, lo ≥ 0).
        const fits = dtype === 'I64' ? hi === (lo < 0 ? -1 : 0) : hi === 0 && lo >= 0;
        if (!fits) {
          const big = new DataView(b.buffer, b.byteOffset + 8 * i, 8);
          outOfRange(i, String(dtype === 'I64' ? big.getBigInt64(0, true) : big.getBigUint64(0, true)));
        }
        out[i] = lo;
      }
      return out;
    }
    default:
      return fail('UNSUPPORTED', `cannot read ${dtype} data as i32 (only integer and BOOL dtypes)`, ctx);
  }
}

function toF16(dtype: SafetensorsDtype, b: Uint8Array): Uint16Array {
  const n = b.length / DTYPE_ITEMSIZE[dtype];
  if (dtype === 'F16') return new Uint16Array(b.buffer, b.byteOffset, n);
  const out = new Uint16Array(n);
  if (dtype === 'F64') {
    // Round once from f64 (going through f32 first could double-round).
    const src = new Float64Array(b.buffer, b.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = encodeFloatBits(src[i], F16_FORMAT);
    return out;
  }
  // Every other dtype converts to f32 exactly or, for wide ints, only where f16 overflows anyway.
  const f = toF32(dtype, b);
  for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(f[i]);
  return out;
}

/**
 * Convert one tensor's stored bytes. When no conversion is needed (e.g. F32 as 'f32', or 'raw')
 * the result may be a view sharing memory with `bytes`; copy it if `bytes` will be reused.
 */
export function decodeTensor<A extends ReadAs>(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  as: A,
  ctx: SafetensorsContext = {},
): ReadResult[A] {
  requireLittleEndianHost(ctx);
  const itemsize = DTYPE_ITEMSIZE[dtype];
  if (bytes.length % itemsize !== 0) {
    fail('BAD_DATA', `${bytes.length} bytes is not a whole number of ${dtype} elements`, ctx);
  }
  const b = aligned(bytes, itemsize);
  switch (as) {
    case 'raw':
      return b as ReadResult[A];
    case 'f32':
      return toF32(dtype, b) as ReadResult[A];
    case 'f16':
      return toF16(dtype, b) as ReadResult[A];
    case 'i32':
      return toI32(dtype, b, ctx) as ReadResult[A];
    default:
      return fail(
        'UNSUPPORTED',
        `unknown read type ${JSON.stringify(as)} (expected f32, f16, i32 or raw)`,
        ctx,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding tensor data for writing
// ---------------------------------------------------------------------------------------------

/**
 * Typed arrays a tensor to write may hold its elements in ({@link TensorInput}'s `data`): the
 * storage type of the target dtype is written as is, any other is converted.
 */
export type TensorData =
  | Float64Array
  | Float32Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array;

/**
 * A tensor to write. `data` holds `numel(shape)` elements, row-major. If its element type is the
 * storage type of `dtype` the bytes are copied as they are; this includes Uint16Array for F16/BF16
 * and Uint8Array for F8_* (bit patterns). Otherwise values are converted: floats round to nearest
 * even; integer dtypes require integral in-range values and BOOL requires 0/1 (else OUT_OF_RANGE).
 */
export interface TensorInput {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: TensorData;
}

/**
 * Tensors to write, by name, as a plain object or a Map; the file's order does not depend on the
 * key order (see {@link planSafetensorsWrite}).
 */
export type TensorMap = Readonly<Record<string, TensorInput>> | ReadonlyMap<string, TensorInput>;

const TYPED_ARRAY_KINDS = new Set([
  'Float64Array',
  'Float32Array',
  'Int32Array',
  'Int16Array',
  'Int8Array',
  'Uint32Array',
  'Uint16Array',
  'Uint8Array',
  'BigInt64Array',
  'BigUint64Array',
]);

/** Typed-array class name; Symbol.toStringTag works across realms (workers, iframes), instanceof does not. */
function arrayKind(data: unknown): string | undefined {
  if (!ArrayBuffer.isView(data)) return undefined;
  const tag = (data as unknown as { [Symbol.toStringTag]: unknown })[Symbol.toStringTag];
  return typeof tag === 'string' && TYPED_ARRAY_KINDS.has(tag) ? tag : undefined;
}

const STORAGE_KIND: Readonly<Record<SafetensorsDtype, string | undefined>> = {
  F64: 'Float64Array',
  F32: 'Float32Array',
  F16: 'Uint16Array',
  BF16: 'Uint16Array',
  F8_E4M3: 'Uint8Array',
  F8_E5M2: 'Uint8Array',
  I64: 'BigInt64Array',
  I32: 'Int32Array',
  I16: 'Int16Array',
  I8: 'Int8Array',
  U64: 'BigUint64Array',
  U32: 'Uint32Array',
  U16: 'Uint16Array',
  U8: 'Uint8Array',
  // BOOL is always checked element by element so that only 0/1 bytes reach the file.
  BOOL: undefined,
};

const INT_RANGE: Readonly<Partial<Record<SafetensorsDtype, readonly [bigint, bigint]>>> = {
  BOOL: [0n, 1n],
  U8: [0n, 0xffn],
  I8: [-0x80n, 0x7fn],
  U16: [0n, 0xffffn],
  I16: [-0x8000n, 0x7fffn],
  U32: [0n, 0xffffffffn],
  I32: [-0x80000000n, 0x7fffffffn],
  U64: [0n, 0xffffffffffffffffn],
  I64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

function narrowIntView(
  dtype: SafetensorsDtype,
  buf: ArrayBuffer,
): Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array {
  switch (dtype) {
    case 'I8':
      return new Int8Array(buf);
    case 'U16':
      return new Uint16Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'U32':
      return new Uint32Array(buf);
    case 'I32':
      return new Int32Array(buf);
    default:
      return new Uint8Array(buf); // U8, BOOL
  }
}

/**
 * Bytes of elements [begin, end) of `data` stored as `dtype`. Returns a view of `data`'s memory
 * when no conversion is needed, so writers can stream huge tensors without copying them.
 */
export function encodeTensorData(
  dtype: SafetensorsDtype,
  data: TensorData,
  begin: number,
  end: number,
  ctx: SafetensorsContext = {},
): Uint8Array {
  requireLittleEndianHost(ctx);
  const kind = arrayKind(data);
  if (kind === undefined) fail('BAD_DATA', 'data is not a supported typed array', ctx);
  const itemsize = DTYPE_ITEMSIZE[dtype];
  if (kind === STORAGE_KIND[dtype]) {
    return new Uint8Array(data.buffer, data.byteOffset + begin * itemsize, (end - begin) * itemsize);
  }
  const n = end - begin;
  const buf = new ArrayBuffer(n * itemsize);
  const bad = (i: number): never =>
    fail(
      'OUT_OF_RANGE',
      `element ${begin + i} = ${String(data[begin + i])} is not representable as ${dtype}`,
      ctx,
    );
  const fromF32 = kind === 'Float32Array';
  switch (dtype) {
    case 'F64': {
      const o = new Float64Array(buf);
      for (let i = 0; i < n; i++) o[i] = Number(data[begin + i]);
      break;
    }
    case 'F32': {
      const o = new Float32Array(buf);
      for (let i = 0; i < n; i++) o[i] = Number(data[begin + i]);
      break;
    }
    case 'F16':
    case 'BF16': {
      const o = new Uint16Array(buf);
      const fast = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      const fmt = dtype === 'F16' ? F16_FORMAT : BF16_FORMAT;
      // Non-f32 sources (f64, wide ints) round once, directly, instead of via f32.
      for (let i = 0; i < n; i++) {
        const v = Number(data[begin + i]);
        o[i] = fromF32 ? fast(v) : encodeFloatBits(v, fmt);
      }
      break;
    }
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const o = new Uint8Array(buf);
      const fmt = dtype === 'F8_E4M3' ? E4M3_FORMAT : E5M2_FORMAT;
      for (let i = 0; i < n; i++) o[i] = encodeFloatBits(Number(data[begin + i]), fmt);
      break;
    }
    default: {
      const [lo, hi] = INT_RANGE[dtype] as readonly [bigint, bigint];
      if (dtype === 'I64' || dtype === 'U64') {
        const o = new DataView(buf);
        for (let i = 0; i < n; i++) {
          const v = data[begin + i];
          if (typeof v !== 'bigint' && !Number.isInteger(v)) bad(i);
          const big = BigInt(v);
          if (big < lo || big > hi) bad(i);
          if (dtype === 'I64') o.setBigInt64(8 * i, big, true);
          else o.setBigUint64(8 * i, big, true);
        }
        break;
      }
      const o = narrowIntView(dtype, buf);
      const nlo = Number(lo);
      const nhi = Number(hi);
      for (let i = 0; i < n; i++) {
        // Number(bigint) is exact within these ≤ 32-bit ranges, so one check covers both kinds.
        const v = Number(data[begin + i]);
        if (!Number.isInteger(v) || v < nlo || v > nhi) bad(i);
        o[i] = v;
      }
    }
  }
  return new Uint8Array(buf);
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

/** One tensor's header entry in a parsed file: what it is and where its bytes lie. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  /** Dimensions, row-major; [] for a scalar. */
  readonly shape: readonly number[];
  /** Product of shape (1 for a scalar). */
  readonly numel: number;
  /** [begin, end) in bytes relative to the start of the data section, as stored in the header. */
  readonly dataOffsets: readonly [number, number];
}

/**
 * A validated safetensors header ({@link parseHeader}): the layout of the file's parts and every
 * tensor's entry, enough to read any tensor without looking at the others.
 */
export interface SafetensorsHeader {
  /** N: byte length of the JSON header including padding. */
  readonly headerLength: number;
  /** Absolute offset of the data section: 8 + N. */
  readonly dataStart: number;
  /** Bytes after the header (file size − 8 − N); every tensor lies within them. */
  readonly dataLength: number;
  /** Tensors ordered by data offset (the order to read them sequentially). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** `__metadata__`, or undefined when the file has none. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

/** Options of {@link parseSafetensors}, {@link parseHeader} and {@link readHeaderLength}. */
export interface ParseOptions {
  /** Named in error messages. */
  path?: string;
  /** Reject header length fields above this (default MAX_HEADER_BYTES). */
  maxHeaderBytes?: number;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return quoteName(v);
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? `an array of ${v.length}` : 'an object';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate a shape and return its element count. */
function checkShape(shape: unknown, ctx: SafetensorsContext): number {
  if (!Array.isArray(shape)) fail('BAD_SHAPE', `shape is ${describe(shape)}, not an array`, ctx);
  let numel = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      fail(
        'BAD_SHAPE',
        `shape [${shape.map(describe).join(',')}] has ${describe(d)}, not a non-negative integer`,
        ctx,
      );
    }
    numel *= d;
    if (numel > Number.MAX_SAFE_INTEGER)
      fail('BAD_SHAPE', `shape [${shape.join(',')}] has too many elements`, ctx);
  }
  return numel;
}

function checkMetadata(meta: unknown, ctx: SafetensorsContext): Record<string, string> {
  if (!isPlainObject(meta)) fail('BAD_METADATA', `__metadata__ is ${describe(meta)}, not an object`, ctx);
  for (const key of Object.keys(meta)) {
    const v = meta[key];
    if (typeof v !== 'string') {
      fail(
        'BAD_METADATA',
        `__metadata__ value for ${quoteName(key)} is ${describe(v)}; only strings are allowed`,
        ctx,
      );
    }
  }
  return meta as Record<string, string>;
}

/**
 * Validate the 8-byte length field. `prefix` holds at least the first 8 bytes of the file, whose
 * total size is `fileSize`. Returns N, the JSON header's byte length.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, opts: ParseOptions = {}): number {
  const ctx = { path: opts.path };
  if (fileSize < 8 || prefix.length < 8) {
    fail(
      'TRUNCATED',
      `${Math.min(fileSize, prefix.length)} bytes is too short for the 8-byte header length`,
      ctx,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  const limit = opts.maxHeaderBytes ?? MAX_HEADER_BYTES;
  if (n > BigInt(limit)) {
    fail(
      'HEADER_TOO_LARGE',
      `header length field is ${n} bytes, above the ${limit}-byte limit (not a safetensors file?)`,
      ctx,
    );
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    fail('TRUNCATED', `header length field is ${len} bytes but only ${fileSize - 8} bytes follow it`, ctx);
  }
  return len;
}

/**
 * Parse and validate the JSON header (`json` = the N bytes after the length field) of a file of
 * `fileSize` bytes. Checks: UTF-8 JSON object; known dtypes; shapes of non-negative integers;
 * data_offsets [begin ≤ end] with end − begin = numel × itemsize, inside the data section, and no
 * two tensors overlapping. Gaps between tensors and trailing bytes are allowed.
 */
export function parseHeader(json: Uint8Array, fileSize: number, opts: ParseOptions = {}): SafetensorsHeader {
  const path = opts.path;
  const fileCtx: SafetensorsContext = { path };
  const headerLength = json.length;
  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;
  if (dataLength < 0)
    fail('TRUNCATED', `${fileSize} bytes cannot hold a ${headerLength}-byte header`, fileCtx);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    return fail('BAD_JSON', 'header is not valid UTF-8', fileCtx);
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    return fail(
      'BAD_JSON',
      `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`,
      fileCtx,
    );
  }
  if (!isPlainObject(root)) fail('BAD_HEADER', `header JSON is ${describe(root)}, not an object`, fileCtx);

  let metadata: Record<string, string> | undefined;
  const infos: TensorInfo[] = [];
  for (const name of Object.keys(root)) {
    const entry = root[name];
    if (name === '__metadata__') {
      metadata = checkMetadata(entry, fileCtx);
      continue;
    }
    const ctx: SafetensorsContext = { path, name };
    if (!isPlainObject(entry)) fail('BAD_HEADER', `header entry is ${describe(entry)}, not an object`, ctx);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isSafetensorsDtype(dtype)) fail('BAD_DTYPE', `unknown dtype ${describe(dtype)}`, ctx);
    const numel = checkShape(shape, ctx);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(
        'BAD_OFFSETS',
        `data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offsets) ?? 'nothing'}`,
        ctx,
      );
    }
    const [begin, end] = offsets as [number, number];
    const expected = numel * DTYPE_ITEMSIZE[dtype];
    if (end - begin !== expected) {
      fail(
        'BAD_OFFSETS',
        `data_offsets [${begin},${end}] span ${end - begin} bytes but ${dtype} [${(shape as number[]).join(',')}] needs ${expected}`,
        ctx,
      );
    }
    if (end > dataLength) {
      fail(
        'TRUNCATED',
        `data_offsets [${begin},${end}] run past the end of the ${dataLength}-byte data section`,
        ctx,
      );
    }
    infos.push({ name, dtype, shape: shape as number[], numel, dataOffsets: [begin, end] });
  }

  // Sorted by offset, a tensor overlaps another iff it starts before the previous one ends.
  // Empty tensors occupy no bytes and can sit anywhere.
  infos.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let prev: TensorInfo | undefined;
  for (const t of infos) {
    if (t.numel === 0) continue;
    if (prev !== undefined && t.dataOffsets[0] < prev.dataOffsets[1]) {
      fail(
        'BAD_OFFSETS',
        `tensors ${quoteName(prev.name)} [${prev.dataOffsets.join(',')}] and ${quoteName(t.name)} [${t.dataOffsets.join(',')}] overlap`,
        fileCtx,
      );
    }
    prev = t;
  }
  return {
    headerLength,
    dataStart,
    dataLength,
    tensors: new Map(infos.map((t) => [t.name, t])),
    metadata,
  };
}

/** Look a tensor up, with an error naming the file and a few available names. */
export function getTensorInfo(header: SafetensorsHeader, name: string, path?: string): TensorInfo {
  const info = header.tensors.get(name);
  if (info !== undefined) return info;
  const some = [...header.tensors.keys()].slice(0, 5).map(quoteName).join(', ');
  const more = header.tensors.size > 5 ? ', …' : '';
  return fail('NOT_FOUND', `no tensor ${quoteName(name)} (file has ${header.tensors.size}: ${some}${more})`, {
    path,
  });
}

/** Code-point order, which is the byte order of UTF-8 (what the reference writer sorts by). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates encode code points above U+FFFF, so they sort after every BMP code unit.
      if (x >= 0xd800 && x <= 0xdfff) x += 0x10000;
      if (y >= 0xd800 && y <= 0xdfff) y += 0x10000;
      return x - y;
    }
  }
  return a.length - b.length;
}

/**
 * A tensor to lay out in a header ({@link serializeHeader}): its name (not `__metadata__`, and
 * unique), dtype and shape; the data offsets are computed.
 */
export interface HeaderEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

/**
 * A serialised header ({@link serializeHeader}): the bytes that start the file and where each
 * tensor's data goes after them.
 */
export interface SafetensorsLayout {
  /** Everything before the data section: u64 LE length, JSON, space padding to a multiple of 8. */
  readonly headerBytes: Uint8Array<ArrayBuffer>;
  /** The entries in file order with their offsets. */
  readonly tensors: readonly TensorInfo[];
  /** Size of the data section; the file is headerBytes.length + dataBytes long. */
  readonly dataBytes: number;
}

/**
 * Serialise a header laying out `entries` contiguously in the given order. The JSON is compact,
 * `__metadata__` (keys sorted) comes first, then tensors in data order — the reference layout.
 */
export function serializeHeader(
  entries: readonly HeaderEntry[],
  metadata?: Readonly<Record<string, string>>,
  ctx: SafetensorsContext = {},
): SafetensorsLayout {
  const parts: string[] = [];
  if (metadata !== undefined) {
    checkMetadata(metadata, ctx);
    const keys = Object.keys(metadata).sort(compareCodePoints);
    parts.push(
      `"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`,
    );
  }
  const seen = new Set<string>();
  const tensors: TensorInfo[] = [];
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    const tctx = { ...ctx, name };
    if (typeof name !== 'string' || name === '__metadata__')
      fail('BAD_HEADER', 'reserved or non-string tensor name', tctx);
    if (seen.has(name)) fail('BAD_HEADER', 'duplicate tensor name', tctx);
    seen.add(name);
    if (!isSafetensorsDtype(dtype)) fail('BAD_DTYPE', `unknown dtype ${describe(dtype)}`, tctx);
    const numel = checkShape(shape, tctx);
    const end = offset + numel * DTYPE_ITEMSIZE[dtype];
    if (end > Number.MAX_SAFE_INTEGER) fail('BAD_SHAPE', 'data section would exceed 2^53 bytes', tctx);
    tensors.push({ name, dtype, shape: [...shape], numel, dataOffsets: [offset, end] });
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    fail(
      'HEADER_TOO_LARGE',
      `header would be ${padded} bytes, above the ${MAX_HEADER_BYTES}-byte limit readers enforce`,
      ctx,
    );
  }
  const headerBytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true);
  headerBytes.set(json, 8);
  return { headerBytes, tensors, dataBytes: offset };
}

/**
 * A validated write ({@link planSafetensorsWrite}): the layout plus the input for each tensor in file
 * order. {@link serializeSafetensors} fills it in memory; the Node writer streams it to disk.
 */
export interface SafetensorsWritePlan extends SafetensorsLayout {
  /** Input for each entry of `tensors`, same index. */
  readonly inputs: readonly TensorInput[];
}

/**
 * Validate tensors for writing and fix the file layout. Order: dtype alignment descending
 * (8-, 4-, 2-, then 1-byte types, in SAFETENSORS_DTYPES order reversed), then name in code-point
 * order — the reference writer's order, which keeps every tensor naturally aligned and makes the
 * output independent of the caller's key order.
 */
export function planSafetensorsWrite(
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
  ctx: SafetensorsContext = {},
): SafetensorsWritePlan {
  const list: [string, TensorInput][] = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of list) {
    const tctx = { ...ctx, name };
    if (!isPlainObject(t)) fail('BAD_DATA', 'tensor is not a {dtype, shape, data} object', tctx);
    if (!isSafetensorsDtype(t.dtype)) fail('BAD_DTYPE', `unknown dtype ${describe(t.dtype)}`, tctx);
    const numel = checkShape(t.shape, tctx);
    if (arrayKind(t.data) === undefined) fail('BAD_DATA', 'data is not a supported typed array', tctx);
    if (t.data.length !== numel) {
      fail(
        'BAD_DATA',
        `data has ${t.data.length} elements but shape [${t.shape.join(',')}] needs ${numel}`,
        tctx,
      );
    }
  }
  const rank = (d: SafetensorsDtype) => SAFETENSORS_DTYPES.indexOf(d);
  list.sort(([an, a], [bn, b]) => rank(b.dtype) - rank(a.dtype) || compareCodePoints(an, bn));
  const layout = serializeHeader(
    list.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
    ctx,
  );
  return { ...layout, inputs: list.map(([, t]) => t) };
}

/** Whole file in memory (see planSafetensorsWrite for the tensor order and TensorInput for conversions). */
export function serializeSafetensors(
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  const plan = planSafetensorsWrite(tensors, metadata);
  const start = plan.headerBytes.length;
  const out = new Uint8Array(start + plan.dataBytes);
  out.set(plan.headerBytes);
  plan.tensors.forEach((info, i) => {
    const input = plan.inputs[i];
    out.set(
      encodeTensorData(input.dtype, input.data, 0, info.numel, { name: info.name }),
      start + info.dataOffsets[0],
    );
  });
  return out;
}

/** A parsed in-memory file (e.g. fetched in a browser). */
export interface ParsedSafetensors {
  readonly header: SafetensorsHeader;
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Tensor names in data order. */
  keys(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Zero-copy view of a tensor's stored bytes within the parsed buffer. */
  bytes(name: string): Uint8Array;
  /** A converted copy of a tensor (default 'f32'); never shares memory with the buffer. */
  read<A extends ReadAs = 'f32'>(name: string, opts?: { as?: A }): ReadResult[A];
}

/** Parse a complete file held in memory. The buffer is referenced, not copied. */
export function parseSafetensors(bytes: Uint8Array, opts: ParseOptions = {}): ParsedSafetensors {
  const n = readHeaderLength(bytes, bytes.length, opts);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.length, opts);
  const path = opts.path;
  const tensorBytes = (name: string) => {
    const [b, e] = getTensorInfo(header, name, path).dataOffsets;
    return bytes.subarray(header.dataStart + b, header.dataStart + e);
  };
  return {
    header,
    metadata: header.metadata,
    keys: () => [...header.tensors.keys()],
    has: (name) => header.tensors.has(name),
    info: (name) => getTensorInfo(header, name, path),
    bytes: tensorBytes,
    read<A extends ReadAs = 'f32'>(name: string, readOpts: { as?: A } = {}): ReadResult[A] {
      const as = (readOpts.as ?? 'f32') as A;
      const src = tensorBytes(name);
      const out = decodeTensor(getTensorInfo(header, name, path).dtype, src, as, { path, name });
      return (out.buffer === src.buffer ? out.slice() : out) as ReadResult[A];
    },
  };
}
