/**
 * The EvalModel / GlueClassifier bridge on tiny random presets: it must answer exactly what
 * @sharelora/models answers for one request at a time, whatever the batching, honour each request's
 * own settings, and build RoBERTa inputs as the reference tokenizer does.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { init, noGrad, shutdown, tensor, tidy } from '@sharelora/core/node';
import {
  argmax,
  type CausalLM,
  generate,
  initPreset,
  loadTokenizer,
  loglikelihood,
  loglikelihoodTokens,
} from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CausalLmEvalModel,
  classifierInput,
  EvalConfigError,
  type GenerationRequest,
  loadEvalModel,
  loadGlueClassifier,
  type MmluSample,
  runEval,
  runGlueEval,
  type SequenceEvalClassifier,
} from '../src/index.js';

let tmp = '';
let lm: CausalLmEvalModel;
let classifiers: { two: SequenceEvalClassifier; one: SequenceEvalClassifier };
const prepared: string[] = [];

/** A tiny RoBERTa turned into a sequence classifier with `labels` classes (its head is random). */
async function robertaClassifier(dir: string, labels: number): Promise<void> {
  await initPreset({ arch: 'roberta', preset: 'tiny', outDir: dir, seed: 5 });
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  Object.assign(config, { architectures: ['RobertaForSequenceClassification'], num_labels: labels });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-bridge-'));
  await init();
  await initPreset({ arch: 'llama', preset: 'tiny', outDir: join(tmp, 'llama'), seed: 3 });
  await robertaClassifier(join(tmp, 'cls2'), 2);
  await robertaClassifier(join(tmp, 'cls1'), 1);
  lm = await loadEvalModel(join(tmp, 'llama'), {
    batchSize: 3,
    prepare: async (m) => {
      prepared.push(m.hfClass);
    },
  });
  classifiers = {
    two: (await loadGlueClassifier(join(tmp, 'cls2'), { batchSize: 3 })).classifier,
    one: (await loadGlueClassifier(join(tmp, 'cls1'))).classifier,
  };
}, 120_000);

afterAll(async () => {
  lm?.dispose();
  classifiers?.two.dispose();
  classifiers?.one.dispose();
  shutdown();
  await rm(tmp, { recursive: true, force: true });
});

const PROMPTS = ['Once upon a time', 'The cat', 'A long time ago, in a land far away, there'];
const greedy = (prompt: string, maxNewTokens = 6, stop: string[] = []): GenerationRequest => ({
  prompt,
  stop,
  maxNewTokens,
});

/** What @sharelora/models generates for one prompt alone, with the bridge's EOS and encoding. */
async function alone(
  prompt: string,
  opts: { maxNewTokens: number; temperature?: number; seed?: number; numBeams?: number },
) {
  const [g] = await generate(lm.model as CausalLM, lm.tokenizer, [prompt], {
    ...opts,
    eosIds: [...new Set([...lm.model.config.eosTokenIds, ...lm.tokenizer.eosIds])],
    addSpecialTokens: false,
  });
  return g.text;
}

