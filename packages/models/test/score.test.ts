/**
 * Scoring against a manual computation: the model's forward logits for each sequence alone, a float64
 * log-softmax on the CPU, and lm-evaluation-harness's tokenisation rules spelled out.
 */
import { join } from 'node:path';
import { backward, getDevice, keep, type Tensor, tensor, tidy } from '@sharelora/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CausalLM,
  candidateLogprobs,
  causalLmLoss,
  causalLmLossAt,
  generateTokens,
  initPreset,
  loadModel,
  loadTokenizer,
  logitChunks,
  loglikelihood,
  loglikelihoodTokens,
  nextTokenLogprobs,
  positionLogits,
  positionLogprobs,
  type Tokenizer,
} from '../src/index.js';
import { ids, run, useDevice, useTmp } from './helpers.js';

useDevice();
const tmp = useTmp('score');

const models: Record<'llama' | 'gpt2', CausalLM> = {} as never;
const toks: Record<'llama' | 'gpt2', Tokenizer> = {} as never;
beforeAll(async () => {
  for (const arch of ['llama', 'gpt2'] as const) {
    const dir = join(tmp(), arch);
    await initPreset({ arch, preset: 'tiny', outDir: dir, seed: 5 });
    const { model } = await loadModel(dir);
    if (model.task !== 'causal-lm') throw new Error('expected a causal LM');
    models[arch] = model;
    toks[arch] = await loadTokenizer(dir);
  }
});
afterAll(() => {
  for (const m of Object.values(models)) m.dispose();
});

/** Float64 log-softmax of one row. */
function logSoftmax64(row: ArrayLike<number>): Float64Array {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

/** The continuation's log-likelihood from one unbatched forward of context + continuation (minus the last token). */
async function manual(model: CausalLM, context: number[], continuation: number[]) {
  const input = [...context, ...continuation].slice(0, -1);
  const logits = await run(() => model.forward(ids([input])));
  const V = model.config.vocabSize;
  let logprob = 0;
  let isGreedy = true;
  continuation.forEach((tok, k) => {
    const t = input.length - continuation.length + k;
    const lp = logSoftmax64(logits.subarray(t * V, (t + 1) * V));
    logprob += lp[tok];
    let best = 0;
    for (let v = 1; v < V; v++) if (lp[v] > lp[best]) best = v;
    if (best !== tok) isGreedy = false;
  });
  return { logprob, isGreedy, tokens: continuation.length };
}

const close = (a: number, b: number): void => {
  expect(Math.abs(a - b)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b)));
};

