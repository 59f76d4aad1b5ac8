import type { RecordSource } from './errors.js';

/** One row / object of a data file, with where it came from. Values are as the file holds them. */
export interface DataRecord {
  values: Readonly<Record<string, unknown>>;
  source: RecordSource;
}

/**
 * The data file formats {@link readDataset} reads; {@link fileFormatOf} tells them from a file's
 * extension.
 */
export type FileFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet';

/** A data file read whole. Reading writes nothing, so a bad file leaves no partial output behind. */
export interface Dataset {
  file: string;
  format: FileFormat;
  /** Column names: the header (CSV/TSV), the schema (Parquet), or keys in order of first appearance (JSON). */
  columns: string[];
  records: DataRecord[];
}

/** Type name for error messages: "null", "array", "object", "number", ... */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
