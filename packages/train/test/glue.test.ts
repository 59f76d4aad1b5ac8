import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type ClassificationExample,
  DataError,
  GLUE_TASKS,
  type GlueTaskName,
  readDataset,
  tokenizeDataset,
} from '../src/index.js';
import { data, haveData, robertaLikeTokenizer } from './helpers.js';

const glue = haveData(
  'glue/SST-2/dev.tsv',
  'glue/MRPC/train.tsv',
  'glue/STS-B/train.tsv',
  'glue/RTE/train.tsv',
);

/** Rows per file as glue/SOURCE.md states them. */
const SOURCE_COUNTS: Array<[GlueTaskName, string, number]> = [
  ['sst2', 'SST-2/dev.tsv', 872],
  ['sst2', 'SST-2/train_90pct.tsv', 60_614],
  ['sst2', 'SST-2/train_10pct.tsv', 6_735],
  ['mrpc', 'MRPC/train.tsv', 3_668],
  ['mrpc', 'MRPC/dev.tsv', 408],
  ['stsb', 'STS-B/train.tsv', 5_749],
  ['stsb', 'STS-B/dev.tsv', 1_500],
  ['rte', 'RTE/train.tsv', 2_490],
  ['rte', 'RTE/dev.tsv', 277],
];

const tok = robertaLikeTokenizer();
const bytes = (s: string) => tok.encode(s, { addSpecialTokens: false });

/** The last column of a QUOTE_NONE TSV, split naively: an independent count of the labels. */
function naiveLastColumn(file: string): string[] {
  const lines = readFileSync(data('glue', file), 'utf8').split('\n').slice(1);
  return lines.filter((l) => l !== '').map((l) => l.split('\t').at(-1) as string);
}

