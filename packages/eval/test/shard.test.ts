/**
 * Sharded runs merged must equal the unsharded run, byte for byte in the written files. The models
 * here are deterministic test doubles following a simple rule (answer GSM8K with the reference when
 * the question has an even length, score MMLU letters by a hash of the prompt). The end-to-end test
 * with a real model (stories260K through @sharelora/models) belongs to `sharelora eval` in apps/cli.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EvalModel,
  type EvalResult,
  evaluateGsm8k,
  evaluateMmlu,
  type Gsm8kDoc,
  loadGsm8k,
  loadHumanEval,
  loadMmlu,
  mergeResultFiles,
  mergeResults,
  parseShard,
  ResultsMergeError,
  readResult,
  recomputeMetrics,
  scoreHumanEvalCompletions,
  writeResult,
} from '../src/index.js';
import { dataPath, hasData, hasPython } from './data.js';

const withData = hasData('gsm8k') && hasData('mmlu') && hasData('humaneval');

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sharelora-shards-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes the unsharded run and `count` shards, merges the shard files, compares the bytes. */
async function expectMergedEqualsUnsharded(
  name: string,
  count: number,
  run: (shard?: { index: number; count: number }) => Promise<EvalResult>,
) {
  const full = join(dir, `${name}.json`);
  await writeResult(full, await run());
  const files: string[] = [];
  for (let index = count - 1; index >= 0; index--) {
    const file = join(dir, `${name}.${index}-of-${count}.json`);
    const shard = await run({ index, count });
    expect(shard.settings.shard).toEqual({ index, count });
    await writeResult(file, shard);
    files.push(file);
  }
  const merged = join(dir, `${name}.merged.json`);
  await writeResult(merged, await mergeResultFiles(files));
  expect(await readFile(merged, 'utf8')).toBe(await readFile(full, 'utf8'));
}

describe.skipIf(!withData)('sharded runs merged equal an unsharded run', () => {
  it('GSM8K (5-shot, shots sampled per document)', async () => {
    const test = await loadGsm8k(dataPath('gsm8k', 'test.jsonl'));
    const train = await loadGsm8k(dataPath('gsm8k', 'train.jsonl'));
    const byQuestion = new Map<string, Gsm8kDoc>(test.map((d) => [d.question, d]));
    const model: EvalModel = {
      name: 'reference-oracle',
      generate: async (reqs) =>
        reqs.map((r) => {
          const question = r.prompt.slice(r.prompt.lastIndexOf('Question: ') + 10, -'\nAnswer:'.length);
          const doc = byQuestion.get(question) as Gsm8kDoc;
          return question.length % 2 === 0 ? ` ${doc.answer}\n\nQuestion: more` : ' I do not know, maybe 3.';
        }),
      loglikelihood: async () => [],
    };
    await expectMergedEqualsUnsharded('gsm8k', 3, (shard) =>
      evaluateGsm8k(model, { test, train }, { limit: 40, shard, batchSize: 7, adapter: 'adapters/x' }),
    );
    const merged = await readResult(join(dir, 'gsm8k.merged.json'));
    const strict = (merged.metrics as { exact_match: Record<string, number> }).exact_match['strict-match'];
    expect(strict).toBeGreaterThan(0.2);
    expect(strict).toBeLessThan(0.8);
  });

  it('MMLU (limit per subject, letter logits)', async () => {
    const data = await loadMmlu(dataPath('mmlu'), { subjects: ['anatomy', 'philosophy', 'virology'] });
    const scores = (p: string) => [0, 1, 2, 3].map((k) => (hash(p + k) % 1000) / -100);
    const model: EvalModel = {
      name: 'hash-scorer',
      generate: async () => [],
      loglikelihood: async () => [],
      nextTokenLogprobs: async (prompts) => prompts.map(scores),
    };
    await expectMergedEqualsUnsharded('mmlu', 4, (shard) =>
      evaluateMmlu(model, data, { scoring: 'letter-logits', limit: 9, shard }),
    );
  });

  it.skipIf(!hasPython())('HumanEval from a completions list', async () => {
    const problems = await loadHumanEval(dataPath('humaneval', 'HumanEval.jsonl'));
    const completions = problems.map((p, i) => ({
      taskId: p.taskId,
      completion: i % 3 === 0 ? '' : p.canonicalSolution,
    }));
    await expectMergedEqualsUnsharded('humaneval', 2, (shard) =>
      scoreHumanEvalCompletions(problems, completions, { limit: 8, shard }),
    );
  });
});

