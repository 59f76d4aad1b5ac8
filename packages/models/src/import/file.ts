import { type FileHandle, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ImportError, type ImportSource } from './errors.js';

/** fs reads must stay below 2 GiB per call. */
const MAX_READ_BYTES = 1 << 30;

/** A read-only file accessed by positioned reads, so checkpoints are never loaded whole. */
export class BinaryFile {
  private constructor(
    readonly source: ImportSource,
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(source: ImportSource, path: string): Promise<BinaryFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new ImportError(source, path, 'IO', `cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw new ImportError(source, path, 'IO', 'not a regular file');
      return new BinaryFile(source, path, fh, stat.size);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  fail(code: ConstructorParameters<typeof ImportError>[2], detail: string): never {
    throw new ImportError(this.source, this.path, code, detail);
  }

  /** Exactly `length` bytes at `offset`; TRUNCATED if the file ends first. */
  async readAt(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    if (offset + length > this.size) {
      this.fail(
        'TRUNCATED',
        `needs bytes ${offset}..${offset + length} but the file has only ${this.size} bytes`,
      );
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const len = Math.min(length - done, MAX_READ_BYTES);
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(out, done, len, offset + done));
      } catch (e) {
        throw new ImportError(this.source, this.path, 'IO', `read failed: ${(e as Error).message}`, {
          cause: e,
        });
      }
      if (bytesRead === 0) this.fail('TRUNCATED', `file ended at byte ${offset + done} while reading`);
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Run `fn` on an opened file and always close it. */
export async function withFile<T>(
  source: ImportSource,
  path: string,
  fn: (file: BinaryFile) => Promise<T>,
): Promise<T> {
  const file = await BinaryFile.open(source, path);
  try {
    return await fn(file);
  } finally {
    await file.close().catch(() => {});
  }
}

/** Little-endian f32 values of a byte range (copied when the bytes are not 4-aligned). */
export function f32View(bytes: Uint8Array): Float32Array<ArrayBuffer> {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(b.buffer as ArrayBuffer, b.byteOffset, b.length / 4);
}

/** Write a text file atomically (temporary file + rename) so a failed import never leaves half a file. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new ImportError('import', path, 'IO', `write failed: ${(e as Error).message}`, { cause: e });
  }
}

export async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new ImportError('import', dir, 'IO', `cannot create the output folder: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

export async function listDir(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}
