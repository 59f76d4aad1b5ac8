/**
 * CSV and TSV. With a quote character, fields follow RFC 4180 (quoted fields may hold delimiters,
 * newlines and doubled quotes). With `quote: null` every character is literal, as Python's
 * csv.QUOTE_NONE reads the GLUE TSVs: their sentences contain '"' that must not open a field.
 */
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

interface RawRow {
  fields: string[];
  line: number;
}

function* rows(text: string, file: string, delimiter: string, quote: string | null): Generator<RawRow> {
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (quote !== null && text[i] === quote) {
        const opened = line;
        i++;
        for (;;) {
          if (i >= n) throw DataError.atLine('PARSE', file, opened, 'a quoted field is never closed');
          const c = text[i];
          if (c === quote) {
            if (text[i + 1] === quote) {
              field += quote;
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        const next = text[i];
        if (i < n && next !== delimiter && next !== '\n' && next !== '\r') {
          throw DataError.atLine(
            'PARSE',
            file,
            line,
            `unexpected ${JSON.stringify(next)} after a closing quote; if this file's quotes are ` +
              'literal text (as in the GLUE TSVs), read it with quote: null',
          );
        }
      } else {
        // Unquoted: a quote character inside is literal (as Python's csv module reads it).
        let j = i;
        while (j < n && text[j] !== delimiter && text[j] !== '\n' && text[j] !== '\r') j++;
        field = text.slice(i, j);
        i = j;
      }
      fields.push(field);
      if (i < n && text[i] === delimiter) {
        i++;
        continue;
      }
      // End of the row: \n, \r\n, a lone \r, or the end of the text.
      if (text[i] === '\r') i++;
      if (text[i] === '\n') i++;
      line++;
      break;
    }
    // Blank lines separate nothing; skip them as pandas does.
    if (fields.length === 1 && fields[0] === '') continue;
    yield { fields, line: start };
  }
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
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const it = rows(body, file, opts.delimiter, opts.quote);
  let columns: string[];
  if (opts.header === true) {
    const first = it.next();
    if (first.done) return { columns: [], records: [] };
    columns = first.value.fields;
    const seen = new Set<string>();
    for (const c of columns) {
      if (seen.has(c)) throw DataError.atLine('PARSE', file, first.value.line, `column "${c}" appears twice`);
      seen.add(c);
    }
  } else {
    columns = opts.header;
  }
  const records: DataRecord[] = [];
  for (const row of it) {
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
