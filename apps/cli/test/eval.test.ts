/**
 * `sharelora eval` and `sharelora eval-merge`, run as a user runs them (the built binary): the real
 * stories260K model on GSM8K, MMLU, MMLU-Pro and HumanEval, a tiny RoBERTa classifier on GLUE, and
 * HumanEval completions without a model, each with a small --limit; sharded runs merged must equal
 * the unsharded run byte for byte.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adapterParameters, injectAdapter, presetConfig } from '@sharelora/adapters';
import { saveAdapter } from '@sharelora/adapters/node';
import { assignTensor } from '@sharelora/core';
import { init, Rng, shutdown } from '@sharelora/core/node';
import { type EvalResult, readResult } from '@sharelora/eval';
import { loadModel } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');
const data = (...parts: string[]) => join(DATA, ...parts);
const NEEDED = [
  'stories260K/stories260K.bin',
  'stories260K/tok512.bin',
  'gsm8k/test.jsonl',
  'mmlu/test',
  'mmlu_pro/mmlu_pro_validation.jsonl',
  'humaneval/HumanEval.jsonl',
  'glue/SST-2/dev.tsv',
];
const missing = NEEDED.filter((p) => !existsSync(data(p)));
if (missing.length > 0 && process.env.CI !== 'true') {
  console.warn(
    `SKIPPING the sharelora eval CLI tests: ${missing.join(', ')} not found in ${DATA} (set SHARELORA_DATA)`,
  );
}
/** In CI missing data fails the run instead of skipping. */
const itData = missing.length === 0 || process.env.CI === 'true' ? it : it.skip;

let tmp = '';
const at = (...parts: string[]) => join(tmp, ...parts);
const STORIES = () => at('stories');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-eval-cli-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

function evalCli(args: string[]) {
  const r = runCli(['eval', ...args]);
  expect(r.status, `sharelora eval ${args.join(' ')}\n${r.stderr}`).toBe(0);
  // Not a TTY: progress, if the run is long enough for any, comes as plain lines, never redrawn.
  expect(r.stderr.includes('\r') || r.stderr.includes('\u001b')).toBe(false);
  return r;
}

/** Reads a results file and checks what every task's file holds. */
async function checkResultFile(file: string, task: string, model: string): Promise<EvalResult> {
  const r = await readResult(file);
  expect(Object.keys(r)).toEqual(['model', 'adapter', 'task', 'settings', 'metrics', 'samples']);
  expect(r).toMatchObject({ model, adapter: null, task });
  expect(r.samples.length).toBe(r.settings.documents);
  expect((r.metrics as { n: number }).n).toBe(r.samples.length);
  expect(r.samples.map((s) => s.doc)).toEqual([...r.samples.map((s) => s.doc)].sort((a, b) => a - b));
  return r;
}

/** Documents of LM tasks carry their prompt, the model's output and the verdict. */
function expectPromptOutputVerdict(r: EvalResult): void {
  for (const s of r.samples) {
    expect(typeof s.prompt).toBe('string');
    expect((s.prompt as string).length).toBeGreaterThan(0);
    expect(s).toHaveProperty('output');
    expect(s).toHaveProperty('verdict');
  }
}

/** Runs the same evaluation whole and as two shards; the merged shards must equal the whole, byte for byte. */
async function expectShardsMerge(name: string, args: string[]): Promise<void> {
  const whole = at(`${name}.json`);
  const shards = [0, 1].map((i) => at(`${name}-shard${i}.json`));
  for (const [i, file] of shards.entries()) evalCli([...args, '--shard', `${i}/2`, '--out', file]);
  const merged = at(`${name}-merged.json`);
  // Shards in reverse order: the merge orders the documents itself.
  const m = runCli(['eval-merge', '--out', merged, ...[...shards].reverse()]);
  expect(m.status, m.stderr).toBe(0);
  expect(m.stdout).toContain(`results written to ${merged}`);
  expect(await readFile(merged, 'utf8')).toBe(await readFile(whole, 'utf8'));
  const parts = await Promise.all(shards.map((f) => readResult(f)));
  expect(parts.map((p) => p.settings.shard)).toEqual([
    { index: 0, count: 2 },
    { index: 1, count: 2 },
  ]);
  expect(parts.every((p) => p.samples.length > 0)).toBe(true);
}

