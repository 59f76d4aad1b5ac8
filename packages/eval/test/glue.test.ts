import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracy,
  averageRanks,
  evaluateGlue,
  f1Score,
  type GlueClassifier,
  loadGlue,
  matthewsCorrelation,
  pearson,
  spearman,
} from '../src/index.js';
import { dataPath, hasData } from './data.js';

const withData = hasData('glue');

describe('GLUE metrics against hand-computed values', () => {
  it('accuracy and binary F1 (positive class 1)', () => {
    expect(accuracy([1, 0, 1, 1], [1, 0, 0, 1])).toBe(0.75);
    // tp = 2, fp = 1, fn = 1: F1 = 2·2 / (2·2 + 1 + 1)
    expect(f1Score([1, 1, 0, 1, 0], [1, 0, 0, 1, 1])).toBeCloseTo(2 / 3, 15);
    expect(f1Score([0, 0], [0, 0])).toBe(0);
    expect(f1Score([0, 1], [1, 0], 0)).toBe(0);
  });

  it('Matthews correlation', () => {
    // scikit-learn's documented example: y_true [+1,+1,+1,-1], y_pred [+1,-1,+1,+1] gives -0.33…
    expect(matthewsCorrelation([1, -1, 1, 1], [1, 1, 1, -1])).toBeCloseTo(-1 / 3, 15);
    // tp 2, tn 1, fp 1, fn 1: (2·1 − 1·1) / √(3·3·2·2) = 1/6
    expect(matthewsCorrelation([1, 1, 0, 1, 0], [1, 0, 0, 1, 1])).toBeCloseTo(1 / 6, 15);
    expect(matthewsCorrelation([0, 1, 0, 1], [0, 1, 0, 1])).toBe(1);
    expect(matthewsCorrelation([1, 0, 1, 0], [0, 1, 0, 1])).toBe(-1);
    expect(matthewsCorrelation([1, 1, 1, 1], [0, 1, 0, 1])).toBe(0);
  });

  it('Pearson and Spearman (average ranks for ties)', () => {
    // Σdxdy = 6, Σdx² = 10, Σdy² = 6: r = 6/√60
    expect(pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])).toBeCloseTo(6 / Math.sqrt(60), 15);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBe(-1);
    expect(Number.isNaN(pearson([1, 1, 1], [1, 2, 3]))).toBe(true);
    expect(averageRanks([10, 20, 20, 5])).toEqual([2, 3.5, 3.5, 1]);
    // ranks [1, 2.5, 2.5, 4] vs [1, 3, 2, 4]: 4.5 / √(4.5 · 5)
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(4.5 / Math.sqrt(22.5), 15);
    expect(spearman([1, 2, 3, 4], [10, 100, 1000, 10000])).toBe(1);
  });
});

describe.skipIf(!withData)('GLUE files', () => {
  it('reads SST-2, MRPC, STS-B and RTE with their labels', async () => {
    const sst2 = await loadGlue('sst2', dataPath('glue', 'SST-2', 'dev.tsv'));
    expect(sst2.length).toBe(872);
    expect(sst2[0]).toEqual({ text: "it 's a charming and often affecting journey . ", label: 1 });
    const mrpc = await loadGlue('mrpc', dataPath('glue', 'MRPC', 'dev.tsv'));
    expect(mrpc.length).toBe(408);
    expect(mrpc[0].textPair).toBe(
      '"The foodservice pie business does not fit our long-term growth strategy.',
    );
    const mrpcTest = await loadGlue('mrpc', dataPath('glue', 'MRPC', 'test.tsv'));
    expect(mrpcTest.length).toBe(1725);
    expect(mrpcTest.every((e) => e.label === null)).toBe(true);
    const stsb = await loadGlue('stsb', dataPath('glue', 'STS-B', 'dev.tsv'));
    expect(stsb.length).toBe(1500);
    expect(stsb[1]).toEqual({
      text: 'A young child is riding a horse.',
      textPair: 'A child is riding a horse.',
      label: 4.75,
    });
    const rte = await loadGlue('rte', dataPath('glue', 'RTE', 'dev.tsv'));
    expect(rte.length).toBe(277);
    expect(new Set(rte.map((e) => e.label))).toEqual(new Set([0, 1]));
    // RTE is Hugging Face's pandas export, quoted where a sentence holds '"': every row as Python's
    // csv module reads it (tab delimiter, default quoting).
    const py = spawnSync(
      'python3',
      [
        '-c',
        'import csv, json, sys; r = list(csv.DictReader(open(sys.argv[1], newline=""), delimiter="\\t")); ' +
          'print(json.dumps([[x["sentence1"], x["sentence2"], int(x["label"])] for x in r]))',
        dataPath('glue', 'RTE', 'dev.tsv'),
      ],
      { encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    expect(rte.map((e) => [e.text, e.textPair, e.label])).toEqual(JSON.parse(py.stdout));
    expect(rte.some((e) => e.text.includes('"') || e.textPair?.includes('"'))).toBe(true);
  });

  it('scores a classifier; STS-B by correlation', async () => {
    const mrpc = await loadGlue('mrpc', dataPath('glue', 'MRPC', 'dev.tsv'));
    const alwaysOne: GlueClassifier = { name: 'ones', predict: async (xs) => xs.map(() => 1) };
    const r = await evaluateGlue(alwaysOne, 'mrpc', mrpc);
    const positives = mrpc.filter((e) => e.label === 1).length;
    expect(r.metrics.accuracy).toBeCloseTo(positives / mrpc.length, 15);
    expect(r.metrics.f1).toBeCloseTo((2 * positives) / (2 * positives + (mrpc.length - positives)), 15);
    const stsb = await loadGlue('stsb', dataPath('glue', 'STS-B', 'dev.tsv'));
    const oracle: GlueClassifier = {
      name: 'oracle',
      predict: async (xs) => xs.map((x) => (x.label as number) * 2 + 1),
    };
    const s = await evaluateGlue(oracle, 'stsb', stsb, { limit: 100 });
    expect(s.metrics.pearson).toBeCloseTo(1, 12);
    expect(s.metrics.spearman).toBeCloseTo(1, 12);
    expect(s.task).toBe('glue-stsb');
  });
});

describe('GLUE loader errors', () => {
  it('names the file and line of a malformed row', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glue-bad-'));
    try {
      const file = join(dir, 'dev.tsv');
      await writeFile(file, 'sentence\tlabel\ngood film\t1\nbad film\t7\n');
      await expect(loadGlue('sst2', file)).rejects.toThrow(`${file}:3: label "7" is not a class id of sst2`);
      await writeFile(file, 'sentence\tlabel\ngood film\t1\textra\n');
      await expect(loadGlue('sst2', file)).rejects.toThrow(
        `${file}:2: expected 2 tab-separated columns, found 3`,
      );
      await writeFile(file, 'text\tlabel\nx\t1\n');
      await expect(loadGlue('sst2', file)).rejects.toThrow(/header lacks sentence/);
      await writeFile(
        file,
        'gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\ngj04\t0\t*\tThe more.\n',
      );
      expect(await loadGlue('cola', file)).toEqual([
        { text: 'The sailors rode the breeze clear of the rocks.', label: 1 },
        { text: 'The more.', label: 0 },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
