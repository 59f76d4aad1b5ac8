import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError, parseDataset, readDataset, tokenizeDataset } from '../src/index.js';
import { data, haveData, robertaLikeTokenizer } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sharelora-readers-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fixture(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

/** The DataError a promise rejects with (fails the test if it resolves or throws something else). */
async function dataError(p: Promise<unknown> | (() => unknown)): Promise<DataError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    return e as DataError;
  }
  throw new Error('expected a DataError');
}

describe('JSON Lines', () => {
  it('keeps file and line of every record, skipping blank lines and CRLF', async () => {
    const f = await fixture('a.jsonl', '{"a": 1}\r\n\n{"a": 2}\n   \n{"a": 3}\n');
    const ds = await readDataset(f);
    expect(ds.format).toBe('jsonl');
    expect(ds.columns).toEqual(['a']);
    expect(ds.records.map((r) => [r.values.a, r.source.line, r.source.row])).toEqual([
      [1, 1, 1],
      [2, 3, 2],
      [3, 5, 3],
    ]);
    expect(ds.records[0].source.file).toBe(f);
  });

  it('a malformed line is an error naming file and line', async () => {
    const f = await fixture(
      'bad.jsonl',
      '{"q": "ok"}\n{"q": "fine"}\n{"q": "broken",\n{"q": "never read"}\n',
    );
    const e = await dataError(readDataset(f));
    expect(e.code).toBe('PARSE');
    expect(e.message).toMatch(new RegExp(`^${f}:3: malformed JSON line`));
    expect([e.file, e.line]).toEqual([f, 3]);
  });

  it('a line that is not an object is a type error at that line', async () => {
    const f = await fixture('arr.jsonl', '{"q": 1}\n[1, 2]\n');
    const e = await dataError(readDataset(f));
    expect([e.code, e.line]).toEqual(['BAD_TYPE', 2]);
    expect(e.message).toContain('got array');
  });
});