describe('CausalLmEvalModel', () => {
  it('loads the model with its tokenizer, runs prepare and names itself after the directory', () => {
    expect(lm.name).toBe(join(tmp, 'llama'));
    expect(prepared).toEqual(['LlamaForCausalLM']);
    expect(lm.model.training).toBe(false);
  });

  it('generates only the continuation, batched greedy rows equal to each prompt alone', async () => {
    const progress: number[][] = [];
    const out = await lm.generate(
      PROMPTS.map((p) => greedy(p)),
      (d, t) => progress.push([d, t]),
    );
    for (const [i, p] of PROMPTS.entries()) {
      expect(out[i], p).toBe(await alone(p, { maxNewTokens: 6 }));
    }
    expect(progress.at(-1)).toEqual([3, 3]);
  });

  it("honours each request's own length and stop strings in one call", async () => {
    const free = await alone(PROMPTS[0], { maxNewTokens: 6 });
    const stopAt = free.slice(2, 4);
    expect(stopAt).toHaveLength(2);
    const [short, long, stopped] = await lm.generate([
      greedy(PROMPTS[0], 2),
      greedy(PROMPTS[0], 6),
      greedy(PROMPTS[0], 6, [stopAt]),
    ]);
    expect(short).toBe(await alone(PROMPTS[0], { maxNewTokens: 2 }));
    expect(long).toBe(free);
    expect(free.startsWith(stopped)).toBe(true);
    expect(stopped).not.toContain(stopAt);
  });

  it('beam search requests get what @sharelora/models beam search gives, apart from greedy ones', async () => {
    const beams = (p: string): GenerationRequest => ({ ...greedy(p, 6), numBeams: 3 });
    const out = await lm.generate([beams(PROMPTS[0]), greedy(PROMPTS[0]), beams(PROMPTS[1])]);
    expect(out[0]).toBe(await alone(PROMPTS[0], { maxNewTokens: 6, numBeams: 3 }));
    expect(out[1]).toBe(await alone(PROMPTS[0], { maxNewTokens: 6 }));
    expect(out[2]).toBe(await alone(PROMPTS[1], { maxNewTokens: 6, numBeams: 3 }));
  });

  it('samples each request from its own seed, whatever else is in the call', async () => {
    const req = (seed: number): GenerationRequest => ({ ...greedy(PROMPTS[1], 8), temperature: 1, seed });
    const [a] = await lm.generate([req(7)]);
    const [, b, c] = await lm.generate([req(1), req(7), req(2)]);
    expect(b).toBe(a);
    expect(a).toBe(await alone(PROMPTS[1], { maxNewTokens: 8, temperature: 1, seed: 7 }));
    expect(c).not.toBe(a);
  });

  it('scores log-likelihoods as @sharelora/models does, in chunks of batchSize with progress', async () => {
    const reqs = PROMPTS.flatMap((context) =>
      [' was', ' a dog'].map((continuation) => ({ context, continuation })),
    );
    const progress: number[] = [];
    const got = await lm.loglikelihood(reqs, (d) => progress.push(d));
    const want = await loglikelihood(lm.model as CausalLM, lm.tokenizer, reqs, { batchSize: 1 });
    expect(got.map((r) => r.isGreedy)).toEqual(want.map((r) => r.isGreedy));
    for (const [i, r] of got.entries()) expect(r.logprob).toBeCloseTo(want[i].logprob, 4);
    expect(Object.keys(got[0]).sort()).toEqual(['isGreedy', 'logprob']);
    expect(progress).toEqual([3, 6]);
  });

  it("gives each candidate's next-token log-prob: its first token after the prompt, no BOS", async () => {
    const candidates = [' A', 'B'];
    const next = await lm.nextTokenLogprobs(PROMPTS, candidates);
    const want = await loglikelihoodTokens(
      lm.model as CausalLM,
      PROMPTS.flatMap((p) =>
        candidates.map((c) => ({
          context: lm.tokenizer.encode(p, { addSpecialTokens: false }),
          continuation: lm.tokenizer.encode(c, { addSpecialTokens: false }).slice(0, 1),
        })),
      ),
    );
    expect(next.flat().map((x) => x.toFixed(4))).toEqual(want.map((r) => r.logprob.toFixed(4)));
  });

  it('runs MMLU letter-logit scoring end to end through runEval', async () => {
    const dir = join(tmp, 'mmlu');
    const row = (q: string, answer: number) => `"${q}",one,two,three,four,${answer}\n`;
    const header = 'question,choice0,choice1,choice2,choice3,answer\n';
    for (const split of ['dev', 'test']) await mkdir(join(dir, split), { recursive: true });
    await writeFile(join(dir, 'dev', 'astronomy_dev.csv'), header + row('What is a star?', 0));
    await writeFile(
      join(dir, 'test', 'astronomy_test.csv'),
      header + row('What is a planet?', 1) + row('What is a moon?', 2),
    );
    const result = await runEval(lm, { task: 'mmlu', data: dir, scoring: 'letter-logits', shots: 1 });
    expect(result.model).toBe(lm.name);
    expect(result.samples).toHaveLength(2);
    const { scores } = result.samples[0] as MmluSample;
    expect(scores).toHaveLength(4);
    expect(scores.every((s) => Number.isFinite(s) && s < 0)).toBe(true);
  });

  it('refuses a RoBERTa directory, and GLUE refuses a causal LM', async () => {
    await expect(loadEvalModel(join(tmp, 'cls2'))).rejects.toThrow(EvalConfigError);
    await expect(loadGlueClassifier(join(tmp, 'llama'))).rejects.toThrow(/needs a RoBERTa/);
  });
});