describe('sharelora eval on stories260K', () => {
  itData('imports stories260K for the tests', () => {
    const r = runCli([
      'import',
      '--from',
      'llama2c',
      data('stories260K', 'stories260K.bin'),
      '--tokenizer',
      data('stories260K', 'tok512.bin'),
      '--out',
      STORIES(),
    ]);
    expect(r.status, r.stderr).toBe(0);
  });

  const gsm8k = (limit: number) => [
    '--task',
    'gsm8k',
    '--data',
    data('gsm8k'),
    '--limit',
    `${limit}`,
    '--shots',
    '1',
    '--max-new-tokens',
    '12',
  ];

  itData(
    'gsm8k: a valid results file and the metrics as JSON; shards merged equal the whole run',
    async () => {
      const out = at('gsm8k.json');
      const r = evalCli(['--model', STORIES(), ...gsm8k(3), '--out', out, '--json']);
      const printed = JSON.parse(r.stdout);
      const result = await checkResultFile(out, 'gsm8k', STORIES());
      expect(printed).toEqual({
        task: 'gsm8k',
        model: STORIES(),
        adapter: null,
        out,
        metrics: result.metrics,
        throughput: { problems: 3, seconds: expect.any(Number), problemsPerSec: expect.any(Number) },
      });
      expect(printed.throughput.problemsPerSec).toBeCloseTo(3 / printed.throughput.seconds, 6);
      expect(result.settings).toMatchObject({
        limit: 3,
        shard: null,
        documents: 3,
        shots: 1,
        maxNewTokens: 12,
      });
      expectPromptOutputVerdict(result);
      for (const s of result.samples) {
        // The output is the continuation only, never the prompt again.
        expect(s.output as string).not.toContain('Question:');
        expect(Object.keys(s.verdict as object)).toEqual(['strict-match', 'flexible-extract']);
      }
      await expectShardsMerge('gsm8k', ['--model', STORIES(), ...gsm8k(3)]);
    },
  );

  itData(
    'gsm8k --limit 20 decoded 20 rows per call equals one row per call, and prints problems/s',
    async () => {
      const run = (batch: number) => {
        const out = at(`gsm8k-b${batch}.json`);
        // Zero shots keep the prompts short: the point is the batching, not the prefill.
        const args = [
          ...gsm8k(20).map((a, i, all) => (all[i - 1] === '--shots' ? '0' : a)),
          '--batch-size',
          `${batch}`,
        ];
        const r = evalCli(['--model', STORIES(), ...args, '--out', out]);
        expect(r.stdout).toMatch(/^speed +[\d.]+ problems\/s \(20 in [\d.]+ s\)$/m);
        return readResult(out);
      };
      const batched = await run(20);
      const single = await run(1);
      expect(batched.samples).toHaveLength(20);
      expect(batched.samples).toEqual(single.samples);
      expect(batched.metrics).toEqual(single.metrics);
    },
  );

  itData('applies --adapter and records it', async () => {
    const adapterDir = at('adapter');
    await init();
    try {
      const { model } = await loadModel(STORIES());
      injectAdapter(model, presetConfig('share-a', { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] }));
      // B starts at zero: random values make the adapter change the text.
      const rng = new Rng(3);
      for (const p of adapterParameters(model, 'default')) {
        assignTensor(p.value, {
          data: Float32Array.from({ length: p.value.size }, () => rng.normal()),
          shape: p.shape,
        });
      }
      await saveAdapter(model, adapterDir);
      model.dispose();
    } finally {
      shutdown();
    }
    const out = at('gsm8k-adapter.json');
    evalCli(['--model', STORIES(), '--adapter', adapterDir, ...gsm8k(1), '--out', out]);
    const withAdapter = await readResult(out);
    const without = await readResult(at('gsm8k.json'));
    expect(withAdapter.adapter).toBe(adapterDir);
    expect(withAdapter.samples[0].prompt).toBe(without.samples[0].prompt);
    expect(withAdapter.samples[0].output).not.toBe(without.samples[0].output);
  });

  itData('mmlu: log-likelihood scores of shards merged equal the whole run byte for byte', async () => {
    // Two subjects keep it small (--limit applies per subject, and MMLU has 57).
    const mmlu = at('mmlu-data');
    for (const [split, subject] of [
      ['dev', 'astronomy'],
      ['dev', 'marketing'],
      ['test', 'astronomy'],
      ['test', 'marketing'],
    ]) {
      await mkdir(join(mmlu, split), { recursive: true });
      await copyFile(
        data('mmlu', split, `${subject}_${split}.csv`),
        join(mmlu, split, `${subject}_${split}.csv`),
      );
    }
    const args = [
      '--model',
      STORIES(),
      '--task',
      'mmlu',
      '--data',
      mmlu,
      '--limit',
      '1',
      '--shots',
      '1',
      '--batch-size',
      '3',
    ];
    const out = at('mmlu.json');
    const r = evalCli([...args, '--out', out]);
    expect(r.stdout).toMatch(/\| astronomy \| stem \| 1 \|/);
    const result = await checkResultFile(out, 'mmlu', STORIES());
    expect(result.settings).toMatchObject({ scoring: 'loglikelihood', shots: 1, documents: 2 });
    expectPromptOutputVerdict(result);
    for (const s of result.samples) {
      expect(s.prompt as string).toMatch(
        /^The following are multiple choice questions \(with answers\) about /,
      );
      expect(s.scores).toHaveLength(4);
    }
    await expectShardsMerge('mmlu', args);
  });

  itData('mmlu-pro: chain-of-thought generation writes a valid results file', async () => {
    // One test question and the validation split: a category's 5-shot CoT prompt is long.
    const dir = at('mmlu-pro-data');
    await mkdir(dir);
    const test = (await readFile(data('mmlu_pro', 'mmlu_pro_test_subset400.jsonl'), 'utf8')).split('\n')[0];
    await writeFile(join(dir, 'mmlu_pro_test.jsonl'), `${test}\n`);
    await copyFile(data('mmlu_pro', 'mmlu_pro_validation.jsonl'), join(dir, 'mmlu_pro_validation.jsonl'));
    const out = at('mmlu-pro.json');
    evalCli([
      '--model',
      STORIES(),
      '--task',
      'mmlu-pro',
      '--data',
      dir,
      '--shots',
      '0',
      '--max-new-tokens',
      '8',
      '--out',
      out,
    ]);
    const result = await checkResultFile(out, 'mmlu-pro', STORIES());
    expect(result.settings).toMatchObject({ scoring: 'cot', documents: 1 });
    expectPromptOutputVerdict(result);
  });

  itData('humaneval: generated completions are executed and scored', async () => {
    const out = at('humaneval.json');
    const r = evalCli([
      '--model',
      STORIES(),
      '--task',
      'humaneval',
      '--data',
      data('humaneval'),
      '--limit',
      '2',
      '--max-new-tokens',
      '16',
      '--out',
      out,
    ]);
    expect(r.stdout).toMatch(/pass_at_k\.pass@1\s+0/);
    const result = await checkResultFile(out, 'humaneval', STORIES());
    expect(result.settings).toMatchObject({ source: 'model', samples: 1, k: [1], maxNewTokens: 16 });
    for (const s of result.samples) {
      expect(s.prompt as string).toMatch(/^(from|import|def) /m);
      expect(s.outputs).toHaveLength(1);
      expect(s.verdicts).toHaveLength(1);
    }
  });
});

