/**
 * CSV and TSV rows, parsed by csv-parse with the quoting said explicitly: with a quote character,
 * fields follow RFC 4180 (quoted fields may hold delimiters, line breaks and doubled quotes), and a
 * quote anywhere else is an error rather than a guess (what CSV writers produce never has one);
 * with `quote: null` every character is literal, as Python's csv.QUOTE_NONE reads the GLUE TSVs,
 * whose sentences hold bare '"'. Blank lines are skipped, a UTF-8 BOM ignored, rows end at LF, CRLF
 * or CR. Every row carries the 1-based line it starts on, for messages.
 */
// csv-parse's self-contained ESM build: its Node build reads the global Buffer, which browsers lack.
import { CsvError, type Options, parse } from 'csv-parse/browser/esm/sync';

/** Options of {@link parseRows}. */
export interface DelimitedOptions {
  /** One character: ',' for CSV, '\t' for TSV. */
  delimiter: string;
  /** The quote character, or null for none (QUOTE_NONE). */
  quote: string | null;
}

/** One row of a delimited file: its fields, verbatim, and the line it starts on. */
export interface DelimitedRow {
  fields: string[];
  line: number;
}

/** A file that cannot be parsed: the file, the line (when known) and what is wrong. */
export class DelimitedParseError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly detail: string,
  ) {
    super(`${file}${line === null ? '' : `:${line}`}: ${detail}`);
    this.name = 'DelimitedParseError';
  }
}

/** What a csv-parse error means, in this project's words. */
function explain(e: CsvError): string {
  const literal = "if this file's quotes are literal text (as in the GLUE TSVs), read it with quote: null";
  switch (String(e.code).replace(/^CSV_/, '')) {
    case 'QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed';
    case 'INVALID_CLOSING_QUOTE':
      return `text after a closing quote; ${literal}`;
    case 'INVALID_OPENING_QUOTE':
      return `a quote inside an unquoted field; quote the whole field, or ${literal}`;
    default:
      return e.message.replace(/^Invalid [^:]*: /, '');
  }
}

/** The rows of `text`; rows may differ in length (callers check against their header). */
export function parseRows(text: string, file: string, opts: DelimitedOptions): DelimitedRow[] {
  if (opts.delimiter.length !== 1 || '\r\n'.includes(opts.delimiter) || opts.delimiter === opts.quote)
    throw new DelimitedParseError(file, null, `bad delimiter ${JSON.stringify(opts.delimiter)}`);
  type Parsed = { record: string[]; info: { lines: number }; raw: string };
  let parsed: Parsed[];
  // The line the last complete row ended on: an unclosed quote opened on the next non-blank line.
  let lastEnd = 0;
  try {
    const options = {
      delimiter: opts.delimiter,
      quote: opts.quote ?? false,
      escape: opts.quote ?? false,
      record_delimiter: ['\r\n', '\n', '\r'],
      relax_column_count: true,
      skip_empty_lines: true,
      bom: true,
      info: true,
      raw: true,
      on_record: (r: Parsed) => {
        lastEnd = r.info.lines;
        return r;
      },
    };
    // With info and raw, each record comes as {record, info, raw}; the options' types do not say so.
    parsed = parse(text, options as unknown as Options) as unknown as Parsed[];
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    let line: number | null = (e as CsvError & { lines?: number }).lines ?? null;
    if (String(e.code).endsWith('QUOTE_NOT_CLOSED')) {
      const lines = text.split(/\r\n|\n|\r/);
      line = lastEnd + 1;
      while (line < lines.length && lines[line - 1].trim() === '') line++;
    }
    throw new DelimitedParseError(file, line, explain(e));
  }
  // csv-parse reports the line a row ends on; the row starts before the line breaks inside it (its
  // raw text also holds the blank lines before it and its own line break, which do not count).
  return parsed.map(({ record, info, raw }) => {
    const body = raw.replace(/^[\r\n]+/, '').replace(/\r?\n$|\r$/, '');
    let breaks = 0;
    for (let i = body.indexOf('\n'); i >= 0; i = body.indexOf('\n', i + 1)) breaks++;
    return { fields: record, line: info.lines - breaks };
  });
}
