import { describe, expect, it } from 'vitest';
import {
  BatchLoader,
  type ClassificationExample,
  collate,
  DataError,
  type DataPosition,
  type Example,
  IGNORE_INDEX,
  type LmExample,
  type LoaderOptions,
  padIdOf,
  readDataset,
  sequentialBatches,
  splitValidation,
  tokenizeDataset,
} from '../src/index.js';
import { data, haveData, storiesTokenizer } from './helpers.js';

const src = (row: number) => ({ file: 'mem.jsonl', line: row, row });

/** LM example `row` of length len: ids row*100+k, prompt of `prompt` tokens masked. */
function lm(row: number, len: number, prompt = 1): LmExample {
  const inputIds = Array.from({ length: len }, (_, k) => row * 100 + k);
  return {
    kind: 'lm',
    inputIds,
    attentionMask: inputIds.map(() => 1),
    labels: inputIds.map((id, k) => (k < prompt ? IGNORE_INDEX : id)),
    promptLength: prompt,
    source: src(row),
  };
}

const cls = (row: number, len: number, label: number, regression = false): ClassificationExample => ({
  kind: 'classification',
  inputIds: Array.from({ length: len }, (_, k) => row * 100 + k),
  attentionMask: Array(len).fill(1),
  label,
  regression,
  source: src(row),
});

const rows = (a: ArrayLike<number>, width: number) =>
  Array.from({ length: a.length / width }, (_, r) => Array.from(a).slice(r * width, (r + 1) * width));

function dataError(f: () => unknown): DataError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    return e as DataError;
  }
  throw new Error('expected a DataError');
}

describe('collate', () => {
  it('right padding: pad id, mask 0 and IGNORE_INDEX labels after each row', () => {
    const b = collate([lm(1, 3), lm(2, 5, 2)], { padId: 9 });
    expect([b.kind, b.batchSize, b.seqLength, b.tokens]).toEqual(['lm', 2, 5, 8]);
    expect(rows(b.inputIds, 5)).toEqual([
      [100, 101, 102, 9, 9],
      [200, 201, 202, 203, 204],
    ]);
    expect(rows(b.attentionMask, 5)).toEqual([
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1],
    ]);
    expect(rows(b.labels, 5)).toEqual([
      [-100, 101, 102, -100, -100],
      [-100, -100, 202, 203, 204],
    ]);
    expect(b.sources.map((s) => s.row)).toEqual([1, 2]);
  });

  it('left padding puts every last token in the last column; padToMultipleOf rounds the width', () => {
    const b = collate([lm(1, 3), lm(2, 5)], { padId: 0, padding: 'left', padToMultipleOf: 4 });
    expect(b.seqLength).toBe(8);
    expect(rows(b.inputIds, 8)).toEqual([
      [0, 0, 0, 0, 0, 100, 101, 102],
      [0, 0, 0, 200, 201, 202, 203, 204],
    ]);
    expect(rows(b.attentionMask, 8)[0]).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
    expect(rows(b.labels, 8)[0]).toEqual([-100, -100, -100, -100, -100, -100, 101, 102]);
  });

  it('classification batches: Int32 class ids, Float32 regression targets', () => {
    const c = collate([cls(1, 2, 1), cls(2, 4, 0)], { padId: 1 });
    expect(c.labels).toEqual(Int32Array.from([1, 0]));
    expect(rows(c.inputIds, 4)).toEqual([
      [100, 101, 1, 1],
      [200, 201, 202, 203],
    ]);
    const r = collate([cls(1, 2, 3.8, true), cls(2, 1, 0.25, true)], { padId: 1 });
    expect(r.labels).toEqual(Float32Array.from([3.8, 0.25]));
    expect(r.kind === 'classification' && r.regression).toBe(true);
  });

  it('refuses mixed kinds and empty batches', () => {
    expect(dataError(() => collate([lm(1, 2), cls(2, 2, 0)] as Example[], { padId: 0 })).code).toBe(
      'BAD_OPTION',
    );
    expect(dataError(() => collate([], { padId: 0 })).code).toBe('BAD_OPTION');
    expect(dataError(() => collate([cls(1, 2, 0), cls(2, 2, 1, true)], { padId: 0 })).code).toBe(
      'BAD_OPTION',
    );
  });

  it('sequentialBatches keeps file order; the last batch may be smaller', () => {
    const ex = [1, 2, 3, 4, 5].map((r) => lm(r, r));
    const bs = [...sequentialBatches(ex, { batchSize: 2, padId: 0 })];
    expect(bs.map((b) => b.sources.map((s) => s.row))).toEqual([[1, 2], [3, 4], [5]]);
  });
});