describe('merge checks', () => {
  const result = (
    shard: { index: number; count: number } | null,
    docs: number[],
    extra = {},
  ): EvalResult => ({
    model: 'm',
    adapter: null,
    task: 'glue-sst2',
    settings: { limit: null, shard, documents: 4, glueTask: 'sst2', ...extra },
    metrics: {},
    samples: docs.map((doc) => ({ doc, text: 't', target: 1, output: doc % 2, verdict: doc % 2 === 1 })),
  });

  it('recombines shards in document order and recomputes the metrics', () => {
    const merged = mergeResults([
      result({ index: 1, count: 2 }, [1, 3]),
      result({ index: 0, count: 2 }, [0, 2]),
    ]);
    expect(merged.samples.map((s) => s.doc)).toEqual([0, 1, 2, 3]);
    expect(merged.settings.shard).toBeNull();
    expect(merged.metrics).toEqual({ n: 4, accuracy: 0.5, headline: { metric: 'accuracy', value: 0.5 } });
  });

  it('refuses incomplete or inconsistent sets', () => {
    expect(() => mergeResults([result({ index: 0, count: 2 }, [0, 2])])).toThrow(/missing shard\(s\) 1\/2/);
    expect(() =>
      mergeResults([result({ index: 0, count: 2 }, [0, 2]), result({ index: 0, count: 2 }, [1, 3])]),
    ).toThrow(/both shard 0\/2/);
    expect(() =>
      mergeResults([
        result({ index: 0, count: 2 }, [0, 2]),
        result({ index: 1, count: 2 }, [1, 3], { glueTask: 'rte' }),
      ]),
    ).toThrow(ResultsMergeError);
    expect(() =>
      mergeResults([result({ index: 0, count: 2 }, [0, 2]), result({ index: 1, count: 2 }, [1])]),
    ).toThrow(/hold 3 documents, the run selected 4/);
    expect(() => mergeResults([result(null, [0, 1, 2, 3]), result({ index: 1, count: 2 }, [1, 3])])).toThrow(
      /complete run/,
    );
  });

  it('names the file and field when a shard lacks what the task metrics read', () => {
    const good = result({ index: 0, count: 2 }, [0, 2]);
    const noOutput = result({ index: 1, count: 2 }, [1, 3]);
    delete noOutput.samples[1].output;
    expect(() => mergeResults([good, noOutput], ['a.json', 'b.json'])).toThrow(
      /b\.json: samples\[1\] \(document 3\) has no number "output"/,
    );
    const humaneval: EvalResult = {
      ...result(null, [0]),
      task: 'humaneval',
      settings: { limit: null, shard: null, documents: 1 },
      samples: [{ doc: 0, outputs: ['x'], verdicts: ['passed'] }],
    };
    expect(() => recomputeMetrics(humaneval, 'h.json')).toThrow(/h\.json: .* no integer "passed"/);
    // Settings the metrics need but the file lacks: a typed error, not a TypeError.
    const noTask = result({ index: 0, count: 1 }, [0, 1, 2, 3], { glueTask: undefined });
    expect(() => mergeResults([noTask], ['c.json'])).toThrow(ResultsMergeError);
    expect(() => mergeResults([noTask], ['c.json'])).toThrow(/c\.json: cannot recompute glue-sst2 metrics/);
  });

  it('parses --shard I/N', () => {
    expect(parseShard('2/5')).toEqual({ index: 2, count: 5 });
    expect(() => parseShard('5/5')).toThrow(/0\.\.4/);
    expect(() => parseShard('1-2')).toThrow(/I\/N/);
  });
});
