/**
 * CSV and TSV records, from @sharelora/data's rows (the parser evaluation reads the same files
 * with). With a quote character, fields follow RFC 4180 (quoted fields may hold delimiters,
 * newlines and doubled quotes). With `quote: null` every character is literal, as Python's
 * csv.QUOTE_NONE reads the GLUE TSVs: their sentences contain '"' that must not open a field.
 */
import { DelimitedParseError, type DelimitedRow, parseRows } from '@sharelora/data';
import { DataError } from '../errors.js';
import type { DataRecord } from '../records.js';

/**
 * Options of {@link parseDelimited}: the delimiter, quoting and header. {@link readDataset} sets
 * them from the file's format and {@link ReadOptions}.
 */
export interface DelimitedOptions {
  /** ',' for CSV, '\t' for TSV. */
  delimiter: string;
  /** The quote character, or null for none (QUOTE_NONE). */
  quote: string | null;
  /** true: the first row names the columns; or the column names of a headerless file. */
  header: true | string[];
}

/**
 * Parses CSV or TSV text into records of string values, one per row (blank lines skipped, a UTF-8
 * BOM ignored); sources carry the 1-based line each record starts on. Throws a {@link DataError}
 * (PARSE) on a row whose field count differs from the header's, a repeated column name, or a
 * quoted field that is never closed or has text after its closing quote.
 */
export function parseDelimited(
  text: string,
  file: string,
  opts: DelimitedOptions,
): { columns: string[]; records: DataRecord[] } {
  let rows: DelimitedRow[];
  try {
    rows = parseRows(text, file, { delimiter: opts.delimiter, quote: opts.quote });
  } catch (e) {
    if (e instanceof DelimitedParseError) throw DataError.atLine('PARSE', file, e.line, e.detail);
    throw e;
  }
  let columns: string[];
  if (opts.header === true) {
    const first = rows.shift();
    if (!first) return { columns: [], records: [] };
    columns = first.fields;
    const seen = new Set<string>();
    for (const c of columns) {
      if (seen.has(c)) throw DataError.atLine('PARSE', file, first.line, `column "${c}" appears twice`);
      seen.add(c);
    }
  } else {
    columns = opts.header;
  }
  const records: DataRecord[] = [];
  for (const row of rows) {
    if (row.fields.length !== columns.length) {
      throw DataError.atLine(
        'PARSE',
        file,
        row.line,
        `has ${row.fields.length} fields, the header has ${columns.length} (${columns.join(', ')})`,
      );
    }
    const values: Record<string, string> = Object.create(null);
    columns.forEach((c, k) => {
      values[c] = row.fields[k];
    });
    records.push({ values, source: { file, line: row.line, row: records.length + 1 } });
  }
  return { columns, records };
}