describe('sharelora eval without a language model', () => {
  itData('humaneval --completions: the canonical solutions score pass@1 = 1', async () => {
    const problems = (await readFile(data('humaneval', 'HumanEval.jsonl'), 'utf8')).trim().split('\n');
    const samples = at('canonical.jsonl');
    await writeFile(
      samples,
      problems
        .map((line) => {
          const p = JSON.parse(line);
          return JSON.stringify({ task_id: p.task_id, completion: p.canonical_solution });
        })
        .join('\n'),
    );
    const out = at('canonical.json');
    const r = evalCli([
      '--task',
      'humaneval',
      '--completions',
      samples,
      '--data',
      data('humaneval'),
      '--limit',
      '20',
      '--k',
      '1',
      '--out',
      out,
      '--json',
    ]);
    expect(JSON.parse(r.stdout).metrics.pass_at_k).toEqual({ 'pass@1': 1 });
    const result = await checkResultFile(out, 'humaneval', samples);
    expect(result.samples).toHaveLength(20);
    expect(result.samples.every((s) => (s.verdicts as string[])[0] === 'passed')).toBe(true);
  });

  itData(
    'humaneval --completions with k above the samples per problem: pass@1 heads, the large k is named',
    async () => {
      const problem = JSON.parse(
        (await readFile(data('humaneval', 'HumanEval.jsonl'), 'utf8')).split('\n')[0],
      );
      const samples = at('one-sample.jsonl');
      await writeFile(
        samples,
        JSON.stringify({ task_id: problem.task_id, completion: problem.canonical_solution }),
      );
      const out = at('one-sample.json');
      const args = [
        '--task',
        'humaneval',
        '--completions',
        samples,
        '--data',
        data('humaneval'),
        '--out',
        out,
      ];
      const r = evalCli([...args, '--k', '5']);
      expect(r.stdout).toMatch(/headline\s+pass@1 = 1\n/);
      expect(r.stdout).toMatch(
        /not_estimable\.pass@5\s+needs at least 5 samples of every problem; the fewest here is 1\n/,
      );
    },
  );

  itData('glue-sst2 and glue-stsb with a tiny RoBERTa sequence classifier', async () => {
    const dir = at('roberta');
    const init = runCli(['init', '--arch', 'roberta', '--preset', 'tiny', '--out', dir]);
    expect(init.status, init.stderr).toBe(0);
    // The preset is a masked LM: declare a two-class head (its weights are then initialised at random).
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    Object.assign(config, { architectures: ['RobertaForSequenceClassification'], num_labels: 2 });
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));

    const out = at('sst2.json');
    const r = evalCli([
      '--model',
      dir,
      '--task',
      'glue-sst2',
      '--data',
      data('glue'),
      '--limit',
      '8',
      '--out',
      out,
    ]);
    expect(r.stderr).toMatch(/warning: .* has no classifier\.dense\.weight.*random/);
    expect(r.stdout).toMatch(/^accuracy\s+\d/m);
    const result = await checkResultFile(out, 'glue-sst2', dir);
    expect(result.settings).toMatchObject({ glueTask: 'sst2', documents: 8 });
    for (const s of result.samples) {
      expect(typeof s.text).toBe('string');
      expect([0, 1]).toContain(s.output);
      expect(s.verdict).toBe(s.output === s.target);
    }

    const stsb = runCli([
      'eval',
      '--model',
      dir,
      '--task',
      'glue-stsb',
      '--data',
      data('glue'),
      '--limit',
      '4',
      '--out',
      at('stsb.json'),
    ]);
    expect(stsb.status).toBe(2);
    expect(stsb.stderr).toMatch(/num_labels is 2 but glue-stsb needs 1/);
  });
});

