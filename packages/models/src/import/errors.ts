import { ShareloraError } from '@sharelora/core';

/** Stable reasons an import was refused. */
export type ImportErrorCode =
  /** The operating system refused an open/read/write. */
  | 'IO'
  /** The file is shorter than its header says, or a read ran past its end. */
  | 'TRUNCATED'
  /** The file is longer than its header says (a different format or a corrupt header). */
  | 'SIZE_MISMATCH'
  /** Not the expected file type at all. */
  | 'BAD_MAGIC'
  /** The header or metadata is malformed or inconsistent. */
  | 'BAD_HEADER'
  /** Well-formed, but uses something we do not convert (quantisation, architecture, version). */
  | 'UNSUPPORTED';

/** Which reader raised the error; it prefixes the message so the user knows what was parsed. */
export type ImportSource = 'llama2c' | 'gguf' | 'tokenizer' | 'import';

/**
 * Every failure of the importers: one line, `<source> <file>: <what is wrong> [CODE]`, so the CLI can
 * print it as is and programs can branch on `code`.
 */
export class ImportError extends ShareloraError {
  declare readonly code: ImportErrorCode;
  readonly path: string;
  readonly detail: string;

  constructor(
    source: ImportSource,
    path: string,
    code: ImportErrorCode,
    detail: string,
    options: { cause?: unknown } = {},
  ) {
    const oneLine = detail.replace(/[\r\n]+/g, ' ');
    super(code, `${source} ${path}: ${oneLine} [${code}]`);
    this.path = path;
    this.detail = oneLine;
    if (options.cause !== undefined) this.cause = options.cause;
  }
}
