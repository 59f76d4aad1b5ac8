/**
 * Beam search on tiny random LLaMA and GPT-2 models: against greedy decoding, against an exhaustive
 * float64 enumeration of every continuation (small vocabulary, few new tokens) and a plain CPU beam
 * search over the same float64 scores, the KV cache reorder against recomputing, batching against
 * single prompts, n-gram blocking, and the errors for options beam search cannot honour.
 */
import { ShareloraError } from '@sharelora/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BeamSearchResult,
  beamSearch,
  type CausalLM,
  createModel,
  createPreset,
  generate,
  generateTokens,
  initWeights,
  KVCache,
  parseConfig,
  type Tokenizer,
} from '../src/index.js';
import { ids, run, useDevice } from './helpers.js';

useDevice();

type ArchName = 'llama' | 'gpt2';
const ARCHS: readonly ArchName[] = ['llama', 'gpt2'];

/** Vocabulary of the small models; token 0 is their EOS. */
const V = 6;
const EOS = 0;

/**
 * A 2-layer model with a V-token vocabulary, its weights wide enough (std 0.2) that sequence scores
 * stand well apart, not so wide that one token takes every step.
 */
function smallVocabModel(arch: ArchName, seed: number): CausalLM {
  const common = { vocab_size: V, eos_token_id: EOS, bos_token_id: 1 };
  const raw =
    arch === 'llama'
      ? {
          model_type: 'llama',
          hidden_size: 32,
          intermediate_size: 64,
          num_hidden_layers: 2,
          num_attention_heads: 4,
          num_key_value_heads: 2,
          max_position_embeddings: 64,
          ...common,
        }
      : { model_type: 'gpt2', n_embd: 32, n_layer: 2, n_head: 4, n_positions: 64, ...common };
  const model = createModel(parseConfig(raw));
  if (model.task !== 'causal-lm') throw new Error('expected a causal LM');
  initWeights(model, { seed, std: 0.2 });
  // Inference: no dropout.
  return model.eval();
}

const small = {} as Record<ArchName, CausalLM>;
const tiny = {} as Record<ArchName, CausalLM>;
let tok: Tokenizer;
beforeAll(() => {
  for (const arch of ARCHS) {
    small[arch] = smallVocabModel(arch, 6);
    const preset = createPreset({ arch, preset: 'tiny', seed: 11 });
    tiny[arch] = (preset.model as CausalLM).eval();
    if (arch === 'llama') tok = preset.tokenizer;
  }
});
afterAll(() => {
  for (const m of [...Object.values(small), ...Object.values(tiny)]) m.dispose();
});

/**
 * Float64 next-token log-probabilities after `seq`, from one forward over the whole sequence (no
 * cache, every position's logits), memoised per model and sequence.
 */
const memo = new WeakMap<CausalLM, Map<string, Float64Array>>();
async function logProbs(model: CausalLM, seq: readonly number[]): Promise<Float64Array> {
  const m = memo.get(model) ?? new Map<string, Float64Array>();
  memo.set(model, m);
  const key = seq.join(',');
  const hit = m.get(key);
  if (hit) return hit;
  const all = await run(() => model.forward(ids([[...seq]])));
  const Vm = all.length / seq.length;
  const last = Float64Array.from(all.subarray(all.length - Vm));
  const max = Math.max(...last);
  const lse = max + Math.log(last.reduce((s, x) => s + Math.exp(x - max), 0));
  const out = last.map((x) => x - lse);
  m.set(key, out);
  return out;
}

/** Summed float64 log-probability of `tokens` after `prompt`, plus the EOS when it ended them. */
async function sumLogProb(
  model: CausalLM,
  prompt: readonly number[],
  tokens: readonly number[],
  eos: number | null,
): Promise<number> {
  let sum = 0;
  for (let i = 0; i < tokens.length; i++)
    sum += (await logProbs(model, [...prompt, ...tokens.slice(0, i)]))[tokens[i]];
  if (eos !== null) sum += (await logProbs(model, [...prompt, ...tokens]))[eos];
  return sum;
}

/** A result's score recomputed from scratch: its summed log-probability over its length^penalty. */
async function rescore(model: CausalLM, prompt: readonly number[], r: BeamSearchResult, penalty = 1) {
  const eos = r.finishReason === 'eos' ? EOS : null;
  const length = r.tokens.length + (eos === null ? 0 : 1);
  return (await sumLogProb(model, prompt, r.tokens, eos)) / length ** penalty;
}

