import { type FileHandle, open } from 'node:fs/promises';
import { writeAtomically } from '../atomic-file.js';
import { SafetensorsError } from './errors.js';
import {
  DTYPE_ITEMSIZE,
  decodeTensor,
  encodeTensorData,
  getTensorInfo,
  parseHeader,
  planSafetensorsWrite,
  type ReadAs,
  type ReadResult,
  readHeaderLength,
  type SafetensorsHeader,
  type TensorInfo,
  type TensorMap,
} from './format.js';

/** fs read/write lengths must stay below 2 GiB per call. */
const MAX_IO_BYTES = 1 << 30;
/** Bytes converted per step when writing, bounding the scratch memory of dtype conversions. */
const WRITE_CHUNK_BYTES = 16 << 20;

function ioError(what: string, path: string, cause: unknown): SafetensorsError {
  if (cause instanceof SafetensorsError) return cause;
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new SafetensorsError('IO', `${what} failed: ${msg}`, { path, cause });
}

async function readExact(fh: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const len = Math.min(into.length - done, MAX_IO_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(into, done, len, position + done));
    } catch (e) {
      throw ioError(`read of ${len} bytes at offset ${position + done}`, path, e);
    }
    if (bytesRead === 0) {
      throw new SafetensorsError(
        'TRUNCATED',
        `file ended at byte ${position + done} (was it modified after opening?)`,
        {
          path,
        },
      );
    }
    done += bytesRead;
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const len = Math.min(bytes.length - done, MAX_IO_BYTES);
    const { bytesWritten } = await fh.write(bytes, done, len, position + done);
    done += bytesWritten;
  }
}

export interface TensorChunk<T> {
  /** Index of the first row (along dimension 0) in this chunk. */
  rowStart: number;
  rowCount: number;
  data: T;
}

/**
 * Random access to the tensors of one safetensors file. Only the header is read by open();
 * read() fetches exactly one tensor's bytes. Call close() when done.
 */
export class SafetensorsReader {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly fileSize: number,
    readonly header: SafetensorsHeader,
  ) {}

  static async open(path: string, opts: { maxHeaderBytes?: number } = {}): Promise<SafetensorsReader> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw ioError('open', path, e);
    }
    try {
      const fileSize = (await fh.stat()).size;
      const prefix = new Uint8Array(Math.min(8, fileSize));
      await readExact(fh, prefix, 0, path);
      const n = readHeaderLength(prefix, fileSize, { path, ...opts });
      const json = new Uint8Array(n);
      await readExact(fh, json, 8, path);
      return new SafetensorsReader(path, fh, fileSize, parseHeader(json, fileSize, { path, ...opts }));
    } catch (e) {
      await fh.close().catch(() => {});
      throw ioError('reading the header', path, e);
    }
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.header.metadata;
  }

  /** Tensor names in data order. */
  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** dtype, shape and offsets of a tensor; NOT_FOUND if absent. */
  info(name: string): TensorInfo {
    return getTensorInfo(this.header, name, this.path);
  }

  private async readRange(info: TensorInfo, begin: number, end: number): Promise<Uint8Array> {
    if (this.closed) throw new SafetensorsError('IO', 'reader is closed', { path: this.path });
    const bytes = new Uint8Array(end - begin);
    await readExact(this.fh, bytes, this.header.dataStart + info.dataOffsets[0] + begin, this.path);
    return bytes;
  }

  /** Read one tensor, converted to `as` (default 'f32'); see decodeTensor for the conversions. */
  async read<A extends ReadAs = 'f32'>(name: string, opts: { as?: A } = {}): Promise<ReadResult[A]> {
    const info = this.info(name);
    const bytes = await this.readRange(info, 0, info.dataOffsets[1] - info.dataOffsets[0]);
    return decodeTensor(info.dtype, bytes, (opts.as ?? 'f32') as A, { path: this.path, name });
  }

  /**
   * Read a tensor in consecutive slices of whole rows (dimension 0), each at most `maxBytes` bytes
   * as stored on disk — except that a single row larger than `maxBytes` still comes as one chunk.
   * A scalar is one chunk with rowCount 1; an empty tensor yields nothing.
   */
  async *readChunks<A extends ReadAs = 'f32'>(
    name: string,
    maxBytes: number,
    opts: { as?: A } = {},
  ): AsyncGenerator<TensorChunk<ReadResult[A]>> {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new RangeError(`readChunks: maxBytes must be a positive integer, got ${maxBytes}`);
    }
    const info = this.info(name);
    if (info.numel === 0) return;
    const rows = info.shape.length === 0 ? 1 : info.shape[0];
    const rowBytes = (info.numel / rows) * DTYPE_ITEMSIZE[info.dtype];
    const rowsPerChunk = Math.max(1, Math.floor(maxBytes / rowBytes));
    const as = (opts.as ?? 'f32') as A;
    for (let rowStart = 0; rowStart < rows; rowStart += rowsPerChunk) {
      const rowCount = Math.min(rowsPerChunk, rows - rowStart);
      const bytes = await this.readRange(info, rowStart * rowBytes, (rowStart + rowCount) * rowBytes);
      yield { rowStart, rowCount, data: decodeTensor(info.dtype, bytes, as, { path: this.path, name }) };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

/** Make the rename itself durable; directories cannot be opened on some platforms, so best effort. */
/**
 * Write a safetensors file atomically: the data goes to a temporary file in the same directory,
 * is fsynced, and is renamed over `path`, so readers see either the old file or the complete new
 * one; on failure the temporary file is removed and any existing `path` is untouched.
 * Tensor order and dtype conversions: see planSafetensorsWrite and TensorInput (format.ts).
 * Inputs are validated before anything is written; conversion is streamed in bounded chunks.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const plan = planSafetensorsWrite(tensors, metadata, { path });
  await writeAtomically(path, async (fh) => {
    await writeAll(fh, plan.headerBytes, 0);
    const dataStart = plan.headerBytes.length;
    for (const [i, info] of plan.tensors.entries()) {
      const { dtype, data } = plan.inputs[i];
      const step = Math.max(1, Math.floor(WRITE_CHUNK_BYTES / DTYPE_ITEMSIZE[dtype]));
      for (let begin = 0; begin < info.numel; begin += step) {
        const end = Math.min(begin + step, info.numel);
        const bytes = encodeTensorData(dtype, data, begin, end, { path, name: info.name });
        await writeAll(fh, bytes, dataStart + info.dataOffsets[0] + begin * DTYPE_ITEMSIZE[dtype]);
      }
    }
  }).catch((e) => {
    throw ioError('writing', path, e);
  });
}
