/**
 * JSON Lines and JSON readers. Each record remembers the line it starts on: JSON.parse gives no
 * positions, so for a JSON array a small scan finds where each element begins.
 */
import { DataError } from '../errors.js';
import { type DataRecord, isPlainObject, typeName } from '../records.js';

const stripBom = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** One object per line; blank lines are skipped (a trailing newline is common). */
export function parseJsonl(text: string, file: string): DataRecord[] {
  const lines = stripBom(text).split('\n');
  const records: DataRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw DataError.atLine('PARSE', file, i + 1, `malformed JSON line: ${(e as Error).message}`);
    }
    if (!isPlainObject(value)) {
      throw DataError.atLine('BAD_TYPE', file, i + 1, `expected a JSON object, got ${typeName(value)}`);
    }
    records.push({ values: value, source: { file, line: i + 1, row: records.length + 1 } });
  }
  return records;
}

/** 1-based line of each offset (offsets ascending). */
function linesOf(text: string, offsets: number[]): number[] {
  const out: number[] = [];
  let line = 1;
  let at = 0;
  for (const off of offsets) {
    for (; at < off; at++) if (text.charCodeAt(at) === 10) line++;
    out.push(line);
  }
  return out;
}

/**
 * Offsets where the elements of the records array begin: the top-level array (key null) or the
 * array under a top-level key. Only used for line numbers, on text JSON.parse already accepted.
 */
function elementOffsets(text: string, key: string | null): number[] {
  const targetDepth = key === null ? 1 : 2;
  const out: number[] = [];
  let depth = 0;
  let inTarget = false;
  let expectElement = false;
  // The last string seen at depth 1: when a '[' opens there, this is its key.
  let lastKey: string | null = null;
  const elementStarts = (at: number) => {
    if (inTarget && depth === targetDepth && expectElement) {
      out.push(at);
      expectElement = false;
    }
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      elementStarts(start);
      if (depth === 1 && key !== null) lastKey = JSON.parse(text.slice(start, i + 1)) as string;
    } else if (c === '[' || c === '{') {
      elementStarts(i);
      depth++;
      if (c === '[' && depth === targetDepth && (key === null || lastKey === key)) {
        inTarget = true;
        expectElement = true;
      }
    } else if (c === ']' || c === '}') {
      if (depth === targetDepth) inTarget = false;
      depth--;
    } else if (c === ',') {
      if (inTarget && depth === targetDepth) expectElement = true;
    } else if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r' && c !== ':') {
      elementStarts(i);
    }
  }
  return out;
}

function jsonErrorLine(text: string, e: Error): number | null {
  const m = /position (\d+)/.exec(e.message);
  return m ? linesOf(text, [Number(m[1])])[0] : null;
}

/** Options of {@link parseJson}. */
export interface JsonReadOptions {
  /**
   * The key holding the records when the file is an object (as the `field` of HF datasets' JSON
   * loader). Default: "data".
   */
  field?: string;
}

/**
 * A JSON array of objects, or an object holding one under `field` ({"data": [...]}, HF style).
 * A .json file that is really JSON Lines (what HF `Dataset.to_json` writes by default) is read as such.
 */
export function parseJson(text: string, file: string, opts: JsonReadOptions = {}): DataRecord[] {
  const body = stripBom(text);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    if (looksLikeJsonl(body)) return parseJsonl(body, file);
    throw DataError.atLine(
      'PARSE',
      file,
      jsonErrorLine(body, e as Error),
      `malformed JSON: ${(e as Error).message}`,
    );
  }
  const field = opts.field ?? 'data';
  let items: unknown;
  let key: string | null = null;
  if (Array.isArray(doc)) items = doc;
  else if (isPlainObject(doc) && Array.isArray(doc[field])) {
    items = doc[field];
    key = field;
  } else {
    const keys = isPlainObject(doc) ? ` (keys: ${Object.keys(doc).join(', ') || 'none'})` : '';
    throw DataError.atLine(
      'BAD_TYPE',
      file,
      1,
      `expected an array of objects or an object with an array under "${field}", got ${typeName(doc)}${keys}`,
    );
  }
  const arr = items as unknown[];
  const offsets = elementOffsets(body, key);
  // A duplicated key would make the scan see two arrays; then lines are unknown but rows still are.
  const lines = offsets.length === arr.length ? linesOf(body, offsets) : null;
  return arr.map((value, i) => {
    const source = { file, line: lines ? lines[i] : null, row: i + 1, item: true as const };
    if (!isPlainObject(value)) {
      throw DataError.at('BAD_TYPE', source, `expected an object, got ${typeName(value)}`);
    }
    return { values: value, source };
  });
}

/** Two or more non-blank lines of which the first is a whole JSON object. */
function looksLikeJsonl(text: string): boolean {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) return false;
  try {
    return isPlainObject(JSON.parse(lines[0]));
  } catch {
    return false;
  }
}