describe('JSON', () => {
  it('an array of objects: each record knows the line its object starts on', async () => {
    const items = [
      { t: 'x' },
      { t: 'with "quotes", [brackets] and {braces}' },
      { t: 'z', n: { deep: [1, 2] } },
    ];
    const text = JSON.stringify(items, null, 2);
    const f = await fixture('arr.json', text);
    const ds = await readDataset(f);
    const lines = text.split('\n');
    const starts = lines.flatMap((l, i) => (l === '  {' ? [i + 1] : []));
    expect(ds.records.map((r) => r.source.line)).toEqual(starts);
    expect(ds.records.map((r) => r.values)).toEqual(items);
    expect(ds.columns).toEqual(['t', 'n']);
  });

  it('HF style {"data": [...]}, with other keys before it, and a custom field', async () => {
    const doc = { version: '1', meta: { data: 'not this' }, data: [{ a: 1 }, { a: 2 }] };
    const text = JSON.stringify(doc, null, 1);
    const ds = await readDataset(await fixture('hf.json', text));
    expect(ds.records.map((r) => r.values.a)).toEqual([1, 2]);
    const lines = text.split('\n');
    expect(ds.records.map((r) => lines[(r.source.line ?? 0) - 1].trim())).toEqual(['{', '{']);
    const custom = await readDataset(await fixture('rows.json', JSON.stringify({ rows: [{ a: 5 }] })), {
      field: 'rows',
    });
    expect(custom.records[0].values).toEqual({ a: 5 });
  });

  it('a .json file holding JSON Lines (HF to_json default) is read as JSON Lines', async () => {
    const ds = await readDataset(await fixture('lines.json', '{"a": 1}\n{"a": 2}\n'));
    expect(ds.records.map((r) => [r.values.a, r.source.line])).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  it('errors: malformed JSON names the line, a scalar or a non-object item is a type error', async () => {
    const f = await fixture('broken.json', '[\n  {"a": 1},\n  {"a": 2,,}\n]');
    const e = await dataError(readDataset(f));
    expect(e.code).toBe('PARSE');
    expect(e.message).toMatch(new RegExp(`^${f}:3: malformed JSON`));
    expect((await dataError(readDataset(await fixture('num.json', '42')))).code).toBe('BAD_TYPE');
    const item = await dataError(readDataset(await fixture('mixed.json', '[{"a": 1},\n "text"]')));
    expect([item.code, item.line, item.row]).toEqual(['BAD_TYPE', 2, 2]);
    expect(item.message).toContain('(item 2)');
  });
});

describe('CSV and TSV', () => {
  it('CSV follows RFC 4180: quoted delimiters, doubled quotes, newlines inside quotes, CRLF, BOM', async () => {
    const text = '\ufeffprompt,completion\r\n"a, b","he said ""hi"""\r\n"two\nlines",x\r\nplain,"y"\r\n';
    const ds = await readDataset(await fixture('q.csv', text));
    expect(ds.columns).toEqual(['prompt', 'completion']);
    expect(ds.records.map((r) => [r.values.prompt, r.values.completion, r.source.line])).toEqual([
      ['a, b', 'he said "hi"', 2],
      ['two\nlines', 'x', 3],
      ['plain', 'y', 5],
    ]);
  });

  it('TSV reads quotes as text by default (QUOTE_NONE), as the GLUE files need', async () => {
    const text = 'sentence\tlabel\n"quoted start, no end\t1\nit\'s "fine"\t0\n';
    const ds = await readDataset(await fixture('g.tsv', text));
    expect(ds.records.map((r) => r.values.sentence)).toEqual(['"quoted start, no end', 'it\'s "fine"']);
    // The same file with quote '"' cannot be parsed: the quote opened on line 2 runs into line 3.
    const e = await dataError(readDataset(join(dir, 'g.tsv'), { quote: '"' }));
    expect(e.code).toBe('PARSE');
  });

  it('errors name the line: wrong field count, unclosed quote, text after a closing quote, duplicate column', async () => {
    const count = await dataError(readDataset(await fixture('n.csv', 'a,b\n1,2\n3\n')));
    expect([count.code, count.line]).toEqual(['PARSE', 3]);
    expect(count.message).toContain('has 1 fields, the header has 2');
    const open = await dataError(readDataset(await fixture('o.csv', 'a,b\n1,2\n"3,4\n5,6\n')));
    expect([open.code, open.line]).toEqual(['PARSE', 3]);
    expect(open.message).toContain('never closed');
    const after = await dataError(readDataset(await fixture('x.csv', 'a,b\n"1"x,2\n')));
    expect([after.code, after.line]).toEqual(['PARSE', 2]);
    expect(after.message).toContain('quote: null');
    const dup = await dataError(readDataset(await fixture('d.csv', 'a,a\n1,2\n')));
    expect([dup.code, dup.line]).toEqual(['PARSE', 1]);
  });

  it('a headerless file takes its column names from the options', async () => {
    const ds = await readDataset(await fixture('nohead.tsv', 'x\t0\ny\t1\n'), {
      columns: ['sentence', 'label'],
    });
    expect(ds.records.map((r) => [r.values.sentence, r.source.line])).toEqual([
      ['x', 1],
      ['y', 2],
    ]);
  });
});

describe('empty and unknown files', () => {
  it('an empty file, a header without rows, blank JSON Lines and an empty array are EMPTY errors', async () => {
    for (const [name, content] of [
      ['e.jsonl', ''],
      ['h.csv', 'a,b\n'],
      ['blank.jsonl', '\n\n  \n'],
      ['none.json', '[]'],
    ]) {
      const path = await fixture(name, content);
      const e = await dataError(readDataset(path));
      expect(e.code).toBe('EMPTY');
      expect(e.message.startsWith(path)).toBe(true);
    }
  });

  it('an unknown extension, a missing file and invalid UTF-8 are reported with the path', async () => {
    expect((await dataError(readDataset(await fixture('x.txt', 'hi')))).code).toBe('UNSUPPORTED');
    expect((await dataError(readDataset(join(dir, 'absent.jsonl')))).code).toBe('IO');
    const bad = await dataError(
      readDataset(await fixture('latin1.csv', new Uint8Array([0x61, 0x0a, 0xe9, 0x0a]))),
    );
    expect(bad.code).toBe('PARSE');
    expect(bad.message).toContain('UTF-8');
  });

  it('reading never writes: a failed read leaves the folder as it was', async () => {
    const before = await readdir(dir);
    await dataError(readDataset(await fixture('bad2.jsonl', '{"a":\n')));
    expect(await readdir(dir)).toEqual([...before, 'bad2.jsonl'].sort());
  });
});

describe('Parquet', () => {
  it('reads a file written by hyparquet-writer: strings, INT64 labels as bigint, rows numbered', async () => {
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'sentence', data: ['good film', 'bad film', 'fine'], type: 'STRING' },
        { name: 'label', data: [1n, 0n, 7n], type: 'INT64' },
      ],
    });
    const path = await fixture('t.parquet', new Uint8Array(buf));
    const ds = await readDataset(path);
    expect(ds.format).toBe('parquet');
    expect(ds.columns).toEqual(['sentence', 'label']);
    expect(ds.records.map((r) => [r.values.sentence, r.values.label, r.source.row, r.source.line])).toEqual([
      ['good film', 1n, 1, null],
      ['bad film', 0n, 2, null],
      ['fine', 7n, 3, null],
    ]);
    // Labels from Parquet go through the same checks; errors name the row.
    const spec = { type: 'classification', fields: { text: 'sentence' }, labels: ['neg', 'pos'] } as const;
    const e = await dataError(() => tokenizeDataset(ds, spec, robertaLikeTokenizer()));
    expect(e.code).toBe('BAD_LABEL');
    expect(e.message).toMatch(new RegExp(`^${path} row 3: label 7`));
    // A column the format needs but the schema lacks is reported once, for the file.
    const missing = await dataError(() =>
      tokenizeDataset(ds, { type: 'classification', labels: ['neg', 'pos'] }, robertaLikeTokenizer()),
    );
    expect(missing.code).toBe('MISSING_FIELD');
    expect(missing.message).toContain('missing column "text"');
  });

  it('a corrupt file is a PARSE error naming it', async () => {
    const path = await fixture('junk.parquet', new TextEncoder().encode('PAR1 this is not parquet at all'));
    const e = await dataError(readDataset(path));
    expect(e.code).toBe('PARSE');
    expect(e.message.startsWith(`${path}: not a readable Parquet file`)).toBe(true);
  });

  const glue = haveData('glue/SST-2/dev.tsv');
  it.runIf(glue)('SST-2 dev as Parquet reads the same records as the TSV', async () => {
    const tsv = await readDataset(data('glue/SST-2/dev.tsv'), { quote: null });
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'sentence', data: tsv.records.map((r) => r.values.sentence as string), type: 'STRING' },
        { name: 'label', data: tsv.records.map((r) => Number(r.values.label)), type: 'INT32' },
      ],
    });
    const pq = await parseDataset(new Uint8Array(buf), 'sst2-dev.parquet');
    expect(pq.records.length).toBe(872);
    expect(pq.records.map((r) => [r.values.sentence, String(r.values.label)])).toEqual(
      tsv.records.map((r) => [r.values.sentence, r.values.label]),
    );
  });
});

