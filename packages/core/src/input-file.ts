/**
 * Reading a user's input file whole with a bound on its size: a path to /dev/zero, a FIFO or a small
 * gzip that expands to gigabytes must fail with a message naming the file and the limit, not fill the
 * heap and end in a V8 stack trace.
 */
import { open } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { ShareloraError } from './errors.js';

/**
 * Default bound on a data file's bytes (after decompression): 256 MiB. Text files are decoded into
 * one JavaScript string, which cannot exceed about 512 MiB, and are parsed and tokenized in memory.
 */
export const DEFAULT_MAX_INPUT_BYTES = 256 * 2 ** 20;

/** Why an input file was refused (the code of InputFileError). */
export type InputFileErrorCode =
  /** Missing, unreadable, a directory, a device or a FIFO. */
  | 'NOT_A_FILE'
  /** Bigger than the bound, on disk or once decompressed. */
  | 'TOO_LARGE'
  /** A .gz that is not valid gzip. */
  | 'BAD_GZIP';

/** An input file that cannot be read within its bound; the message starts with the path. */
export class InputFileError extends ShareloraError {
  declare readonly code: InputFileErrorCode;

  constructor(
    code: InputFileErrorCode,
    readonly path: string,
    /** The message without the path. */
    readonly detail: string,
  ) {
    super(code, `${path}: ${detail}`);
  }
}

/** Bounds for reading an input file (see readInputFile). */
export interface ReadInputOptions {
  /** Most bytes the file may hold, after decompression (default DEFAULT_MAX_INPUT_BYTES). */
  maxBytes?: number;
  /** Gunzip the contents (default: when the path ends in .gz). */
  gunzip?: boolean;
}

const size = (n: number) =>
  n < 2 ** 20 ? `${n.toLocaleString('en-US')} bytes` : `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Reads a regular file whole, gunzipping it if asked, refusing anything over `maxBytes` before reading it. */
export async function readInputFile(path: string, opts: ReadInputOptions = {}): Promise<Buffer> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  const gunzip = opts.gunzip ?? path.endsWith('.gz');
  let bytes: Buffer;
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputFileError(
      'NOT_A_FILE',
      path,
      code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}`,
    );
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new InputFileError(
        'NOT_A_FILE',
        path,
        `is ${st.isDirectory() ? 'a directory' : 'not a regular file (a device, FIFO or socket)'}; give a data file`,
      );
    }
    if (st.size > maxBytes) {
      throw new InputFileError(
        'TOO_LARGE',
        path,
        `is ${size(st.size)}, more than the ${size(maxBytes)} limit on input files`,
      );
    }
    bytes = await fh.readFile();
  } finally {
    await fh.close();
  }
  if (!gunzip) return bytes;
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new InputFileError(
        'TOO_LARGE',
        path,
        `decompresses to more than the ${size(maxBytes)} limit on input files`,
      );
    throw new InputFileError('BAD_GZIP', path, `not a valid gzip file (${(e as Error).message})`);
  }
}
