/**
 * Parquet through hyparquet (pure JS, browser and Node). Snappy and uncompressed files read out of the
 * box; other codecs need `compressors`, e.g. from the hyparquet-compressors package.
 */
import { type Compressors, parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { DataError } from '../errors.js';
import type { DataRecord } from '../records.js';

/** Options of {@link parseParquet}, and of {@link readDataset} for Parquet files. */
export interface ParquetReadOptions {
  /** Decompressors for codecs beyond snappy (gzip, zstd, brotli, ...), e.g. hyparquet-compressors. */
  compressors?: Compressors;
}

/**
 * Parses a Parquet file held in memory (works in a browser): the schema's column names, and one
 * record per row with values as hyparquet decodes them. Throws a {@link DataError} (PARSE) on a
 * file it cannot read, with a hint when the codec needs `compressors`.
 */
export async function parseParquet(
  bytes: Uint8Array,
  file: string,
  opts: ParquetReadOptions = {},
): Promise<{ columns: string[]; records: DataRecord[] }> {
  // hyparquet wants an ArrayBuffer of exactly the file.
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    const metadata = parquetMetadata(buffer);
    const columns = parquetSchema(metadata).children.map((c) => c.element.name);
    const rows = await parquetReadObjects({
      file: buffer,
      metadata,
      ...(opts.compressors ? { compressors: opts.compressors } : {}),
    });
    const records = rows.map((values, i) => ({ values, source: { file, line: null, row: i + 1 } }));
    return { columns, records };
  } catch (e) {
    const msg = (e as Error).message;
    const hint = /compress|codec/i.test(msg)
      ? ' (pass `compressors` from hyparquet-compressors for this codec)'
      : '';
    throw new DataError('PARSE', `${file}: not a readable Parquet file: ${msg}${hint}`, file);
  }
}