describe('sharelora eval-merge prints what the task definition asks', () => {
  /** Two shards of one run, one document each. */
  const shards = (task: string, settings: object, samples: object[]) =>
    Promise.all(
      samples.map(async (sample, index) => {
        const file = at(`${task}-shard-${index}.json`);
        const shard = { index, count: 2 };
        const result = {
          model: 'm',
          adapter: null,
          task,
          settings: { limit: null, shard, documents: 2, ...settings },
        };
        await writeFile(
          file,
          JSON.stringify({ ...result, metrics: {}, samples: [{ doc: index, ...sample }] }),
        );
        return file;
      }),
    );

  it("MMLU's subject and category tables, MMLU-Pro's category table, not as metric rows", async () => {
    const mmlu = await shards('mmlu', { scoring: 'loglikelihood' }, [
      { subject: 'astronomy', verdict: true },
      { subject: 'marketing', verdict: false },
    ]);
    const a = runCli(['eval-merge', '--out', at('mmlu-merged.json'), ...mmlu]);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toContain('| stem | 1 | 1 | 100.00 | 100.00 |');
    expect(a.stdout).toContain('| marketing | other | 1 | 0.00 |');
    expect(a.stdout).toMatch(/^acc_macro +0\.5000$/m);
    expect(a.stdout).not.toMatch(/^(subjects|categories)\./m);
    const verdict = (v: boolean) => ({
      verdict: { 'custom-extract': v, cascade: v },
      extracted: { cascade: 'A' },
    });
    const pro = await shards('mmlu-pro', { scoring: 'cot' }, [
      { category: 'math', ...verdict(true) },
      { category: 'law', ...verdict(false) },
    ]);
    const b = runCli(['eval-merge', '--out', at('mmlu-pro-merged.json'), ...pro]);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toContain(
      [
        '| category | n | custom-extract | cascade |',
        '| --- | ---: | ---: | ---: |',
        '| law | 1 | 0 | 0 |',
        '| math | 1 | 1 | 1 |',
      ].join('\n'),
    );
    expect(b.stdout).toMatch(/^accuracy\.cascade +0\.5000$/m);
    expect(b.stdout).not.toMatch(/^categories\./m);
  });
});

