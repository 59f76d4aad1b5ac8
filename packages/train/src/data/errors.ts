import { ShareloraError } from '@sharelora/core';

/** The `code` of a {@link DataError}: what is wrong with a data file, a record or a data option. */
export type DataErrorCode =
  /** The file could not be read at all (missing, a directory, no permission). */
  | 'IO'
  /** The file is not valid JSON / JSONL / CSV / TSV / Parquet (or not UTF-8). */
  | 'PARSE'
  /** A record or the header lacks a field the format needs, or the field is null. */
  | 'MISSING_FIELD'
  /** The file has no records. */
  | 'EMPTY'
  /** A class label outside the label set, or a regression target outside its range. */
  | 'BAD_LABEL'
  /** A field has the wrong type (e.g. a number where text is needed). */
  | 'BAD_TYPE'
  /** An unknown file extension, or a tokenizer that cannot do what the format needs. */
  | 'UNSUPPORTED'
  /** An option has a bad value (batch size 0, a validation split larger than the data, ...). */
  | 'BAD_OPTION'
  /** A file or a record over its size limit (the message names the limit). */
  | 'TOO_LARGE'
  /** A resumed data position does not belong to these examples or loader options. */
  | 'POSITION_MISMATCH';

/** Where a record came from. Errors and reports point here so a user can open the file at that spot. */
export interface RecordSource {
  /** The path as it was read. */
  file: string;
  /** 1-based line on which the record starts (JSONL, JSON, CSV/TSV); null for Parquet. */
  line: number | null;
  /** 1-based record number in the file (header excluded): the row of a table, the item of a JSON array. */
  row: number;
  /** Set for elements of a JSON array, where many records may share a line: messages then name the item. */
  item?: true;
}

/** "file:line" for text files (the form editors and terminals link), "file row N" for Parquet. */
export function describeSource(s: RecordSource): string {
  if (s.line === null) return `${s.file} ${s.item ? 'item' : 'row'} ${s.row}`;
  return s.item ? `${s.file}:${s.line} (item ${s.row})` : `${s.file}:${s.line}`;
}

/**
 * Every error raised while reading or preparing data. The message starts with the file and line
 * (or row) at fault; `file`, `line` and `row` carry the same for programs.
 */
export class DataError extends ShareloraError {
  constructor(
    override readonly code: DataErrorCode,
    message: string,
    readonly file: string | null = null,
    readonly line: number | null = null,
    readonly row: number | null = null,
  ) {
    super(code, message);
  }

  /** An error about one record. */
  static at(code: DataErrorCode, source: RecordSource, detail: string): DataError {
    return new DataError(code, `${describeSource(source)}: ${detail}`, source.file, source.line, source.row);
  }

  /** An error about a line of a file that is not (yet) a record, e.g. a header or a malformed line. */
  static atLine(code: DataErrorCode, file: string, line: number | null, detail: string): DataError {
    return new DataError(code, `${line === null ? file : `${file}:${line}`}: ${detail}`, file, line);
  }
}