describe('GLUE classifier bridge', () => {
  it('builds <s> a </s> and <s> a </s></s> b </s> as the reference tokenizer does', async () => {
    const dir = join(tmp, 'cls2');
    const tok = await loadTokenizer(dir);
    const hf = new HfTokenizer(
      JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')),
      JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')),
    );
    const a = 'The movie was great.';
    const b = 'It was not bad at all!';
    expect(classifierInput(tok, { text: a }, 128)).toEqual(hf.encode(a).ids);
    expect(classifierInput(tok, { text: a, textPair: b }, 128)).toEqual(hf.encode(a, { text_pair: b }).ids);
  });

  it('truncates the longer text first, the second on a tie (longest_first)', async () => {
    const tok = await loadTokenizer(join(tmp, 'cls2'));
    const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
    const [cls, sep] = [tok.bosId as number, tok.eosIds[0]];
    const a = 'aaaa bbbb cccc dddd eeee ffff';
    const b = 'the film is good';
    const [A, B] = [enc(a), enc(b)];
    const n = B.length;
    expect(A.length).toBeGreaterThan(n + 2);
    const pair = (textTokens: number) => classifierInput(tok, { text: a, textPair: b }, textTokens + 4);
    // Room for 2n + 1 text tokens: only the longer first text is cut (to n + 1).
    expect(pair(2 * n + 1)).toEqual([cls, ...A.slice(0, n + 1), sep, sep, ...B, sep]);
    // Room for 2n - 1: the first is cut to n, then the tie cuts the second.
    expect(pair(2 * n - 1)).toEqual([cls, ...A.slice(0, n), sep, sep, ...B.slice(0, n - 1), sep]);
    expect(classifierInput(tok, { text: a }, 5)).toEqual([cls, ...A.slice(0, 3), sep]);
  });

  const EXAMPLES = [
    { text: 'a charming and often affecting journey', label: 1 },
    { text: 'bleak and desperate', label: 0 },
    { text: 'the movie', textPair: 'the film', label: 1 },
    { text: 'it rains', textPair: 'the sun is shining over the quiet little town', label: 0 },
  ];

  it('predicts the argmax class of the unpadded logits, batched or not', async () => {
    const c = classifiers.two;
    expect(c.numLabels).toBe(2);
    const batched = await c.predict(EXAMPLES);
    const single = [];
    for (const ex of EXAMPLES) single.push(...(await c.predict([ex])));
    expect(batched).toEqual(single);
    const ids = classifierInput(c.tokenizer, EXAMPLES[3], 128);
    const logits = noGrad(() =>
      tidy(() => c.model.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32'))),
    );
    expect(batched[3]).toBe(argmax((await logits.data()) as Float32Array));
    logits.dispose();
  });

  it('runGlueEval finds the dev split from the GLUE folder, the task folder or the file', async () => {
    const dir = join(tmp, 'glue', 'SST-2');
    await mkdir(dir, { recursive: true });
    const tsv = join(dir, 'dev.tsv');
    await writeFile(
      tsv,
      `sentence\tlabel\n${EXAMPLES.slice(0, 2)
        .map((e) => `${e.text}\t${e.label}`)
        .join('\n')}\n`,
    );
    const results = [];
    for (const data of [join(tmp, 'glue'), dir, tsv]) {
      results.push(await runGlueEval(classifiers.two, { task: 'glue-sst2', data }));
    }
    expect(results[0].samples).toHaveLength(2);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
    await expect(runGlueEval(classifiers.two, { task: 'sst2', data: tsv })).rejects.toThrow(/glue-sst2/);
  });

  it('returns the raw score of a one-label (regression) head', async () => {
    const scores = await classifiers.one.predict(EXAMPLES);
    expect(scores).toHaveLength(4);
    expect(scores.some((s) => !Number.isInteger(s))).toBe(true);
  });
});