describe('sharelora eval usage and input errors', () => {
  it('exit 2 with one line naming the flag or file', async () => {
    const shard = (index: number, task = 'gsm8k') => ({
      model: 'm',
      adapter: null,
      task,
      settings: { limit: 2, shard: { index, count: 2 }, documents: 2 },
      metrics: {},
      samples: [{ doc: index }],
    });
    const files = await Promise.all(
      [shard(0), shard(1, 'mmlu')].map(async (r, i) => {
        const f = at(`fake-shard-${i}.json`);
        await writeFile(f, JSON.stringify(r));
        return f;
      }),
    );
    const base = ['--data', tmp, '--out', at('x.json')];
    const cases: Array<[string[], RegExp]> = [
      [['eval', '--model', tmp, ...base], /--task is required/],
      [['eval', '--model', tmp, '--task', 'squad', ...base], /--task must be one of .*glue-sst2/],
      [['eval', '--task', 'gsm8k', ...base], /--model DIR is required/],
      [['eval', '--model', tmp, '--task', 'gsm8k', '--out', at('x.json')], /--data/],
      [['eval', '--model', tmp, '--task', 'gsm8k', '--data', tmp], /--out/],
      [
        ['eval', '--model', tmp, '--task', 'gsm8k', ...base, '--samples', '4'],
        /--samples does not apply to --task gsm8k/,
      ],
      [
        ['eval', '--model', tmp, '--task', 'mmlu', ...base, '--temperature', '0.5'],
        /--temperature does not apply/,
      ],
      [
        ['eval', '--model', tmp, '--task', 'gsm8k', ...base, '--shard', '2/2'],
        /--shard 2\/2: shard index must be in 0\.\.1/,
      ],
      [
        ['eval', '--model', tmp, '--task', 'gsm8k', ...base, '--shard', 'half'],
        /--shard must look like I\/N/,
      ],
      [
        ['eval', '--model', tmp, '--task', 'gsm8k', ...base, '--limit', '0'],
        /--limit must be a positive integer/,
      ],
      [['eval', '--model', tmp, '--task', 'humaneval', ...base, '--k', '1,x'], /--k must be/],
      [
        ['eval', '--model', tmp, '--task', 'mmlu', ...base, '--mmlu-scoring', 'vibes'],
        /--mmlu-scoring must be one of/,
      ],
      [['eval', '--model', at('nowhere'), '--task', 'gsm8k', ...base], /--model .*nowhere/],
      [
        ['eval', '--model', tmp, '--task', 'gsm8k', '--data', at('no-data'), '--out', at('x.json')],
        /--data .*no-data/,
      ],
      [
        ['eval', '--model', tmp, '--task', 'humaneval', '--completions', at('c.jsonl'), ...base],
        /--model does not apply .*--completions/,
      ],
      [
        ['eval', '--task', 'humaneval', '--completions', at('missing.jsonl'), ...base],
        /--completions .*missing\.jsonl/,
      ],
      [['eval', '--model', tmp, '--task', 'gsm8k', ...base, '--bogus'], /--bogus/],
      [['eval-merge', '--out', at('m.json')], /shard files/],
      [['eval-merge', at('fake-shard-0.json')], /--out/],
      [['eval-merge', '--out', at('m.json'), files[0]], /missing shard\(s\) 1\/2/],
      [['eval-merge', '--out', at('m.json'), ...files], /has task "mmlu"/],
      [['eval-merge', '--out', at('m.json'), files[0], at('absent.json')], /absent\.json: file not found/],
    ];
    for (const [args, pattern] of cases) {
      const r = runCli(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Warning:'));
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0], args.join(' ')).toMatch(pattern);
    }
  });

  it('--help lists every task and the merge command', () => {
    const r = runCli(['eval', '--help']);
    expect(r.status).toBe(0);
    for (const task of [
      'gsm8k-paper',
      'mmlu-pro',
      'humaneval',
      'glue-sst2',
      'glue-mrpc',
      'glue-stsb',
      'glue-rte',
    ])
      expect(r.stdout).toContain(task);
    expect(r.stdout).toContain("'sharelora eval-merge'");
    const m = runCli(['eval-merge', '--help']);
    expect(m.status).toBe(0);
    expect(m.stdout).toMatch(/^Usage: sharelora eval-merge --out FILE/);
    expect(runCli(['--help']).stdout).toMatch(/eval-merge/);
  });
});

