/**
 * `sharelora eval --task loss` on the real stories260K model: the per-example losses against the
 * `forward` command's transformers-semantics loss (a separate code path: full logits and the
 * shifted cross entropy), before and after fine-tuning, prompt masking, and bad usage.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '@sharelora/models';
import { textTokenizerOf, tokenizeDataset } from '@sharelora/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');
const have = existsSync(join(DATA, 'stories260K/stories260K.bin')) || process.env.CI === 'true';

let tmp = '';
const at = (...p: string[]) => join(tmp, ...p);
const names = ['Tom', 'Lily', 'Ben', 'Mia'];
const things = ['red ball', 'blue kite', 'big box'];
const stories = Array.from({ length: 12 }, (_, i) => {
  const n = names[i % 4];
  const t = things[i % 3];
  return `${n} found a ${t}. ${n} gave the ${t} to mom, and mom smiled.`;
});

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-eval-loss-'));
  if (!have) return;
  const r = runCli([
    'import',
    ...['--from', 'llama2c', join(DATA, 'stories260K/stories260K.bin')],
    ...['--tokenizer', join(DATA, 'stories260K/tok512.bin'), '--out', at('stories')],
  ]);
  expect(r.status, r.stderr).toBe(0);
  await writeFile(at('texts.jsonl'), stories.map((text) => JSON.stringify({ text })).join('\n'));
  await writeFile(
    at('qa.jsonl'),
    stories.map((s, i) => JSON.stringify({ prompt: `Who found it? ${i}\n`, completion: s })).join('\n'),
  );
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const evalLoss = (out: string, ...extra: string[]) =>
  runCli(['eval', '--task', 'loss', '--model', at('stories'), '--out', at(out), ...extra]);

describe.runIf(have)('sharelora eval --task loss', () => {
  it('each example scores as forward computes its loss; the total is the mean over target tokens', async () => {
    const r = evalLoss('base.json', '--data', at('texts.jsonl'), '--format', 'text', '--json');
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(await readFile(at('base.json'), 'utf8'));
    expect(result.samples).toHaveLength(stories.length);
    const tokens = result.samples.reduce((n: number, s: { targetTokens: number }) => n + s.targetTokens, 0);
    const sum = result.samples.reduce(
      (n: number, s: { targetTokens: number; loss: number }) => n + s.targetTokens * s.loss,
      0,
    );
    expect(result.metrics.targetTokens).toBe(tokens);
    expect(result.metrics.loss).toBeCloseTo(sum / tokens, 10);
    expect(result.metrics.perplexity).toBeCloseTo(Math.exp(result.metrics.loss), 8);
    // Exact match is the share of samples whose target is the greedy continuation.
    const greedy = result.samples.filter((s: { exactMatch: boolean }) => s.exactMatch === true).length;
    expect(result.samples.every((s: { exactMatch: unknown }) => typeof s.exactMatch === 'boolean')).toBe(
      true,
    );
    expect(result.metrics.exactMatch).toBe(greedy / result.samples.length);
    expect(JSON.parse(r.stdout).metrics.lossUnit).toBe('nats/token');

    // The same token ids through `forward`, labels = ids: transformers' shifted mean cross entropy.
    const tok = textTokenizerOf(await loadTokenizer(at('stories')));
    const { examples } = tokenizeDataset(
      stories
        .slice(0, 3)
        .map((text, i) => ({ values: { text }, source: { file: 'x', line: i + 1, row: i + 1 } })),
      { type: 'text' },
      tok,
    );
    for (const [i, ex] of examples.entries()) {
      await writeFile(at('in.json'), JSON.stringify({ input_ids: [ex.inputIds], labels: [ex.inputIds] }));
      const f = runCli(['forward', '--model', at('stories'), '--inputs', at('in.json'), '--json']);
      expect(f.status, f.stderr).toBe(0);
      expect(result.samples[i].targetTokens).toBe(ex.inputIds.length - 1);
      expect(Math.abs(result.samples[i].loss - JSON.parse(f.stdout).loss)).toBeLessThan(1e-4);
    }
  });

  it('after fine-tuning on the texts their loss falls; an untrained adapter changes nothing', async () => {
    const train = (out: string, steps: string) =>
      runCli([
        'train',
        ...['--model', at('stories'), '--data', at('texts.jsonl'), '--format', 'text', '--out', at(out)],
        ...['--rank', '4', '--targets', 'q,v', '--lr', '1e-2', '--steps', steps, '--validation', '0'],
      ]);
    for (const [out, steps] of [
      ['untrained', '0'],
      ['trained', '20'],
    ] as const)
      expect(train(out, steps).status).toBe(0);
    const score = async (adapter: string) => {
      const file = `${adapter}.json`;
      const r = evalLoss(file, '--data', at('texts.jsonl'), '--format', 'text', '--adapter', at(adapter));
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(await readFile(at(file), 'utf8')).metrics.loss as number;
    };
    const base = JSON.parse(await readFile(at('base.json'), 'utf8')).metrics.loss as number;
    expect(await score('untrained')).toBeCloseTo(base, 5);
    expect(await score('trained')).toBeLessThan(base * 0.8);
  });

  it('masks the prompt as train does, unless --train-on-source; --limit and --max-length apply', async () => {
    const run = async (...extra: string[]) => {
      const r = evalLoss('qa.json', '--data', at('qa.jsonl'), '--format', 'prompt-completion', ...extra);
      expect(r.status, r.stderr).toBe(0);
      return { result: JSON.parse(await readFile(at('qa.json'), 'utf8')), stderr: r.stderr };
    };
    const masked = (await run()).result.metrics.targetTokens;
    const all = (await run('--train-on-source')).result.metrics.targetTokens;
    expect(all).toBeGreaterThan(masked);
    const limited = await run('--limit', '3', '--max-length', '20');
    expect(limited.result.samples).toHaveLength(3);
    expect(limited.result.metrics.truncated).toBe(3);
    expect(limited.stderr).toMatch(/3 examples longer than 20 tokens cut/);
  });

  it.each([
    [['--data', 'texts.jsonl'], /--task loss needs --format/],
    [['--data', 'texts.jsonl', '--format', 'glue-sst2'], /--format/],
    [['--data', 'texts.jsonl', '--format', 'text', '--batch-size', '2'], /--batch-size does not apply/],
    [['--data', 'texts.jsonl', '--format', 'text', '--shots', '2'], /--shots does not apply/],
    [['--data', 'texts.jsonl', '--format', 'text', '--max-length', '100000'], /exceeds the model's/],
  ])('bad usage exits 2 naming the flag: %j', (args, message) => {
    const r = evalLoss('bad.json', ...args.map((a) => (a.endsWith('.jsonl') ? at(a) : a)));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(at('bad.json'))).toBe(false);
  });
});
