import { extname } from 'node:path';
import { InputFileError, readInputFile } from '@sharelora/core/node';
import { DataError } from '../errors.js';
import type { DataRecord, Dataset, FileFormat } from '../records.js';
import { parseDelimited } from './delimited.js';
import { parseJson, parseJsonl } from './json.js';
import { type ParquetReadOptions, parseParquet } from './parquet.js';

/**
 * Options of {@link readDataset} and {@link parseDataset}: the format when the extension does not
 * tell, CSV/TSV quoting and header, the JSON key of the records, and size limits.
 */
export interface ReadOptions extends ParquetReadOptions {
  /** Default: from the extension (.jsonl/.ndjson, .json, .csv, .tsv/.tab, .parquet/.pq). */
  format?: FileFormat;
  /**
   * CSV/TSV quote character, or null for none. Default '"' for CSV and null for TSV, since the GLUE
   * TSVs are not quote-aware (their sentences contain '"'); a TSV written by pandas/HF (e.g. the RTE
   * export in shared/data) needs '"'.
   */
  quote?: string | null;
  /** CSV/TSV: the column names of a file without a header row (default: the first row is the header). */
  columns?: string[];
  /** JSON: the key holding the records when the file is an object (default "data"). */
  field?: string;
  /**
   * Most bytes of text (UTF-8) one record may hold, over all its fields (default
   * DEFAULT_MAX_RECORD_BYTES). Checked before anything is tokenized, whose cost grows with the text
   * even when the example is then truncated.
   */
  maxRecordBytes?: number;
  /** readDataset: most bytes the file may hold (default 256 MiB, DEFAULT_MAX_INPUT_BYTES of @sharelora/core/node). */
  maxBytes?: number;
}

/**
 * Default bound on one record's text: 1 MiB, some 250,000 tokens, beyond the context of the models
 * trained here. A longer record is an error at its line rather than minutes of tokenizing.
 */
export const DEFAULT_MAX_RECORD_BYTES = 2 ** 20;

/** UTF-8 bytes of a record's text fields; exact only near the bound (a UTF-16 unit is 1 to 3 bytes). */
function textBytes(record: DataRecord, max: number): number {
  let n = 0;
  for (const v of Object.values(record.values)) {
    if (typeof v !== 'string') continue;
    n += v.length * 3 <= max || v.length > max ? v.length : new TextEncoder().encode(v).length;
  }
  return n;
}

const EXTENSIONS: Record<string, FileFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.json': 'json',
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.parquet': 'parquet',
  '.pq': 'parquet',
};

/**
 * The data format a path's extension names (case-insensitive). Throws a {@link DataError}
 * (UNSUPPORTED) for any other extension.
 */
export function fileFormatOf(path: string): FileFormat {
  const format = EXTENSIONS[extname(path).toLowerCase()];
  if (format === undefined) {
    throw new DataError(
      'UNSUPPORTED',
      `${path}: cannot tell the data format from the extension; name it ${Object.keys(EXTENSIONS).join(', ')} ` +
        'or pass format',
      path,
    );
  }
  return format;
}

/**
 * Parses file contents already in memory (works in a browser). `file` names the source in records
 * and errors. An empty file, or one with no records, is an EMPTY error.
 */
export async function parseDataset(
  bytes: Uint8Array,
  file: string,
  opts: ReadOptions = {},
): Promise<Dataset> {
  const format = opts.format ?? fileFormatOf(file);
  if (bytes.length === 0) throw new DataError('EMPTY', `${file}: the file is empty`, file);
  let parsed: Pick<Dataset, 'columns' | 'records'>;
  if (format === 'parquet') {
    parsed = await parseParquet(bytes, file, opts);
  } else {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new DataError('PARSE', `${file}: not valid UTF-8 text`, file);
    }
    if (format === 'csv' || format === 'tsv') {
      parsed = parseDelimited(text, file, {
        delimiter: format === 'csv' ? ',' : '\t',
        quote: opts.quote !== undefined ? opts.quote : format === 'csv' ? '"' : null,
        header: opts.columns ?? true,
      });
    } else {
      const records = format === 'jsonl' ? parseJsonl(text, file) : parseJson(text, file, opts);
      const columns = new Set<string>();
      for (const r of records) for (const k of Object.keys(r.values)) columns.add(k);
      parsed = { columns: [...columns], records };
    }
  }
  if (parsed.records.length === 0) throw new DataError('EMPTY', `${file}: the file has no records`, file);
  const maxRecord = opts.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  for (const r of parsed.records) {
    const n = textBytes(r, maxRecord);
    if (n > maxRecord)
      throw DataError.at(
        'TOO_LARGE',
        r.source,
        `the record holds about ${n.toLocaleString('en-US')} bytes of text, more than the ${maxRecord.toLocaleString('en-US')}-byte limit per record`,
      );
  }
  return { file, format, ...parsed };
}

/**
 * Reads a whole data file: a regular file of at most `maxBytes` (a device, a FIFO or a bigger file is
 * an error before anything is read). Nothing is written, so an error leaves no partial output anywhere.
 */
export async function readDataset(path: string, opts: ReadOptions = {}): Promise<Dataset> {
  const format = opts.format ?? fileFormatOf(path);
  let bytes: Uint8Array;
  try {
    bytes = await readInputFile(path, { maxBytes: opts.maxBytes, gunzip: false });
  } catch (e) {
    if (e instanceof InputFileError)
      throw new DataError(e.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'IO', e.message, path);
    throw e;
  }
  return parseDataset(bytes, path, { ...opts, format });
}
