/** File readers shared by the dataset loaders; every error names the file and the line at fault. */
import { InputFileError, readInputFile } from '@sharelora/core/node';
import { DelimitedParseError, parseRows } from '@sharelora/data';
import { EvalDataError } from './errors.js';

/**
 * Reads a UTF-8 text file (gunzipping `*.gz`), dropping a leading byte-order mark. A device, a FIFO,
 * or a file over `maxBytes` (default 256 MiB, after decompression) is an EvalDataError naming it.
 */
export async function readText(file: string, maxBytes?: number): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readInputFile(file, { maxBytes });
  } catch (e) {
    if (e instanceof InputFileError) throw new EvalDataError(file, null, e.detail);
    throw e;
  }
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export interface Located<T> {
  value: T;
  /** 1-based line where the record starts. */
  line: number;
}

/** Parses JSON Lines: one JSON object per non-blank line. */
export function parseJsonl(text: string, file: string): Located<Record<string, unknown>>[] {
  const out: Located<Record<string, unknown>>[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new EvalDataError(file, i + 1, `invalid JSON (${(e as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new EvalDataError(file, i + 1, 'expected a JSON object on each line');
    }
    out.push({ value: value as Record<string, unknown>, line: i + 1 });
  }
  return out;
}

/** Rows through @sharelora/data's parser (the one training reads the same files with). */
function delimited(text: string, file: string, delimiter: string, quote: string | null): Located<string[]>[] {
  try {
    return parseRows(text, file, { delimiter, quote }).map((r) => ({ value: r.fields, line: r.line }));
  } catch (e) {
    if (e instanceof DelimitedParseError) throw new EvalDataError(file, e.line, e.detail);
    throw e;
  }
}

/**
 * Parses RFC 4180 CSV (`"` quoting with `""` escapes, quoted fields may span lines, LF or CRLF
 * records), comma separated or with another one-character `delimiter` (a tab: TSVs written by
 * pandas, such as Hugging Face's GLUE RTE export). Fields are returned verbatim: no trimming, no
 * number conversion. Blank lines are skipped, as Python's csv module does; a stray quote is an error.
 */
export function parseCsv(text: string, file: string, delimiter = ','): Located<string[]>[] {
  return delimited(text, file, delimiter, '"');
}

/**
 * Splits a tab-separated file into rows without any quote handling (GLUE's TSVs contain bare `"`,
 * which is why their readers use QUOTE_NONE). Blank lines are skipped.
 */
export function parseTsv(text: string, file: string): Located<string[]>[] {
  const rows = delimited(text, file, '\t', null);
  if (rows.length === 0) throw new EvalDataError(file, null, 'file is empty');
  return rows;
}

/** Reads a required string field of a JSONL record, with an error naming file, line and field. */
export function stringField(rec: Located<Record<string, unknown>>, key: string, file: string): string {
  const v = rec.value[key];
  if (typeof v !== 'string') {
    throw new EvalDataError(file, rec.line, `field "${key}" must be a string, got ${describe(v)}`);
  }
  return v;
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}