describe('loglikelihood', () => {
  for (const arch of ['llama', 'gpt2'] as const) {
    it(`matches a float64 log-softmax of the forward logits, batched and in order (${arch})`, async () => {
      const tok = toks[arch];
      const requests = [
        { context: 'the cat ', continuation: 'sat on the mat' },
        { context: 'once upon a time there was', continuation: ' a dog' },
        { context: '', continuation: 'hello there' },
        { context: 'a', continuation: 'nd' },
        { context: 'the weather is', continuation: ' rather cold and wet' },
      ];
      const got = await loglikelihood(models[arch], tok, requests, { batchSize: 2 });
      for (const [i, { context, continuation }] of requests.entries()) {
        // lm-evaluation-harness: trailing context spaces join the continuation; the continuation's
        // tokens are the tail of encode(context + continuation) past encode(context).
        const ctx = context.trimEnd();
        const cont = context.slice(ctx.length) + continuation;
        const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
        const [c, k] =
          ctx === ''
            ? [[(tok.bosId ?? tok.eosIds[0]) as number], enc(cont)]
            : [enc(ctx), enc(ctx + cont).slice(enc(ctx).length)];
        const want = await manual(models[arch], c, k);
        close(got[i].logprob, want.logprob);
        expect(got[i].isGreedy).toBe(want.isGreedy);
        expect(got[i].tokens).toBe(want.tokens);
      }
      const one = await loglikelihood(models[arch], tok, requests, { batchSize: 1 });
      for (const [i, r] of one.entries()) close(r.logprob, got[i].logprob);
    });
  }

  it('isGreedy is true exactly for the greedy continuation', async () => {
    const model = models.llama;
    const context = [1, 40, 77, 120];
    const [g] = await generateTokens(model, [context], { maxNewTokens: 4, eosIds: [] });
    const [greedy, changed] = await loglikelihoodTokens(model, [
      { context, continuation: g.tokens },
      { context, continuation: [...g.tokens.slice(0, 3), (g.tokens[3] + 1) % model.config.vocabSize] },
    ]);
    expect(greedy.isGreedy).toBe(true);
    expect(changed.isGreedy).toBe(false);
    close(greedy.logprob, (await manual(model, context, g.tokens)).logprob);
    expect(greedy.logprob).toBeGreaterThan(changed.logprob);
  });

  it('requests with the same input share one forward (one-token answers after one prompt)', async () => {
    const model = models.gpt2;
    const context = [1, 40, 77, 120, 9];
    const answers = [[30], [31], [32], [33, 34], []];
    const requests = answers.map((continuation) => ({ context, continuation }));
    const forward = model.hiddenStates.bind(model);
    let calls = 0;
    model.hiddenStates = (...args) => {
      calls++;
      return forward(...args);
    };
    try {
      const got = await loglikelihoodTokens(model, requests, { batchSize: 1 });
      // The one-token answers share the input `context`; [33, 34] has its own; [] reads nothing.
      expect(calls).toBe(2);
      for (const [i, continuation] of answers.entries()) {
        const want = await manual(model, context, continuation);
        close(got[i].logprob, want.logprob);
        expect(got[i].tokens).toBe(continuation.length);
      }
    } finally {
      model.hiddenStates = forward;
    }
  });

  it('keeps the last maxLength + 1 tokens, as the harness truncates', async () => {
    const context = [1, 30, 31, 32, 33, 34, 35];
    const continuation = [36, 37];
    const [r] = await loglikelihoodTokens(models.gpt2, [{ context, continuation }], { maxLength: 4 });
    // The input is [33, 34, 35, 36]: 37 is only a target.
    close(r.logprob, (await manual(models.gpt2, [33, 34, 35], continuation)).logprob);
  });
});

describe('per-position and next-token scores', () => {
  it('positionLogprobs and positionLogits agree with the forward', async () => {
    const model = models.llama;
    const V = model.config.vocabSize;
    const seqs = [
      [1, 50, 60, 70, 80, 90],
      [1, 9],
      [1, 200, 201, 202],
    ];
    const lps = await positionLogprobs(model, seqs, { batchSize: 2 });
    for (const [b, s] of seqs.entries()) {
      const logits = await positionLogits(model, s);
      expect(logits).toHaveLength(s.length * V);
      expect(lps[b]).toHaveLength(s.length - 1);
      for (const [t, lp] of lps[b].entries())
        close(lp, logSoftmax64(logits.subarray(t * V, (t + 1) * V))[s[t + 1]]);
    }
  });

  it('nextTokenLogprobs and candidateLogprobs read the last position', async () => {
    const model = models.llama;
    const tok = toks.llama;
    const V = model.config.vocabSize;
    const contexts = ['the answer is', 'cats and dogs are'];
    const letters = [' a', ' b', ' c', ' d'];
    const got = await candidateLogprobs(model, tok, contexts, letters);
    const rows = await nextTokenLogprobs(
      model,
      contexts.map((c) => tok.encode(c)),
    );
    for (const [i, c] of contexts.entries()) {
      const enc = tok.encode(c);
      const logits = await positionLogits(model, enc);
      const want = logSoftmax64(logits.subarray((enc.length - 1) * V, enc.length * V));
      for (let v = 0; v < V; v++) expect(Math.abs(rows[i][v] - want[v])).toBeLessThan(1e-4);
      for (const [k, l] of letters.entries())
        close(got[i][k], want[tok.encode(l, { addSpecialTokens: false })[0]]);
    }
  });
});