describe('validation split', () => {
  const items = Array.from({ length: 100 }, (_, i) => i);

  it('is fixed by the seed, disjoint, complete and in file order', () => {
    const a = splitValidation(items, { validation: 0.1, seed: 7 });
    expect(splitValidation(items, { validation: 0.1, seed: 7 })).toEqual(a);
    expect(a.validation.length).toBe(10);
    expect([...a.train, ...a.validation].sort((x, y) => x - y)).toEqual(items);
    expect(a.validation).toEqual([...a.validation].sort((x, y) => x - y));
    expect(splitValidation(items, { validation: 0.1, seed: 8 }).validation).not.toEqual(a.validation);
    expect(splitValidation(items, { validation: 25, seed: 7 }).validation.length).toBe(25);
  });

  it('rejects splits that leave a side empty', () => {
    for (const v of [0, 100, 2.5, -3, Number.NaN])
      expect(dataError(() => splitValidation(items, { validation: v, seed: 1 })).code).toBe('BAD_OPTION');
  });
});

describe('BatchLoader', () => {
  // 10 examples of lengths 1..10 in a scrambled file order.
  const examples = [7, 2, 9, 4, 10, 1, 6, 3, 8, 5].map((len, i) => lm(i + 1, len));
  const base: LoaderOptions = { batchSize: 4, seed: 42, padId: 0 };
  const ids = (l: BatchLoader<LmExample>, n: number) =>
    Array.from({ length: n }, () => {
      const b = l.next();
      return {
        epoch: b.epoch,
        index: b.index,
        rows: b.sources.map((s) => s.row),
        inputIds: Array.from(b.inputIds),
      };
    });

  it('same seed, same batches; every epoch covers every example once, in a new order', () => {
    const a = ids(new BatchLoader(examples, base), 9);
    expect(ids(new BatchLoader(examples, base), 9)).toEqual(a);
    expect(new BatchLoader(examples, base).batchesPerEpoch).toBe(3);
    for (const e of [0, 1, 2]) {
      const epoch = a.filter((b) => b.epoch === e);
      expect(epoch.map((b) => b.index)).toEqual([0, 1, 2]);
      expect(epoch.flatMap((b) => b.rows).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
    const order = (e: number) => a.filter((b) => b.epoch === e).flatMap((b) => b.rows);
    expect(order(1)).not.toEqual(order(0));
    expect(ids(new BatchLoader(examples, { ...base, seed: 43 }), 3)).not.toEqual(a.slice(0, 3));
  });

  it('shuffle: false keeps file order; dropLast drops the one short batch', () => {
    const plain = ids(new BatchLoader(examples, { ...base, shuffle: false }), 3).map((b) => b.rows);
    expect(plain).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9, 10],
    ]);
    const dl = new BatchLoader(examples, { ...base, dropLast: true });
    expect(dl.batchesPerEpoch).toBe(2);
    expect(ids(dl, 4).every((b) => b.rows.length === 4)).toBe(true);
    expect(dataError(() => new BatchLoader(examples, { ...base, batchSize: 11, dropLast: true })).code).toBe(
      'BAD_OPTION',
    );
    expect(dataError(() => new BatchLoader([], base)).code).toBe('EMPTY');
  });

  it('length grouping sorts within mega-batches, shuffles batch order, and pads less', () => {
    const many = Array.from({ length: 64 }, (_, i) => lm(i + 1, 1 + ((i * 37) % 50)));
    const padding = (l: BatchLoader<LmExample>) => {
      let pad = 0;
      for (let i = 0; i < l.batchesPerEpoch; i++) {
        const b = l.next();
        pad += b.batchSize * b.seqLength - b.tokens;
      }
      return pad;
    };
    const opts = { ...base, batchSize: 4 };
    const grouped = new BatchLoader(many, { ...opts, groupByLength: 4 });
    const seen: number[] = [];
    for (let i = 0; i < grouped.batchesPerEpoch; i++) {
      const b = grouped.next();
      seen.push(...b.sources.map((s) => s.row));
      const lens = b.sources.map((s) => many[s.row - 1].inputIds.length);
      expect(lens).toEqual([...lens].sort((x, y) => y - x));
    }
    expect(seen.sort((x, y) => x - y)).toEqual(many.map((_, i) => i + 1));
    expect(padding(new BatchLoader(many, { ...opts, groupByLength: 4 }))).toBeLessThan(
      padding(new BatchLoader(many, opts)) / 2,
    );
    // Batch order is shuffled: the longest batch is not always first.
    const firsts = new Set(
      [1, 2, 3, 4, 5].map(
        (seed) => new BatchLoader(many, { ...opts, seed, groupByLength: 16 }).next().seqLength,
      ),
    );
    expect(firsts.size).toBeGreaterThan(1);
  });

  it('resuming from any position continues with exactly the batches an uninterrupted loader produces', () => {
    for (const extra of [{}, { groupByLength: 2 }, { dropLast: true }] as Partial<LoaderOptions>[]) {
      const opts = { ...base, ...extra };
      const reference = ids(new BatchLoader(examples, opts), 12);
      const live = new BatchLoader(examples, opts);
      for (let k = 0; k <= 8; k++) {
        // A checkpoint goes through JSON on disk.
        const saved = JSON.parse(JSON.stringify(live.position())) as DataPosition;
        expect(ids(new BatchLoader(examples, opts, saved), 4)).toEqual(reference.slice(k, k + 4));
        live.next();
      }
    }
  });

  it('a position from other data or options is refused', () => {
    const l = new BatchLoader(examples, base);
    l.next();
    const pos = l.position();
    expect(dataError(() => new BatchLoader(examples, { ...base, batchSize: 3 }, pos)).code).toBe(
      'POSITION_MISMATCH',
    );
    expect(dataError(() => new BatchLoader(examples.slice(1), base, pos)).code).toBe('POSITION_MISMATCH');
    const edited = examples.map((e, i) => (i === 5 ? lm(6, e.inputIds.length, 0) : e));
    expect(dataError(() => new BatchLoader(edited, base, pos)).code).toBe('POSITION_MISMATCH');
    expect(dataError(() => new BatchLoader(examples, base, { ...pos, index: 4 })).code).toBe(
      'POSITION_MISMATCH',
    );
  });

  it('epochsDone counts finished epochs', () => {
    const l = new BatchLoader(examples, base);
    expect(l.epochsDone).toBe(0);
    for (let i = 0; i < 3; i++) l.next();
    expect([l.epoch, l.epochsDone]).toEqual([0, 1]);
    l.next();
    expect([l.epoch, l.epochsDone]).toEqual([1, 1]);
  });
});