interface Candidate {
  tokens: number[];
  eos: boolean;
  score: number;
}

/**
 * Every sequence generation can end with: k < maxNew non-EOS tokens then the EOS (length k + 1), or
 * maxNew non-EOS tokens; each scored sum / length^penalty.
 */
async function everyEnding(
  model: CausalLM,
  prompt: readonly number[],
  maxNew: number,
  penalty: number,
): Promise<Candidate[]> {
  const out: Candidate[] = [];
  const walk = async (prefix: number[], sum: number): Promise<void> => {
    const lp = await logProbs(model, [...prompt, ...prefix]);
    const length = prefix.length + 1;
    for (let t = 0; t < V; t++) {
      const s = sum + lp[t];
      if (t === EOS) out.push({ tokens: prefix, eos: true, score: s / length ** penalty });
      else if (length === maxNew)
        out.push({ tokens: [...prefix, t], eos: false, score: s / length ** penalty });
      else await walk([...prefix, t], s);
    }
  };
  await walk([], 0);
  return out.sort((a, b) => b.score - a.score);
}

/**
 * A plain beam search over the float64 scores of logProbs, one prompt, written from the rules alone:
 * all candidates of all beams sorted, the first 2·numBeams read (more with several EOS ids), an EOS
 * among the first numBeams
 * finishes a hypothesis, a prompt stops once it holds numBeams hypotheses and its best running beam
 * cannot beat the worst, or at maxNew where the running beams become hypotheses.
 */
async function referenceBeamSearch(
  model: CausalLM,
  prompt: readonly number[],
  numBeams: number,
  maxNew: number,
  penalty: number,
  eos: readonly number[] = [EOS],
): Promise<Candidate> {
  let beams = [{ tokens: [] as number[], sum: 0 }];
  let hyps: Candidate[] = [];
  const addHyp = (h: Candidate) => {
    hyps.push(h);
    hyps.sort((a, b) => b.score - a.score);
    hyps = hyps.slice(0, numBeams);
  };
  for (let length = 1; ; length++) {
    const cands: Array<{ tokens: number[]; token: number; sum: number }> = [];
    for (const b of beams) {
      const lp = await logProbs(model, [...prompt, ...b.tokens]);
      for (let t = 0; t < V; t++) cands.push({ tokens: b.tokens, token: t, sum: b.sum + lp[t] });
    }
    cands.sort((a, b) => b.sum - a.sum);
    const next: typeof beams = [];
    // 2·numBeams candidates, more with several EOS ids: enough that numBeams of them continue.
    const read = Math.max(2, 1 + eos.length) * numBeams;
    for (const [rank, c] of cands.slice(0, read).entries()) {
      if (eos.includes(c.token)) {
        if (
          rank < numBeams &&
          (hyps.length < numBeams || c.sum / length ** penalty > hyps[hyps.length - 1].score)
        )
          addHyp({ tokens: c.tokens, eos: true, score: c.sum / length ** penalty });
      } else if (next.length < numBeams) {
        next.push({ tokens: [...c.tokens, c.token], sum: c.sum });
      }
    }
    beams = next;
    const worst = hyps.length ? hyps[hyps.length - 1].score : Number.POSITIVE_INFINITY;
    if (hyps.length >= numBeams && next[0].sum / length ** penalty <= worst) return hyps[0];
    if (length === maxNew) {
      for (const b of beams) {
        const score = b.sum / length ** penalty;
        if (hyps.length < numBeams || score > hyps[hyps.length - 1].score)
          addHyp({ tokens: b.tokens, eos: false, score });
      }
      return hyps[0];
    }
  }
}

const SMALL_PROMPTS = [[1, 3, 2, 5], [4, 4], [2]];

