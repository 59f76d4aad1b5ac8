import { describe, expect, it } from 'vitest';
import {
  buildReport,
  type CellRecord,
  ExperimentError,
  expandCells,
  parseExperiment,
  reportCsv,
  reportMarkdown,
  selectCells,
  stat,
  trainOptions,
} from '../src/index.js';

const BASE = `
name: grid
models:
  tiny: { init: { arch: llama, preset: tiny } }
datasets:
  add: { train: add.jsonl, format: prompt-completion, eval: add-test.jsonl }
methods:
  lora: { method: lora, rank: 4, alpha: 8 }
  share-a: { method: share-a, rank: 4, alpha: 8, lr: 0.003 }
training: { steps: 10, batch-size: 4, lr: 0.001, targets: [q, v] }
seeds: [0, 1]
`;

function errorOf(text: string): ExperimentError {
  try {
    parseExperiment(text, 'exp.yaml');
  } catch (e) {
    if (e instanceof ExperimentError) return e;
    throw e;
  }
  throw new Error('parsed without error');
}

describe('experiment file', () => {
  it('parses YAML and JSON alike, with defaults', () => {
    const yaml = parseExperiment(BASE, 'exp.yaml');
    const json = parseExperiment(JSON.stringify(yaml), 'exp.json');
    expect(json).toEqual(yaml);
    expect(yaml.evaluations).toEqual([]);
    expect(yaml.models.tiny.init).toEqual({ arch: 'llama', preset: 'tiny', seed: 0 });
  });

  it('names the key of every error', () => {
    const e = errorOf(
      BASE.replace('rank: 4, alpha: 8 }', 'rank: -4, alpha: 8 }')
        .replace('batch-size: 4', 'batch_size: 4')
        .replace('format: prompt-completion, ', ''),
    );
    expect(e.issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^methods\.lora\.rank: /),
        expect.stringMatching(/^training: .*batch_size/),
        expect.stringMatching(/^datasets\.add\.format: /),
      ]),
    );
    expect(e.message).toContain('exp.yaml');
  });

  it('refuses a model with no source or two', () => {
    expect(errorOf(BASE.replace('{ init: { arch: llama, preset: tiny } }', '{}')).issues[0]).toMatch(
      /^models\.tiny: give exactly one of "path", "init" and "import"/,
    );
    expect(
      errorOf(
        BASE.replace(
          '{ init: { arch: llama, preset: tiny } }',
          '{ path: m, init: { arch: llama, preset: tiny } }',
        ),
      ).issues[0],
    ).toMatch(/^models\.tiny: /);
  });

  it('refuses names that cannot be folder names, repeated seeds and bad YAML', () => {
    expect(errorOf(BASE.replace('  lora:', '  "lo ra":')).issues[0]).toMatch(/^methods\.lo ra: /);
    expect(errorOf(BASE.replace('seeds: [0, 1]', 'seeds: [1, 1]')).issues[0]).toMatch(/^seeds: seeds repeat/);
    expect(errorOf('name: [unclosed').issues[0]).toMatch(/not valid YAML/);
  });
});

describe('sequences', () => {
  const SEQ = `
name: continual
models:
  tiny: { init: { arch: llama, preset: tiny } }
datasets:
  add: { train: add.jsonl, format: prompt-completion, eval: add-test.jsonl }
  sub: { train: sub.jsonl, format: prompt-completion, eval: sub-test.jsonl }
methods:
  lora: { method: lora }
  share-a: { method: share-a }
grid: [add]
sequences:
  add-sub: [add, sub]
`;

  it('add one cell per model, method and seed after the grid', () => {
    const cells = expandCells(parseExperiment(SEQ, 'x'));
    expect(cells.map((c) => [c.kind, c.name])).toEqual([
      ['grid', 'tiny/add/lora/seed-0'],
      ['grid', 'tiny/add/share-a/seed-0'],
      ['sequence', 'tiny/add-sub/lora/seed-0'],
      ['sequence', 'tiny/add-sub/share-a/seed-0'],
    ]);
    expect(cells[2].settings.sequence?.map((s) => s.name)).toEqual(['add', 'sub']);
    expect(cells[2].settings.dataset).toBeUndefined();
  });

  it('name unknown datasets and datasets without an eval file', () => {
    const text = SEQ.replace('  add-sub: [add, sub]', '  s: [add, nope]\n  t: [add, plain]').replace(
      'datasets:\n',
      'datasets:\n  plain: { train: p.jsonl, format: text }\n',
    );
    expect(errorOf(text).issues).toEqual([
      'sequences.s[1]: no dataset "nope"',
      'sequences.t[1]: dataset "plain" needs an eval file: every stage is scored on it',
    ]);
  });
});