describe.runIf(glue)('GLUE files from shared/data', () => {
  it.each(SOURCE_COUNTS)('%s %s: %i rows, every label valid', async (task, file, rows) => {
    const { read, format } = GLUE_TASKS[task];
    const ds = await readDataset(data('glue', file), read);
    expect(ds.records.length).toBe(rows);
    const { examples, report } = tokenizeDataset(ds.records.slice(0, 200), format, tok);
    expect(report.examples).toBe(200);
    for (const e of examples) {
      if (e.regression) expect(e.label >= 0 && e.label <= 5).toBe(true);
      else expect([0, 1]).toContain(e.label);
    }
  });

  it('SST-2: sentences as written (trailing space kept), labels counted as a plain split counts them', async () => {
    const ds = await readDataset(data('glue/SST-2/dev.tsv'), GLUE_TASKS.sst2.read);
    expect(ds.columns).toEqual(['sentence', 'label']);
    expect(ds.records[0].values).toEqual({
      sentence: "it 's a charming and often affecting journey . ",
      label: '1',
    });
    const { examples } = tokenizeDataset(ds, GLUE_TASKS.sst2.format, tok);
    const positives = naiveLastColumn('SST-2/dev.tsv').filter((l) => l === '1').length;
    expect(examples.filter((e) => e.label === 1).length).toBe(positives);
    expect(examples[0].inputIds).toEqual([0, ...bytes("it 's a charming and often affecting journey . "), 2]);
  });

  it('MRPC: BOM-free header, literal quotes, <s> A </s></s> B </s> pairs, Quality as the label', async () => {
    const ds = await readDataset(data('glue/MRPC/dev.tsv'), GLUE_TASKS.mrpc.read);
    expect(ds.columns).toEqual(['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String']);
    const first = ds.records[0].values as Record<string, string>;
    expect(first['#2 String']).toBe(
      '"The foodservice pie business does not fit our long-term growth strategy.',
    );
    const { examples } = tokenizeDataset(ds, GLUE_TASKS.mrpc.format, tok);
    expect(examples[0].inputIds).toEqual([
      0,
      ...bytes(first['#1 String']),
      2,
      2,
      ...bytes(first['#2 String']),
      2,
    ]);
    expect(examples[0].label).toBe(1);
    const labels = naiveLastColumn('MRPC/dev.tsv').length;
    expect(labels).toBe(408);
    const lines = readFileSync(data('glue/MRPC/dev.tsv'), 'utf8').split('\n').slice(1, -1);
    expect(examples.map((e) => e.label)).toEqual(lines.map((l) => Number(l.split('\t')[0])));
  });

  it('MRPC test has no Quality column: reported once, at the header', async () => {
    const ds = await readDataset(data('glue/MRPC/test.tsv'), GLUE_TASKS.mrpc.read);
    expect(ds.records.length).toBe(1_725);
    let err: unknown;
    try {
      tokenizeDataset(ds, GLUE_TASKS.mrpc.format, tok);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).message).toMatch(/MRPC\/test\.tsv:1: missing column "Quality"/);
  });

  it('STS-B: scores are regression targets; they equal the TSV column', async () => {
    const ds = await readDataset(data('glue/STS-B/dev.tsv'), GLUE_TASKS.stsb.read);
    const { examples } = tokenizeDataset(ds, GLUE_TASKS.stsb.format, tok);
    expect(examples.every((e) => e.regression)).toBe(true);
    expect(examples.map((e) => e.label)).toEqual(naiveLastColumn('STS-B/dev.tsv').map(Number));
    expect(examples[0].label).toBe(5);
  });

  it('RTE (HF export): quoted fields are unquoted, doubled quotes collapse, 0 = entailment', async () => {
    const ds = await readDataset(data('glue/RTE/train.tsv'), GLUE_TASKS.rte.read);
    const valero = ds.records.find((r) => (r.values.idx as string) === '12');
    expect(valero?.values.sentence1).toBe(
      'Valero Energy Corp., on Monday, said it found "extensive" additional damage at its 250,000-barrel-per-day Port Arthur refinery.',
    );
    expect(valero?.source.line).toBe(14);
    const { examples } = tokenizeDataset(ds, GLUE_TASKS.rte.format, tok);
    expect(examples.map((e) => e.label)).toEqual(ds.records.map((r) => Number(r.values.label)));
    // The GLUE originals name the labels; the same format reads them.
    const named = tokenizeDataset(
      [{ values: { sentence1: 'a', sentence2: 'b', label: 'not_entailment' }, source: ds.records[0].source }],
      GLUE_TASKS.rte.format,
      tok,
    );
    expect(named.examples[0].label).toBe(1);
  });

  it('maxLength cuts the longer segment first and keeps the special tokens', async () => {
    const ds = await readDataset(data('glue/MRPC/dev.tsv'), GLUE_TASKS.mrpc.read);
    const max = 96;
    const full = tokenizeDataset(ds, GLUE_TASKS.mrpc.format, tok).examples;
    const { examples, report } = tokenizeDataset(ds, GLUE_TASKS.mrpc.format, tok, { maxLength: max });
    const over = full.filter((e) => e.inputIds.length > max);
    expect(report.truncated).toBe(over.length);
    expect(report.tokensCut).toBe(over.reduce((s, e) => s + e.inputIds.length - max, 0));
    expect(report.dropped).toEqual([]);
    examples.forEach((e: ClassificationExample, i) => {
      const r = ds.records[i].values as Record<string, string>;
      const [a, b] = [bytes(r['#1 String']), bytes(r['#2 String'])];
      if (full[i].inputIds.length <= max) {
        expect(e.inputIds).toEqual(full[i].inputIds);
        return;
      }
      expect(e.inputIds.length).toBe(max);
      const sep = e.inputIds.indexOf(2);
      const [a2, b2] = [e.inputIds.slice(1, sep), e.inputIds.slice(sep + 2, -1)];
      expect([e.inputIds[0], e.inputIds[sep + 1], e.inputIds.at(-1)]).toEqual([0, 2, 2]);
      expect(a2).toEqual(a.slice(0, a2.length));
      expect(b2).toEqual(b.slice(0, b2.length));
      // Longest first: the cut segments end within one token of each other, or the shorter one is whole.
      if (a2.length < a.length && b2.length < b.length)
        expect(Math.abs(a2.length - b2.length)).toBeLessThanOrEqual(1);
      // (ties cut the second segment, so a whole first segment may be one longer).
      else expect(a2.length === a.length ? a.length <= b2.length + 1 : b.length <= a2.length).toBe(true);
    });
  });
});
