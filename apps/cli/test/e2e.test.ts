/**
 * E2E NLG from the command line: a system's outputs scored without a model, GPT-2 (tiny) fine-tuned
 * with `--format e2e` on rows of the real dev set and evaluated with beam search, and the flags'
 * usage errors.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { E2E_PROMPT as EVAL_PROMPT } from '@sharelora/eval';
import { E2E_PROMPT as TRAIN_PROMPT } from '@sharelora/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const E2E = join(process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data'), 'e2e_nlg');
const TGEN = join(repoRoot, 'packages/eval/test/fixtures/e2e/tgen.tsv');
const have = existsSync(join(E2E, 'testset_w_refs.csv'));
if (!have && process.env.CI !== 'true') console.warn(`SKIPPING the e2e CLI tests: ${E2E} not found`);
const itData = have || process.env.CI === 'true' ? it : it.skip;

let tmp = '';
const at = (...p: string[]) => join(tmp, ...p);

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-e2e-cli-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('sharelora eval --task e2e', () => {
  itData('--predictions scores TGen as the challenge published it', async () => {
    const r = runCli([
      'eval',
      '--task',
      'e2e',
      '--predictions',
      TGEN,
      '--data',
      E2E,
      '--out',
      at('tgen.json'),
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const { metrics } = JSON.parse(r.stdout);
    expect(
      [metrics.bleu, metrics.nist, metrics.rouge_l, metrics.cider].map((v: number) => v.toFixed(4)),
    ).toEqual(['0.6593', '8.6094', '0.6850', '2.2338']);
    const file = JSON.parse(await readFile(at('tgen.json'), 'utf8'));
    expect(file.samples).toHaveLength(630);
  });

  it('training and evaluation use one prompt', () => {
    expect(TRAIN_PROMPT).toBe(EVAL_PROMPT);
  });

  itData('train --format e2e on dev rows, then eval with beam search', async () => {
    expect(runCli(['init', '--arch', 'gpt2', '--preset', 'tiny', '--out', at('gpt2')]).status).toBe(0);
    // The first 24 dev rows, as the challenge's CSV has them.
    const dev = (await readFile(join(E2E, 'devset.csv'), 'utf8')).split('\n');
    await writeFile(at('dev.csv'), `${dev.slice(0, 25).join('\n')}\n`);
    const t = runCli([
      'train',
      ...['--model', at('gpt2'), '--data', at('dev.csv'), '--format', 'e2e', '--steps', '2'],
      ...['--validation', '0', '--out', at('adapter')],
    ]);
    expect(t.status, t.stderr).toBe(0);
    expect(JSON.parse(await readFile(at('adapter', 'sharelora_prompt_format.json'), 'utf8'))).toEqual({
      format: 'e2e',
    });
    const e = runCli([
      'eval',
      ...['--task', 'e2e', '--model', at('gpt2'), '--adapter', at('adapter'), '--data', E2E],
      ...['--limit', '3', '--num-beams', '3', '--max-new-tokens', '6', '--out', at('e2e.json')],
    ]);
    expect(e.status, e.stderr).toBe(0);
    const result = JSON.parse(await readFile(at('e2e.json'), 'utf8'));
    expect(result.settings).toMatchObject({ numBeams: 3, maxNewTokens: 6, documents: 3 });
    expect(result.samples.map((s: { doc: number }) => s.doc)).toEqual([0, 1, 2]);
    expect(result.samples[0].prompt.startsWith('Meaning representation: name[')).toBe(true);
    for (const k of ['bleu', 'nist', 'meteor_approx', 'rouge_l', 'cider'])
      expect(Number.isFinite(result.metrics[k])).toBe(true);
  });

  it('flags: exit 2 naming the flag', () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['--task', 'e2e', '--data', E2E, '--out', at('x.json')],
        /--model DIR is required \(or --predictions FILE\)/,
      ],
      [
        ['--task', 'e2e', '--predictions', TGEN, '--model', at('gpt2'), '--data', E2E, '--out', at('x.json')],
        /--model does not apply/,
      ],
      [
        ['--task', 'gsm8k', '--num-beams', '2', '--model', at('gpt2'), '--data', E2E, '--out', at('x.json')],
        /--num-beams does not apply to --task gsm8k/,
      ],
      [
        ['--task', 'e2e', '--num-beams', '0', '--model', at('gpt2'), '--data', E2E, '--out', at('x.json')],
        /--num-beams/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const r = runCli(['eval', ...args]);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(pattern);
    }
  });
});
