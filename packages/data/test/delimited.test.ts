/** parseRows: quoting as Python's csv module reads it, line numbers, and clear errors. */
import { describe, expect, it } from 'vitest';
import { DelimitedParseError, parseRows } from '../src/index.js';

const csv = (text: string) => parseRows(text, 'f.csv', { delimiter: ',', quote: '"' });
const tsvNone = (text: string) => parseRows(text, 'f.tsv', { delimiter: '\t', quote: null });

describe('parseRows', () => {
  it('RFC 4180 quoting: delimiters, line breaks and doubled quotes inside quotes; lines of each row', () => {
    // Python: list(csv.reader(io.StringIO(text))) gives these fields.
    const text = '\ufeffa,b\n1,"x, ""y""\nz"\n\n3,"q""r"\r\n"",\n';
    expect(csv(text)).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', 'x, "y"\nz'], line: 2 },
      { fields: ['3', 'q"r'], line: 5 },
      { fields: ['', ''], line: 6 },
    ]);
    expect(csv('a,b\nc,d')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['c', 'd'], line: 2 },
    ]);
  });

  it('quote: null reads every quote as text (csv.QUOTE_NONE)', () => {
    expect(tsvNone('s\tl\n"a "quoted" word\t1\n')).toEqual([
      { fields: ['s', 'l'], line: 1 },
      { fields: ['"a "quoted" word', '1'], line: 2 },
    ]);
  });

  it('errors name the file, the line and what is wrong', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as DelimitedParseError;
      }
      throw new Error('no error');
    };
    const open = err(() => csv('a,b\n1,2\n\n"3,4\n5,6\n'));
    expect(open).toBeInstanceOf(DelimitedParseError);
    expect(open.message).toMatch(/^f\.csv:4: a quoted field is never closed/);
    const after = err(() => csv('a,b\n"x"y,1\n'));
    expect(after.message).toMatch(/^f\.csv:2: text after a closing quote/);
    const inside = err(() => csv('a,b\nq"r,1\n'));
    expect(inside.message).toMatch(/^f\.csv:2: a quote inside an unquoted field/);
    expect(() => parseRows('a', 'f', { delimiter: '\n', quote: null })).toThrow(/bad delimiter/);
  });
});
