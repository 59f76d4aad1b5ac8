import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { DataError } from '../errors.js';
import type { Dataset, FileFormat } from '../records.js';
import { parseDelimited } from './delimited.js';
import { parseJson, parseJsonl } from './json.js';
import { type ParquetReadOptions, parseParquet } from './parquet.js';

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
  return { file, format, ...parsed };
}

/** Reads a whole data file. Nothing is written, so an error leaves no partial output anywhere. */
export async function readDataset(path: string, opts: ReadOptions = {}): Promise<Dataset> {
  const format = opts.format ?? fileFormatOf(path);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new DataError('IO', `${path}: cannot read: ${(e as Error).message}`, path);
  }
  return parseDataset(bytes, path, { ...opts, format });
}