describe('beam search against an exhaustive float64 search', () => {
  for (const arch of ARCHS) {
    it(`with numBeams covering every continuation, returns the best one and its score (${arch})`, async () => {
      const maxNew = 3;
      // (V - 1)^2 beams can run at the last step, with V candidates each: V^3 beams keep them all,
      // and the V + 1 finished hypotheses before the last step never fill numBeams.
      const numBeams = V ** maxNew;
      let eosWins = 0;
      let lengthWins = 0;
      for (const penalty of [1, 0, 2, -0.5]) {
        // Three prompts of different lengths in one left-padded batch.
        const got = await beamSearch(small[arch], SMALL_PROMPTS, {
          numBeams,
          maxNewTokens: maxNew,
          lengthPenalty: penalty,
        });
        for (const [i, prompt] of SMALL_PROMPTS.entries()) {
          const all = await everyEnding(small[arch], prompt, maxNew, penalty);
          const [best, second] = all;
          // The models are peaked enough that the best is clear of float32 noise.
          expect(best.score - second.score, `prompt ${i}, penalty ${penalty}`).toBeGreaterThan(1e-3);
          expect(got[i], `prompt ${i}, penalty ${penalty}`).toEqual({
            tokens: best.tokens,
            finishReason: best.eos ? 'eos' : 'length',
            score: expect.closeTo(best.score, 4),
          });
          if (best.eos) eosWins++;
          else lengthWins++;
        }
      }
      // Both kinds of ending win somewhere, so both scoring paths are checked.
      expect(eosWins).toBeGreaterThan(0);
      expect(lengthWins).toBeGreaterThan(0);
    });

    it(`with fewer beams, scores its result as a recomputation does and follows a plain CPU beam search (${arch})`, async () => {
      const maxNew = 4;
      let belowBest = 0;
      for (const numBeams of [1, 2, 3]) {
        for (const penalty of [1, 2, 0, -1]) {
          const got = await beamSearch(small[arch], SMALL_PROMPTS, {
            numBeams,
            maxNewTokens: maxNew,
            lengthPenalty: penalty,
          });
          for (const [i, prompt] of SMALL_PROMPTS.entries()) {
            const what = `prompt ${i}, ${numBeams} beams, penalty ${penalty}`;
            const r = got[i];
            expect(r.score, what).toBeCloseTo(await rescore(small[arch], prompt, r, penalty), 4);
            expect(r.tokens.length + (r.finishReason === 'eos' ? 1 : 0), what).toBeLessThanOrEqual(maxNew);
            expect(r.tokens, what).not.toContain(EOS);
            const ref = await referenceBeamSearch(small[arch], prompt, numBeams, maxNew, penalty);
            expect(r, what).toEqual({
              tokens: ref.tokens,
              finishReason: ref.eos ? 'eos' : 'length',
              score: expect.closeTo(ref.score, 4),
            });
            const [best] = await everyEnding(small[arch], prompt, maxNew, penalty);
            expect(r.score, what).toBeLessThanOrEqual(best.score + 1e-4);
            if (r.score < best.score - 1e-4) belowBest++;
          }
        }
      }
      // Narrow beams miss the best somewhere: the search is not secretly exhaustive.
      expect(belowBest).toBeGreaterThan(0);
    });
  }
});

describe('beam search with several EOS ids', () => {
  for (const arch of ARCHS) {
    it(`follows the plain CPU beam search (${arch})`, async () => {
      // Several EOS ids make EOS candidates frequent, down the ranking too; the prompt's two likeliest
      // next tokens as EOS leave numBeams 1 a third candidate to continue with.
      for (const [i, prompt] of SMALL_PROMPTS.entries()) {
        const order = [...(await logProbs(small[arch], prompt)).entries()].sort((a, b) => b[1] - a[1]);
        for (const eosIds of [
          [0, 3],
          [0, 2, 5],
          [order[0][0], order[1][0]],
        ]) {
          for (const numBeams of [1, 2, 3]) {
            for (const penalty of [1, 2, -1]) {
              const opts = { numBeams, maxNewTokens: 4, lengthPenalty: penalty, eosIds };
              const [got] = await beamSearch(small[arch], [prompt], opts);
              const ref = await referenceBeamSearch(small[arch], prompt, numBeams, 4, penalty, eosIds);
              expect(got, `prompt ${i}, EOS ${eosIds}, ${numBeams} beams, penalty ${penalty}`).toEqual({
                tokens: ref.tokens,
                finishReason: ref.eos ? 'eos' : 'length',
                score: expect.closeTo(ref.score, 4),
              });
            }
          }
        }
      }
    });
  }
});

// No EOS on the tiny presets: random models would stop at arbitrary points.
const PROMPTS = [[5, 17, 40, 99, 7, 250, 31], [3, 44], [120, 9, 9, 61], [77], [200, 201, 202, 203, 204, 205]];

