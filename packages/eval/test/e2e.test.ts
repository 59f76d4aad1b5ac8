/**
 * The E2E task: scoring a system's outputs from a file (TGen's test output, in the challenge's TSV
 * and as plain lines) and generating with a real tiny model, sharded and merged.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown } from '@sharelora/core/node';
import { initPreset } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CausalLmEvalModel,
  E2E_PROMPT,
  type E2eMetrics,
  type E2eSample,
  EvalDataError,
  type EvalResult,
  loadEvalModel,
  mergeResults,
  runE2ePredictions,
  runEval,
} from '../src/index.js';
import { dataPath, hasData } from './data.js';

const here = dirname(fileURLToPath(import.meta.url));
const TGEN = join(here, 'fixtures/e2e/tgen.tsv');
const E2E = dataPath('e2e_nlg');
const itData = hasData('e2e_nlg') || process.env.CI === 'true' ? it : it.skip;

let tmp = '';
let lm: CausalLmEvalModel;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-e2e-'));
  await init();
  await initPreset({ arch: 'llama', preset: 'tiny', outDir: join(tmp, 'llama'), seed: 3 });
  lm = await loadEvalModel(join(tmp, 'llama'), { batchSize: 3 });
}, 120_000);

afterAll(async () => {
  lm?.dispose();
  shutdown();
  await rm(tmp, { recursive: true, force: true });
});

describe('E2E predictions from a file', () => {
  itData('the challenge TSV and plain lines score alike: the published TGen figures', async () => {
    const tsv = (await runE2ePredictions({ data: E2E, predictions: TGEN })) as EvalResult<
      E2eSample,
      E2eMetrics
    >;
    const lines = join(tmp, 'tgen.txt');
    const outputs = readFileSync(TGEN, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t')[1]);
    await writeFile(lines, `${outputs.join('\n')}\n`);
    const plain = (await runE2ePredictions({ data: E2E, predictions: lines })) as EvalResult<
      E2eSample,
      E2eMetrics
    >;
    expect(plain.metrics).toEqual(tsv.metrics);
    expect(tsv.task).toBe('e2e');
    expect(tsv.metrics.n).toBe(630);
    expect(tsv.metrics.bleu.toFixed(4)).toBe('0.6593');
    expect(tsv.metrics.cider.toFixed(4)).toBe('2.2338');
    // All of an MR's references are kept with its sample (the first MR has 7 in the test set).
    expect(tsv.samples[0].references.length).toBeGreaterThan(1);
    const limited = await runE2ePredictions({ data: E2E, predictions: lines, limit: 50 });
    expect((limited.metrics as E2eMetrics).n).toBe(50);
  });

  itData('refuses a file with the wrong number of outputs or MRs out of order', async () => {
    const short = join(tmp, 'short.txt');
    await writeFile(short, 'one\ntwo\n');
    await expect(runE2ePredictions({ data: E2E, predictions: short })).rejects.toThrow(
      /2 outputs for 630 MRs/,
    );
    const rows = readFileSync(TGEN, 'utf8').trim().split('\n');
    [rows[1], rows[2]] = [rows[2], rows[1]];
    const swapped = join(tmp, 'swapped.tsv');
    await writeFile(swapped, `${rows.join('\n')}\n`);
    await expect(runE2ePredictions({ data: E2E, predictions: swapped })).rejects.toThrow(EvalDataError);
  });
});

describe('E2E generation', () => {
  itData('prompts each MR, keeps its references, and shards merge into the unsharded result', async () => {
    const spec = { task: 'e2e' as const, data: E2E, limit: 4, numBeams: 1, maxNewTokens: 6 };
    const whole = (await runEval(lm, spec)) as EvalResult<E2eSample, E2eMetrics>;
    expect(whole.samples.map((s) => s.doc)).toEqual([0, 1, 2, 3]);
    expect(whole.samples[0].prompt).toBe(E2E_PROMPT.replace('{mr}', whole.samples[0].mr));
    expect(whole.samples[0].output).not.toContain('\n');
    expect(whole.settings).toMatchObject({ numBeams: 1, maxNewTokens: 6, documents: 4 });
    const shards = await Promise.all(
      [0, 1].map((index) => runEval(lm, { ...spec, shard: { index, count: 2 } })),
    );
    const merged = mergeResults(shards);
    expect(merged.samples).toEqual(whole.samples);
    expect(merged.metrics).toEqual(whole.metrics);
  });
});