describe('size limits', () => {
  const enc = (s: string) => new TextEncoder().encode(s);

  it('a record over maxRecordBytes (UTF-8 bytes over all its text) is an error at its line, in any format', async () => {
    // 400 three-byte characters: 400 UTF-16 units, 1,200 bytes, and the 1-byte label.
    const wide = '€'.repeat(400);
    const jsonl = `{"text": "ok"}\n${JSON.stringify({ text: wide, label: 'a' })}\n`;
    const err = await parseDataset(enc(jsonl), 'd.jsonl', { maxRecordBytes: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err).toMatchObject({ code: 'TOO_LARGE', line: 2, row: 2 });
    expect(err.message).toMatch(
      /^d\.jsonl:2: the record holds about 1,201 bytes of text, more than the 1,000-byte limit/,
    );
    await expect(
      parseDataset(enc(`text,label\nok,a\n${wide},b\n`), 'd.csv', { maxRecordBytes: 1000 }),
    ).rejects.toThrow(/^d\.csv:3: the record holds about 1,201 bytes/);
    expect((await parseDataset(enc(jsonl), 'd.jsonl', { maxRecordBytes: 1201 })).records).toHaveLength(2);
  });

  it('readDataset refuses a file over maxBytes and a device before reading it', async () => {
    const path = await fixture('limit.jsonl', '{"text": "one"}\n{"text": "two"}\n');
    await expect(readDataset(path, { maxBytes: 10 })).rejects.toMatchObject({ code: 'TOO_LARGE' });
    await expect(readDataset('/dev/zero', { format: 'jsonl' })).rejects.toMatchObject({ code: 'IO' });
  });
});