describe('beam search against greedy decoding', () => {
  for (const arch of ARCHS) {
    it(`numBeams 1 without EOS is greedy decoding (${arch})`, async () => {
      const opts = { maxNewTokens: 8, eosIds: [] };
      const greedy = await generateTokens(tiny[arch], PROMPTS, { ...opts, engine: 'forward' });
      const beam1 = await beamSearch(tiny[arch], PROMPTS, { ...opts, numBeams: 1 });
      expect(beam1.map((r) => r.tokens)).toEqual(greedy.map((g) => g.tokens));
      for (const r of beam1) expect(r.finishReason).toBe('length');
      // generateTokens with numBeams 1 takes the greedy path.
      expect(await generateTokens(tiny[arch], PROMPTS, { ...opts, numBeams: 1 })).toEqual(
        await generateTokens(tiny[arch], PROMPTS, opts),
      );
    });

    // Beam search does not promise this for every prompt (a beam can push the greedy path out early
    // and then fare worse: the LLaMA model's prompt 2 does at 6 new tokens), so this checks fixed
    // cases where it holds, and that beams do find better sequences.
    it(`finds sequences at least as likely as greedy's (${arch})`, async () => {
      const maxNew = 8;
      const opts = { maxNewTokens: maxNew, eosIds: [] };
      const greedy = await generateTokens(tiny[arch], PROMPTS, { ...opts, engine: 'forward' });
      const beam = await generateTokens(tiny[arch], PROMPTS, { ...opts, numBeams: 4 });
      let better = 0;
      for (const [i, prompt] of PROMPTS.entries()) {
        const g = await sumLogProb(tiny[arch], prompt, greedy[i].tokens, null);
        const b = await sumLogProb(tiny[arch], prompt, beam[i].tokens, null);
        expect(beam[i].tokens, `prompt ${i}`).toHaveLength(maxNew);
        expect(beam[i].score, `prompt ${i}`).toBeCloseTo(b / maxNew, 4);
        expect(b, `prompt ${i}`).toBeGreaterThanOrEqual(g - 1e-5);
        if (b > g + 1e-5) better++;
      }
      expect(better).toBeGreaterThan(0);
    });
  }
});

