/** File readers shared by the dataset loaders; every error names the file and the line at fault. */
import { InputFileError, readInputFile } from '@sharelora/core/node';
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

/**
 * Parses RFC 4180 CSV (`"` quoting with `""` escapes, quoted fields may span lines, LF or CRLF
 * records), comma separated or with another one-character `delimiter` (a tab: TSVs written by
 * pandas, such as Hugging Face's GLUE RTE export). Fields are returned verbatim: no trimming, no
 * number conversion. Blank lines are skipped, as Python's csv module does.
 */
export function parseCsv(text: string, file: string, delimiter = ','): Located<string[]>[] {
  if (delimiter.length !== 1 || '"\r\n'.includes(delimiter))
    throw new Error(`parseCsv: bad delimiter ${JSON.stringify(delimiter)}`);
  const records: Located<string[]>[] = [];
  const d = delimiter.replace(/[\\\]^-]/g, '\\$&');
  const plain = new RegExp(`(?:[^${d}\\r\\n"]|\\r(?!\\n))*`, 'y');
  let fields: string[] = [];
  let line = 1;
  let recordLine = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    let field: string;
    const quoted = text[i] === '"';
    if (quoted) {
      const openLine = line;
      field = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new EvalDataError(file, openLine, 'unterminated quoted field');
        const part = text.slice(i, q);
        for (let k = part.indexOf('\n'); k >= 0; k = part.indexOf('\n', k + 1)) line++;
        field += part;
        if (text[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      plain.lastIndex = i;
      field = (plain.exec(text) as RegExpExecArray)[0];
      i += field.length;
      if (text[i] === '"') throw new EvalDataError(file, line, 'stray quote inside an unquoted field');
    }
    fields.push(field);
    const c = text[i];
    if (c === delimiter) {
      i++;
      if (i === n) fields.push('');
      else continue;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      i += c === '\r' ? 2 : 1;
      line++;
    } else if (i < n) {
      throw new EvalDataError(file, line, `unexpected character ${JSON.stringify(c)} after a field`);
    }
    if (fields.length > 1 || fields[0] !== '' || quoted) records.push({ value: fields, line: recordLine });
    fields = [];
    recordLine = line;
  }
  return records;
}

/**
 * Splits a tab-separated file into rows without any quote handling (GLUE's TSVs contain bare `"`,
 * which is why their readers use QUOTE_NONE). Blank lines are skipped.
 */
export function parseTsv(text: string, file: string): Located<string[]>[] {
  const rows: Located<string[]>[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (raw === '') continue;
    rows.push({ value: raw.split('\t'), line: i + 1 });
  }
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