describe('cells', () => {
  const exp = parseExperiment(BASE, 'exp.yaml');
  const cells = expandCells(exp);

  it('are the cross product in file order, each with its index', () => {
    expect(cells.map((c) => c.name)).toEqual([
      'tiny/add/lora/seed-0',
      'tiny/add/lora/seed-1',
      'tiny/add/share-a/seed-0',
      'tiny/add/share-a/seed-1',
    ]);
    expect(cells.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(new Set(cells.map((c) => c.id)).size).toBe(4);
  });

  it('keep their ids when other cells are added, and change them when their settings change', () => {
    const more = expandCells(
      parseExperiment(
        BASE.replace('seeds: [0, 1]', 'seeds: [0, 1, 2]').replace(
          'methods:',
          'methods:\n  ab: { method: share-ab }',
        ),
        'x',
      ),
    );
    for (const c of cells) expect(more.find((m) => m.name === c.name)?.id).toBe(c.id);
    const changed = expandCells(parseExperiment(BASE.replace('steps: 10', 'steps: 11'), 'x'));
    for (const c of cells) expect(changed.find((m) => m.name === c.name)?.id).not.toBe(c.id);
    // Key order in the file does not matter.
    const reordered = expandCells(
      parseExperiment(BASE.replace('rank: 4, alpha: 8 }', 'alpha: 8, rank: 4 }'), 'x'),
    );
    expect(reordered.map((c) => c.id)).toEqual(cells.map((c) => c.id));
  });

  it('are picked by id, name or index', () => {
    expect(selectCells(cells, [cells[2].id, 'tiny/add/lora/seed-1', '3']).map((c) => c.index)).toEqual([
      2, 1, 3,
    ]);
    expect(() => selectCells(cells, ['9'])).toThrow(/no cell "9"/);
  });

  it("turn into train's options: the method's lr and targets win, the seed and format go in", () => {
    expect(trainOptions(cells[2].settings, exp.datasets.add)).toEqual({
      steps: 10,
      'batch-size': 4,
      lr: 0.003,
      targets: ['q', 'v'],
      method: 'share-a',
      rank: 4,
      alpha: 8,
      format: 'prompt-completion',
      seed: 0,
    });
  });

  it("take a dataset's own training settings over the shared ones, and run its own evaluations", () => {
    const own = parseExperiment(
      BASE.replace(
        'add: { train: add.jsonl, format: prompt-completion, eval: add-test.jsonl }',
        'add: { train: add.jsonl, format: prompt-completion, training: { steps: 30, lr: 0.01 }, ' +
          'evaluations: [{ task: loss, data: add-test.jsonl }] }',
      ).replace('seeds: [0, 1]', 'seeds: [0, 1]\nevaluations: [{ task: gsm8k, data: gsm8k }]'),
      'x',
    );
    const [lora, shareA] = expandCells(own).filter((c) => c.seed === 0);
    expect(trainOptions(lora.settings, own.datasets.add)).toMatchObject({
      steps: 30,
      lr: 0.01,
      'batch-size': 4,
    });
    // The method's lr still wins over the dataset's.
    expect(trainOptions(shareA.settings, own.datasets.add)).toMatchObject({ steps: 30, lr: 0.003 });
    expect(lora.settings.evaluations.map((e) => e.task)).toEqual(['gsm8k', 'loss']);
    expect(
      errorOf(BASE.replace('format: prompt-completion,', 'format: prompt-completion, training: { step: 3 },'))
        .message,
    ).toMatch(/datasets\.add\.training: .*step/);
  });
});

describe('report', () => {
  it('stat is the mean and the sample standard deviation', () => {
    const s = stat([1, 2, 4]);
    expect(s?.mean).toBeCloseTo(7 / 3, 12);
    // Σ(x − 7/3)² = 14/3; over n − 1 = 2: 7/3.
    expect(s?.std).toBeCloseTo(Math.sqrt(7 / 3), 12);
    expect(stat([5])).toEqual({ mean: 5, std: null, n: 1 });
    expect(stat([])).toBeNull();
  });

  const cells = expandCells(parseExperiment(BASE, 'exp.yaml'));
  const record = (i: number, loss: number, status: CellRecord['status'] = 'complete'): CellRecord => ({
    ...cells[i],
    status,
    attempts: 1,
    started: '2026-01-01T00:00:00Z',
    seconds: 10 + i,
    versions: {},
    ...(status === 'failed' ? { error: 'NaN loss at step 3' } : {}),
    train: {
      lossUnit: 'nats/token',
      steps: 10,
      trainLoss: loss + 0.5,
      bestValLoss: null,
      heldOutLoss: loss,
      heldOutMetrics: {},
      trainableParams: i < 2 ? 2560 : 1600,
      optimizerBytes: i < 2 ? 20480 : 12800,
      peakBytes: 1e6,
      msPerStep: 30,
      tokensPerSec: 1000,
    },
  });

  it('groups seeds per method, counts failures and lists them', () => {
    const records = new Map([
      [cells[0].id, record(0, 2)],
      [cells[1].id, record(1, 3)],
      [cells[2].id, record(2, 1.5)],
      [cells[3].id, record(3, 0, 'failed')],
    ]);
    const r = buildReport('grid', cells, records);
    expect(r.rows.map((row) => [row.method, row.complete, row.failed])).toEqual([
      ['lora', 2, 0],
      ['share-a', 1, 1],
    ]);
    expect(r.rows[0].metrics['held-out loss']).toEqual({ mean: 2.5, std: Math.SQRT1_2, n: 2 });
    expect(r.rows[1].trainableParams).toBe(1600);
    expect(r.failures).toEqual([{ name: cells[3].name, id: cells[3].id, error: 'NaN loss at step 3' }]);
    const md = reportMarkdown(r);
    expect(md).toContain('| tiny | lora | 2/2 | 2.500 ± 0.7071 |');
    expect(md).toContain('1/2 (1 failed)');
    expect(md).toContain('NaN loss at step 3');
    const csv = reportCsv(r).split('\n');
    expect(csv[0]).toContain('held-out loss_mean,held-out loss_std,held-out loss_n');
    expect(csv[1]).toMatch(/^add,tiny,lora,2,2,0,2.5,0.7071067811865476,2,/);
  });

  it('averages the training curves of a row over its seeds, at the steps all of them have', () => {
    const records = new Map([
      [cells[0].id, record(0, 2)],
      [cells[1].id, record(1, 3)],
    ]);
    const curves = new Map([
      [
        cells[0].id,
        [
          { step: 1, loss: 4 },
          { step: 2, loss: 3 },
          { step: 3, loss: 2 },
        ],
      ],
      [
        cells[1].id,
        [
          { step: 1, loss: 6 },
          { step: 2, loss: 5 },
        ],
      ],
    ]);
    expect(buildReport('grid', cells, records, curves).curves).toEqual([
      {
        dataset: 'add',
        model: 'tiny',
        method: 'lora',
        points: [
          { step: 1, loss: 5 },
          { step: 2, loss: 4 },
        ],
      },
    ]);
  });

  it('lists cells without a record as pending', () => {
    const r = buildReport('grid', cells, new Map([[cells[0].id, record(0, 2)]]));
    expect(r.pending).toEqual(cells.slice(1).map((c) => c.name));
  });
});