describe('beam search mechanics', () => {
  for (const arch of ARCHS) {
    it(`KVCache.reorder gives each row the keys/values of the row it copies (${arch})`, async () => {
      const model = tiny[arch];
      const rows = [
        [5, 17, 40],
        [3, 44, 9],
      ];
      const cache = new KVCache();
      try {
        await run(() => model.forward(ids(rows), { cache, logitsToKeep: 1 }));
        const order = [1, 0, 1, 1];
        cache.reorder(order);
        expect(cache.length).toBe(3);
        const next = [[8], [2], [60], [61]];
        const cached = await run(() => model.forward(ids(next), { cache, logitsToKeep: 1 }));
        const full = await run(() =>
          model.forward(ids(order.map((r, i) => [...rows[r], ...next[i]])), { logitsToKeep: 1 }),
        );
        let diff = 0;
        let scale = 0;
        for (let i = 0; i < full.length; i++) {
          diff = Math.max(diff, Math.abs(cached[i] - full[i]));
          scale = Math.max(scale, Math.abs(full[i]));
        }
        expect(diff / scale).toBeLessThan(1e-4);
        expect(() => cache.reorder([4])).toThrow(/not one of the cache's 4 rows/);
      } finally {
        cache.dispose();
      }
    });

    it(`the cache, batching and batch size do not change results (${arch})`, async () => {
      const opts = { numBeams: 3, maxNewTokens: 7, eosIds: [11] };
      const base = await beamSearch(tiny[arch], PROMPTS, opts);
      const noCache = await beamSearch(tiny[arch], PROMPTS, { ...opts, useCache: false });
      const oneByOne = await beamSearch(tiny[arch], PROMPTS, { ...opts, batchSize: 1 });
      for (const other of [noCache, oneByOne]) {
        expect(other.map((r) => r.tokens)).toEqual(base.map((r) => r.tokens));
        expect(other.map((r) => r.finishReason)).toEqual(base.map((r) => r.finishReason));
        for (const [i, r] of other.entries()) expect(r.score).toBeCloseTo(base[i].score, 4);
      }
    });
  }

  it('stops at the context length and at maxNewTokens 0', async () => {
    const model = tiny.gpt2;
    const n = model.config.maxPositions;
    const prompt = Array.from({ length: n - 3 }, (_, i) => 3 + (i % 200));
    const [r] = await beamSearch(model, [prompt], { numBeams: 3, maxNewTokens: 1e6, eosIds: [] });
    expect(r.finishReason).toBe('length');
    expect(r.tokens).toHaveLength(3);
    expect(await beamSearch(model, [prompt, [4]], { numBeams: 2, maxNewTokens: 0 })).toEqual([
      { tokens: [], finishReason: 'length', score: 0 },
      { tokens: [], finishReason: 'length', score: 0 },
    ]);
    expect(await beamSearch(model, [], { numBeams: 2 })).toEqual([]);
  });

  it('noRepeatNgramSize keeps every n-gram of prompt and output unique', async () => {
    const bigrams = (seq: readonly number[]) => seq.slice(1).map((t, i) => `${seq[i]} ${t}`);
    const repeats = (seq: readonly number[]) => bigrams(seq).length - new Set(bigrams(seq)).size;
    const opts = { numBeams: 2, maxNewTokens: 10, eosIds: [] };
    const free = await beamSearch(small.llama, SMALL_PROMPTS, opts);
    // With 6 tokens and 10 steps the unconstrained search repeats bigrams, so the check can fail.
    expect(free.some((r, i) => repeats([...SMALL_PROMPTS[i], ...r.tokens]) > 0)).toBe(true);
    const blocked = await beamSearch(small.llama, SMALL_PROMPTS, { ...opts, noRepeatNgramSize: 2 });
    for (const [i, r] of blocked.entries()) {
      expect(repeats([...SMALL_PROMPTS[i], ...r.tokens]), `prompt ${i}`).toBe(0);
      expect(r.tokens.length).toBeGreaterThan(0);
    }
  });

  it('generate() with numBeams returns the beam tokens with their text, and stop strings cut it', async () => {
    const opts = { maxNewTokens: 16, eosIds: [], numBeams: 3 };
    const pieces: string[] = [];
    const [g] = await generate(tiny.llama, tok, ['the cat'], { ...opts, onText: (_, t) => pieces.push(t) });
    const [t] = await generateTokens(tiny.llama, [tok.encode('the cat')], opts);
    expect(g.tokens).toEqual(t.tokens);
    expect(g.score).toBeCloseTo(t.score as number, 6);
    expect(pieces.join('')).toBe(g.text);
    expect(g.text.length).toBeGreaterThan(4);
    const stop = g.text.slice(3, 5);
    const [cut] = await generate(tiny.llama, tok, ['the cat'], { ...opts, stop: [stop] });
    expect(cut.finishReason).toBe('stop');
    expect(cut.text).toBe(g.text.slice(0, g.text.indexOf(stop)));
    expect(g.tokens.slice(0, cut.tokens.length)).toEqual(cut.tokens);
  });
});

describe('beam search arguments', () => {
  const code = async (f: () => Promise<unknown>, message: RegExp) => {
    const err = await f().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ShareloraError);
    expect((err as ShareloraError).code).toBe('BAD_ARGUMENT');
    expect((err as Error).message).toMatch(message);
  };

  it('rejects what it cannot honour with a clear BAD_ARGUMENT', async () => {
    const m = tiny.gpt2;
    const p = [[5, 6]];
    for (const numBeams of [0, -2, 1.5, Number.NaN]) {
      await code(() => beamSearch(m, p, { numBeams }), /numBeams must be an integer >= 1/);
      await code(() => generateTokens(m, p, { numBeams }), /numBeams must be an integer >= 1/);
    }
    await code(() => beamSearch(m, p, { numBeams: 2, maxNewTokens: -1 }), /maxNewTokens/);
    await code(() => beamSearch(m, p, { numBeams: 2, lengthPenalty: Number.NaN }), /lengthPenalty/);
    await code(() => beamSearch(m, p, { numBeams: 2, noRepeatNgramSize: 1.5 }), /noRepeatNgramSize/);
    await code(() => beamSearch(m, p, { numBeams: 2, batchSize: 0 }), /batchSize/);
    await code(() => beamSearch(m, [[5], []], { numBeams: 2 }), /prompt 1 encodes to no tokens/);
    await code(() => generateTokens(m, p, { numBeams: 2, temperature: 0.7 }), /needs temperature 0, got 0.7/);
    await code(() => generateTokens(m, p, { numBeams: 2, engine: 'decoder' }), /forward engine/);
    await code(() => generateTokens(m, p, { numBeams: 2, onLogits: () => {} }), /onLogits/);
    await code(
      () => generateTokens(m, p, { noRepeatNgramSize: 3 }),
      /apply to beam search only: set numBeams > 1/,
    );
    await code(() => generateTokens(m, p, { lengthPenalty: 2 }), /beam search only/);
    await code(() => generate(m, tok, ['the'], { numBeams: 3, temperature: 1 }), /temperature 0/);
  });
});