const realData = haveData('alpaca/alpaca_data_1k.json', 'stories260K/tok512.bin');
describe.runIf(realData)('the whole pipeline on Alpaca', () => {
  it('read, split, tokenize, batch; a resumed loader sees the same remaining batches', async () => {
    const tok = await storiesTokenizer();
    const ds = await readDataset(data('alpaca/alpaca_data_1k.json'));
    const { train, validation } = splitValidation(ds.records.slice(0, 200), { validation: 0.1, seed: 3 });
    expect([train.length, validation.length]).toEqual([180, 20]);
    const tr = tokenizeDataset(train, { type: 'instruction' }, tok, { maxLength: 192 });
    expect(tr.report.examples + tr.report.dropped.length).toBe(180);
    const opts: LoaderOptions = { batchSize: 8, seed: 11, padId: padIdOf(tok), groupByLength: 4 };
    const first = new BatchLoader(tr.examples, opts);
    const all = Array.from({ length: 40 }, () => first.next());
    const again = new BatchLoader(tr.examples, opts);
    for (let i = 0; i < 17; i++) again.next();
    const resumed = new BatchLoader(tr.examples, opts, JSON.parse(JSON.stringify(again.position())));
    const rest = Array.from({ length: 23 }, () => resumed.next());
    expect(rest).toEqual(all.slice(17));
    for (const b of all) {
      expect(b.seqLength).toBeLessThanOrEqual(192);
      // Padding carries no loss and no attention.
      b.attentionMask.forEach((m, i) => {
        if (m === 0) expect([b.inputIds[i], b.labels[i]]).toEqual([2, IGNORE_INDEX]);
      });
    }
  });
});