describe('causalLmLossAt', () => {
  it('projects every position when most have a target and gathers the few otherwise: values and gradients of causalLmLoss', async () => {
    const model = models.llama;
    const V = model.config.vocabSize;
    const [B, T] = [2, 64];
    const seqs = [0, 1].map((b) => Array.from({ length: T }, (_, t) => 1 + ((t * 13 + b * 7) % (V - 1))));
    const hiddenData = await run(() => model.hiddenStates(ids(seqs)));
    const C = hiddenData.length / (B * T);
    // Labels: every next token (all but each row's last position predict: dense), or every third.
    for (const [name, kept] of [
      ['dense', (_t: number) => true],
      ['sparse', (t: number) => t % 3 === 0],
    ] as Array<[string, (t: number) => boolean]>) {
      const labels = seqs.map((s) => s.map((tok, t) => (kept(t) ? tok : -100)));
      const positions: number[] = [];
      const targets: number[] = [];
      for (let b = 0; b < B; b++)
        for (let t = 0; t + 1 < T; t++)
          if (labels[b][t + 1] !== -100) {
            positions.push(b * T + t);
            targets.push(labels[b][t + 1]);
          }
      const lossAndGrad = async (f: (h: Tensor) => Tensor): Promise<[number, Float32Array]> => {
        const h = keep(tensor(hiddenData, [B, T, C]));
        h.requiresGrad = true;
        const loss = tidy(() => {
          const l = f(h);
          backward(l);
          return l;
        });
        const out: [number, Float32Array] = [await loss.item(), (await h.grad?.data()) as Float32Array];
        loss.dispose();
        h.dispose();
        return out;
      };
      const dev = getDevice();
      dev.startProfile();
      const [got, gotGrad] = await lossAndGrad((h) =>
        causalLmLossAt(model, h, positions, Int32Array.from(targets)),
      );
      // Dense: every position projected, no gather (an embedding-kind row lookup) nor its scatter.
      const gathers = (await dev.stopProfile()).ops.filter((o) => o.kind.startsWith('embedding')).length;
      expect(gathers > 0, `${name}: rows gathered`).toBe(name === 'sparse');
      const [want, wantGrad] = await lossAndGrad((h) =>
        causalLmLoss(model.projectLogits(h), tensor(Int32Array.from(labels.flat()), [B, T], 'i32')),
      );
      expect(Math.abs(got - want) / Math.abs(want), name).toBeLessThan(1e-5);
      let md = 0;
      let mx = 0;
      for (let i = 0; i < wantGrad.length; i++) {
        md = Math.max(md, Math.abs(gotGrad[i] - wantGrad[i]));
        mx = Math.max(mx, Math.abs(wantGrad[i]));
      }
      expect(md / mx, `${name} gradient`).toBeLessThan(1e-5);
    }
  });
});

describe('positions whose logits exceed one storage binding', () => {
  it('are projected in chunks: scores and the loss equal the unchunked ones', async () => {
    const model = models.llama;
    const V = model.config.vocabSize;
    const seq = Array.from({ length: 120 }, (_, t) => 1 + ((t * 37) % (V - 1)));
    const request = { context: seq.slice(0, 20), continuation: seq.slice(20) };
    const positions = Array.from({ length: 119 }, (_, t) => t);
    const lossOf = () =>
      run(() => {
        const hidden = model.hiddenStates(ids([seq]));
        return causalLmLossAt(model, hidden, positions, Int32Array.from(seq.slice(1)));
      });
    const whole = {
      logits: await positionLogits(model, seq),
      logprobs: await positionLogprobs(model, [seq]),
      ll: await loglikelihoodTokens(model, [request]),
      loss: await lossOf(),
      ref: await run(() => causalLmLoss(model.forward(ids([seq])), ids([seq]))),
    };
    // 100 KB holds every weight and activation of this model but only 85 rows of logits (and
    // attention runs per query head).
    const dev = getDevice();
    dev.setBindingLimitForTesting(100_000);
    try {
      expect(logitChunks(seq.length, V).length).toBe(2);
      const logits = await positionLogits(model, seq);
      expect(logits).toHaveLength(seq.length * V);
      for (let i = 0; i < logits.length; i++) close(logits[i], whole.logits[i]);
      const [lps] = await positionLogprobs(model, [seq]);
      for (const [t, lp] of lps.entries()) close(lp, whole.logprobs[0][t]);
      const [ll] = await loglikelihoodTokens(model, [request]);
      close(ll.logprob, whole.ll[0].logprob);
      expect(ll.isGreedy).toBe(whole.ll[0].isGreedy);
      close((await lossOf())[0], whole.loss[0]);
      close(whole.loss[0], whole.ref[0]);
      // The whole [T, V] logits exceed one binding too, and the core ops handle them in windows.
      close((await run(() => causalLmLoss(model.forward(ids([seq])), ids([seq]))))[0], whole.ref[0]);
    } finally {
      dev.setBindingLimitForTesting(null);
    }
  });
});