describe('sharelora eval: outputs it must not write', () => {
  // Two HumanEval-format problems, so the checks are tested on a run that would otherwise succeed.
  const problems = [
    { task_id: 'T/0', prompt: 'def inc(x):\n', canonical_solution: '    return x + 1\n', entry_point: 'inc' },
    { task_id: 'T/1', prompt: 'def dbl(x):\n', canonical_solution: '    return 2 * x\n', entry_point: 'dbl' },
  ].map((p) => ({ ...p, test: `def check(f):\n    assert f(3) == ${p.task_id === 'T/0' ? 4 : 6}\n` }));
  let folder = '';
  let completions = '';
  const run = (out: string, ...extra: string[]) =>
    runCli([
      'eval',
      '--task',
      'humaneval',
      '--completions',
      completions,
      '--data',
      folder,
      '--out',
      out,
      ...extra,
    ]);

  beforeAll(async () => {
    folder = at('tiny-humaneval');
    completions = at('tiny-completions.jsonl');
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'HumanEval.jsonl'), problems.map((p) => JSON.stringify(p)).join('\n'));
    await writeFile(
      completions,
      problems
        .map((p) => JSON.stringify({ task_id: p.task_id, completion: p.canonical_solution }))
        .join('\n'),
    );
  });

  it('an --out that is an input, lies in the --data folder, is a directory or another file: exit 2, nothing changed', async () => {
    const notes = at('notes.txt');
    await writeFile(notes, 'mine');
    const dir = at('results-dir');
    await mkdir(dir, { recursive: true });
    const files = [completions, join(folder, 'HumanEval.jsonl'), notes];
    const before = await Promise.all(files.map((f) => readFile(f)));
    const cases: Array<[string, RegExp]> = [
      [completions, /is the --completions input/],
      [join(folder, 'HumanEval.jsonl'), /inside the --data folder/],
      [join(folder, 'results.json'), /inside the --data folder/],
      [dir, /is a directory/],
      [notes, /exists and is not a sharelora results file/],
    ];
    for (const [out, message] of cases) {
      const r = run(out);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const after = await Promise.all(files.map((f) => readFile(f)));
    for (const [i, b] of before.entries()) expect(Buffer.compare(after[i], b), files[i]).toBe(0);
    expect(existsSync(join(folder, 'results.json'))).toBe(false);
    // Nothing beside the directory either (a failed write once left DIR.tmp-<pid>).
    expect((await readdir(tmp)).filter((n) => n.startsWith('results-dir.'))).toEqual([]);
  });

  it('an earlier results file is replaced; eval-merge refuses to write over a shard', async () => {
    const out = at('tiny-results.json');
    for (let i = 0; i < 2; i++) {
      const r = run(out, '--json');
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).metrics.pass_at_k).toEqual({ 'pass@1': 1 });
    }
    expect(existsSync(`${out}.lock`)).toBe(false);
    const merge = runCli(['eval-merge', '--out', out, out]);
    expect(merge.status, merge.stderr).toBe(2);
    expect(merge.stderr).toMatch(/is the shard input/);
  });

  it('an --out another live process has locked is refused, naming it', async () => {
    const out = at('locked-results.json');
    // This test's own process holds it: alive, and on this host.
    const holder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command: 'test' };
    await writeFile(`${out}.lock`, JSON.stringify(holder));
    const r = run(out);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`in use by process ${process.pid} on ${hostname()}`);
    expect(existsSync(out)).toBe(false);
  });
});
