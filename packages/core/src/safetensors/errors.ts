import { ShareloraError } from '../errors.js';

/** Stable machine-readable reasons a safetensors file or tensor was rejected. */
export type SafetensorsErrorCode =
  /** The file/buffer ends before the header or a tensor's data does. */
  | 'TRUNCATED'
  /** The u64 header length exceeds the configured limit (100 MB by default). */
  | 'HEADER_TOO_LARGE'
  /** The header is not valid UTF-8 JSON. */
  | 'BAD_JSON'
  /** The JSON is valid but not a safetensors header (not an object, entry not an object, bad name). */
  | 'BAD_HEADER'
  | 'BAD_DTYPE'
  | 'BAD_SHAPE'
  /** data_offsets malformed, inconsistent with dtype × shape, or overlapping another tensor. */
  | 'BAD_OFFSETS'
  /** `__metadata__` is not an object of string values. */
  | 'BAD_METADATA'
  /** Tensor data given for writing is not a supported typed array or does not match its shape. */
  | 'BAD_DATA'
  /** A value cannot be represented in the requested type (e.g. I64 → i32, 1.5 → I32, 2 → BOOL). */
  | 'OUT_OF_RANGE'
  /** A conversion that is not defined (e.g. reading an F32 tensor as i32). */
  | 'UNSUPPORTED'
  /** No tensor of that name. */
  | 'NOT_FOUND'
  /** The operating system refused an open/read/write/rename. */
  | 'IO';

const MAX_DETAIL_CHARS = 400;

/**
 * Every failure of the safetensors reader/writer. The message is a single line of the form
 * `safetensors <file>: <what is wrong> [CODE]` so that it reads well in CLI output and logs.
 */
export class SafetensorsError extends ShareloraError {
  declare readonly code: SafetensorsErrorCode;
  /** File the error concerns; undefined for in-memory buffers. */
  readonly path: string | undefined;
  /** The description without the file prefix and code suffix. */
  readonly detail: string;

  constructor(code: SafetensorsErrorCode, detail: string, options: { path?: string; cause?: unknown } = {}) {
    const oneLine = detail.replace(/[\r\n]+/g, ' ');
    const clipped = oneLine.length > MAX_DETAIL_CHARS ? `${oneLine.slice(0, MAX_DETAIL_CHARS)}…` : oneLine;
    const where = options.path === undefined ? '(in-memory buffer)' : options.path.replace(/[\r\n]+/g, ' ');
    super(code, `safetensors ${where}: ${clipped} [${code}]`);
    this.path = options.path;
    this.detail = clipped;
    if (options.cause !== undefined) this.cause = options.cause;
  }
}
