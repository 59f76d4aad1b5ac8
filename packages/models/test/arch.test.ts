/**
 * GPU forwards of tiny random GPT-2, RoBERTa and LLaMA models (written by initPreset, loaded back)
 * against the float64 CPU reference reading the same files.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  backward,
  embedding,
  mul,
  noGrad,
  randn,
  reshape,
  slice,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '@sharelora/core/node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CausalLM,
  causalLmLoss,
  checkpointTensors,
  initPreset,
  KVCache,
  loadModel,
  maskedLmLoss,
  positionIdsFromAttentionMask,
  readCheckpointTensor,
  saveModel,
  sequenceClassificationLoss,
  VocabEmbedding,
} from '../src/index.js';
import { errorLog, ids, relErr, run, useDevice, useTmp } from './helpers.js';
import { causalLoss, readWeights, type Vec } from './reference/math.js';
import {
  gpt2Reference,
  llamaReference,
  type RefInputs,
  robertaClassifierReference,
  robertaMlmReference,
} from './reference/models.js';

const device = useDevice();
const tmp = useTmp('arch');
const logErr = errorLog();
const TOL = 1e-4;

// Left padding for the causal models: row 1 starts with two padding tokens.
const CAUSAL_IDS = [
  [17, 104, 250, 33, 71, 9, 200],
  [0, 0, 45, 120, 3, 99, 270],
];
const CAUSAL_MASK = [
  [1, 1, 1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1, 1, 1],
];
const real = (b: number, t: number) => CAUSAL_MASK[b][t] === 1;

interface Dir {
  dir: string;
  // biome-ignore lint/suspicious/noExplicitAny: config.json as written
  cfg: any;
  weights: Awaited<ReturnType<typeof readWeights>>;
}

async function preset(
  name: string,
  arch: 'gpt2' | 'llama' | 'roberta',
  p: 'tiny' | 'small',
  overrides?: Record<string, unknown>,
): Promise<Dir> {
  const dir = join(tmp(), name);
  await initPreset({ arch, preset: p, outDir: dir, seed: 7, overrides });
  return {
    dir,
    cfg: JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')),
    weights: await readWeights(dir),
  };
}

async function causal(dir: string, opts: { trainable?: boolean } = {}): Promise<CausalLM> {
  const { model } = await loadModel(dir, opts);
  if (model.task !== 'causal-lm') throw new Error('expected a causal LM');
  return model;
}

function forwardCausal(model: CausalLM, inp: RefInputs): Promise<Float32Array> {
  return run(() =>
    model.forward(ids(inp.ids), {
      attentionMask: inp.mask && ids(inp.mask),
      positionIds: inp.positions && ids(inp.positions),
    }),
  );
}

const dirs: Record<string, Dir> = {};
beforeAll(async () => {
  device();
  dirs.gpt2 = await preset('gpt2', 'gpt2', 'tiny');
  dirs.llama = await preset('llama', 'llama', 'tiny');
  // Llama 3 style, one layer: tied output, head_dim 32 with 8 query / 2 kv heads, llama3 RoPE scaling.
  dirs.llama3 = await preset('llama3', 'llama', 'small', { num_hidden_layers: 1 });
  dirs.llamaBias = await preset('llama-bias', 'llama', 'tiny', {
    num_hidden_layers: 1,
    attention_bias: true,
    mlp_bias: true,
    tie_word_embeddings: true,
  });
  dirs.roberta = await preset('roberta', 'roberta', 'tiny');
});

/** The two causal architectures with their float64 references, for tests run on both. */
const GPT2_AND_LLAMA = [
  ['gpt2', gpt2Reference],
  ['llama', llamaReference],
] as const;

describe('causal LMs match the float64 reference', () => {
  const cases: Array<[string, string, typeof gpt2Reference]> = [
    ['GPT-2 (tied, gelu_new, Conv1D)', 'gpt2', gpt2Reference],
    ['LLaMA 2 style (GQA 4/2, untied)', 'llama', llamaReference],
    ['LLaMA 3 style (llama3 RoPE, head_dim 32, tied)', 'llama3', llamaReference],
    ['LLaMA with attention and MLP biases', 'llamaBias', llamaReference],
  ];
  for (const [title, key, reference] of cases) {
    it(`${title}: left-padded batch with attention_mask`, async () => {
      const d = dirs[key];
      const model = await causal(d.dir);
      const inp = { ids: CAUSAL_IDS, mask: CAUSAL_MASK };
      const gpu = await forwardCausal(model, inp);
      expect(logErr(title, relErr(gpu, reference(d.weights, d.cfg, inp), real))).toBeLessThan(TOL);
      model.dispose();
    });
  }

  it('llama3 scaling is exercised: far positions differ from unscaled RoPE and match the reference', async () => {
    const d = dirs.llama3;
    const model = await causal(d.dir);
    const positions = CAUSAL_IDS.map((row) => row.map((_, t) => 300 + 5 * t));
    const inp = { ids: CAUSAL_IDS, positions };
    const gpu = await forwardCausal(model, inp);
    const ref = llamaReference(d.weights, d.cfg, inp);
    expect(logErr('LLaMA 3 at positions 300..330', relErr(gpu, ref))).toBeLessThan(TOL);
    const unscaled = llamaReference(d.weights, { ...d.cfg, rope_scaling: null }, inp);
    expect(relErr(gpu, unscaled)).toBeGreaterThan(100 * TOL);
    model.dispose();
  });

  it('left-padded rows with positions from the mask equal the unpadded rows', async () => {
    for (const key of ['gpt2', 'llama']) {
      const model = await causal(dirs[key].dir);
      const positions = positionIdsFromAttentionMask(CAUSAL_MASK);
      const padded = await forwardCausal(model, { ids: CAUSAL_IDS, mask: CAUSAL_MASK, positions });
      const alone = await forwardCausal(model, { ids: [CAUSAL_IDS[1].slice(2)] });
      const V = model.config.vocabSize;
      const row1 = padded.subarray(7 * V + 2 * V, 14 * V);
      const asRef: Vec[][] = [
        Array.from({ length: 5 }, (_, t) => Float64Array.from(alone.subarray(t * V, (t + 1) * V))),
      ];
      expect(relErr(row1, asRef)).toBeLessThan(1e-5);
      model.dispose();
    }
  });

  it('logitsToKeep: the last n positions or listed flat positions match the reference', async () => {
    for (const [key, reference] of GPT2_AND_LLAMA) {
      const d = dirs[key];
      const model = await causal(d.dir);
      const inp = { ids: CAUSAL_IDS, mask: CAUSAL_MASK };
      const ref = reference(d.weights, d.cfg, inp);
      const forward = (logitsToKeep: number | number[]) =>
        run(() => model.forward(ids(inp.ids), { attentionMask: ids(inp.mask), logitsToKeep }));
      const last3 = await forward(3);
      expect(last3.length).toBe(2 * 3 * model.config.vocabSize);
      expect(
        relErr(
          last3,
          ref.map((row) => row.slice(-3)),
        ),
      ).toBeLessThan(TOL);
      // Flat positions b·T + t (T = 7), in the given order: (1, 6), (0, 2), (1, 2).
      const picked = await forward([13, 2, 9]);
      expect(relErr(picked, [[ref[1][6], ref[0][2], ref[1][2]]])).toBeLessThan(TOL);
      expect(relErr(await forward(50), ref, real)).toBeLessThan(TOL);
      for (const bad of [0, 1.5, [], [14], [-1]]) {
        expect(() => model.forward(ids(inp.ids), { logitsToKeep: bad })).toThrow(/logitsToKeep/);
      }
      model.dispose();
    }
  });

  it('logitsToKeep: gradients reach the weights as through the full logits', async () => {
    const model = await causal(dirs.llama.dir, { trainable: true });
    const keep = [13, 2, 9];
    const V = model.config.vocabSize;
    const weights = randn([3, V], { seed: 3 });
    // Every trainable parameter's gradient of a weighted sum of the picked logits, concatenated.
    const gradOf = async (picked: () => Tensor) => {
      tidy(() => backward(sum(mul(picked(), weights))));
      const parts: number[] = [];
      for (const p of model.parameters({ trainableOnly: true })) {
        if (!p.grad) throw new Error('no gradient');
        parts.push(...((await p.grad.data()) as Float32Array));
        p.value.grad?.dispose();
        p.value.grad = null;
      }
      return parts;
    };
    const x = ids(CAUSAL_IDS);
    const viaKeep = await gradOf(() => model.forward(x, { logitsToKeep: keep }));
    const viaFull = await gradOf(() => {
      const logits = model.forward(x);
      return embedding(reshape(logits, [14, V]), tensor(Int32Array.from(keep), [3], 'i32'));
    });
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < viaFull.length; i++) {
      diff = Math.max(diff, Math.abs(viaKeep[i] - viaFull[i]));
      scale = Math.max(scale, Math.abs(viaFull[i]));
    }
    expect(scale).toBeGreaterThan(0);
    expect(diff / scale).toBeLessThan(TOL);
    x.dispose();
    weights.dispose();
    model.dispose();
  });

  it('causalLmLoss has transformers semantics (shifted, -100 ignored, mean)', async () => {
    for (const [key, reference] of GPT2_AND_LLAMA) {
      const d = dirs[key];
      const model = await causal(d.dir);
      const labels = CAUSAL_IDS.map((row, b) =>
        row.map((id, t) => (CAUSAL_MASK[b][t] && !(b === 0 && t === 3) ? id : -100)),
      );
      const inp = { ids: CAUSAL_IDS, mask: CAUSAL_MASK };
      const [loss] = await run(() =>
        causalLmLoss(model.forward(ids(inp.ids), { attentionMask: ids(inp.mask) }), ids(labels)),
      );
      const ref = causalLoss(reference(d.weights, d.cfg, inp), labels);
      expect(logErr(`causal loss ${key}`, Math.abs(loss - ref) / ref)).toBeLessThan(TOL);
      model.dispose();
    }
  });
});

describe('KV cache', () => {
  it('token-by-token forward with a cache equals the full forward (LLaMA, left padding, GQA)', async () => {
    const model = await causal(dirs.llama.dir);
    const positions = positionIdsFromAttentionMask(CAUSAL_MASK);
    const full = await forwardCausal(model, { ids: CAUSAL_IDS, mask: CAUSAL_MASK, positions });
    const cache = new KVCache();
    const x = ids(CAUSAL_IDS);
    const m = ids(CAUSAL_MASK);
    const p = ids(positions);
    const V = model.config.vocabSize;
    const steps: Array<[number, number]> = [
      [0, 3],
      [3, 4],
      [4, 5],
      [5, 6],
      [6, 7],
    ];
    const stepped = new Float32Array(2 * 7 * V);
    for (const [s, e] of steps) {
      const out = await run(() =>
        model.forward(slice(x, [0, s], [2, e]), {
          attentionMask: slice(m, [0, 0], [2, e]),
          positionIds: slice(p, [0, s], [2, e]),
          cache,
        }),
      );
      for (let b = 0; b < 2; b++)
        stepped.set(out.subarray(b * (e - s) * V, (b + 1) * (e - s) * V), (b * 7 + s) * V);
      expect(cache.length).toBe(e);
    }
    const asRef: Vec[][] = [0, 1].map((b) =>
      Array.from({ length: 7 }, (_, t) =>
        Float64Array.from(full.subarray((b * 7 + t) * V, (b * 7 + t + 1) * V)),
      ),
    );
    expect(logErr('KV cache vs full (LLaMA)', relErr(stepped, asRef, real))).toBeLessThan(1e-5);
    cache.dispose();
    model.dispose();
  });

  it('GPT-2 with default positions continues from the cache length', async () => {
    const model = await causal(dirs.gpt2.dir);
    const seq = [CAUSAL_IDS[0]];
    const full = await forwardCausal(model, { ids: seq });
    const cache = new KVCache();
    const V = model.config.vocabSize;
    const stepped = new Float32Array(7 * V);
    for (let t = 0; t < 7; t++)
      stepped.set(await run(() => model.forward(ids([[seq[0][t]]]), { cache })), t * V);
    const asRef: Vec[][] = [
      Array.from({ length: 7 }, (_, t) => Float64Array.from(full.subarray(t * V, (t + 1) * V))),
    ];
    expect(logErr('KV cache vs full (GPT-2)', relErr(stepped, asRef))).toBeLessThan(1e-5);
    cache.dispose();
    model.dispose();
  });
});

describe('RoBERTa matches the float64 reference', () => {
  // Right padding; pad_token_id is 1, so row 1's positions stop counting at its padding.
  const RIDS = [
    [0, 45, 120, 33, 71, 9, 2],
    [0, 88, 230, 2, 1, 1, 1],
  ];
  const RMASK = RIDS.map((r) => r.map((id) => (id === 1 ? 0 : 1)));
  const rreal = (b: number, t: number) => RMASK[b][t] === 1;

  it('masked LM (tied decoder + bias), right padding, and its loss', async () => {
    const d = dirs.roberta;
    const { model } = await loadModel(d.dir);
    if (model.task !== 'masked-lm') throw new Error('expected a masked LM');
    const gpu = await run(() => model.forward(ids(RIDS), { attentionMask: ids(RMASK) }));
    const ref = robertaMlmReference(d.weights, d.cfg, { ids: RIDS, mask: RMASK });
    expect(logErr('RoBERTa MLM', relErr(gpu, ref, rreal))).toBeLessThan(TOL);

    const labels = RIDS.map((row, b) => row.map((id, t) => (t === 2 || (b === 1 && t === 1) ? id : -100)));
    const [loss] = await run(() =>
      maskedLmLoss(model.forward(ids(RIDS), { attentionMask: ids(RMASK) }), ids(labels)),
    );
    // Same as causalLoss with the labels moved one step right.
    const refLoss = causalLoss(
      ref,
      labels.map((row) => [-100, ...row.slice(0, -1)]),
    );
    expect(logErr('RoBERTa MLM loss', Math.abs(loss - refLoss) / refLoss)).toBeLessThan(TOL);
    model.dispose();
  });

  it('sequence classification from a pretrained (MLM) checkpoint: new head, saved, reloaded', async () => {
    const d = dirs.roberta;
    const loaded = await loadModel(d.dir, { task: 'sequence-classification', numLabels: 3, seed: 5 });
    expect(loaded.initialised.sort()).toEqual([
      'classifier.dense.bias',
      'classifier.dense.weight',
      'classifier.out_proj.bias',
      'classifier.out_proj.weight',
    ]);
    expect(loaded.ignored).toContain('lm_head.bias');
    const clsDir = join(tmp(), 'roberta-cls');
    await saveModel(loaded.model, clsDir);
    loaded.model.dispose();

    const { model } = await loadModel(clsDir);
    if (model.task !== 'sequence-classification') throw new Error('expected a classifier');
    expect(model.numLabels).toBe(3);
    const gpu = await run(() => model.forward(ids(RIDS), { attentionMask: ids(RMASK) }));
    const cfg = JSON.parse(await readFile(join(clsDir, 'config.json'), 'utf8'));
    const ref = robertaClassifierReference(await readWeights(clsDir), cfg, { ids: RIDS, mask: RMASK });
    expect(
      logErr(
        'RoBERTa classifier',
        relErr(
          gpu,
          ref.map((v) => [v]),
        ),
      ),
    ).toBeLessThan(TOL);

    const [loss] = await run(() =>
      sequenceClassificationLoss(
        model.forward(ids(RIDS), { attentionMask: ids(RMASK) }),
        tensor(Int32Array.from([2, 0]), [2], 'i32'),
        null,
      ),
    );
    const ce = (v: Vec, y: number) => Math.log(v.reduce((s, z) => s + Math.exp(z), 0)) - v[y];
    const refLoss = (ce(ref[0], 2) + ce(ref[1], 0)) / 2;
    expect(logErr('RoBERTa classification loss', Math.abs(loss - refLoss) / refLoss)).toBeLessThan(TOL);
    model.dispose();
  });
});

describe('vocabulary matrices larger than a binding', () => {
  // Binding limits just above each model's largest other operand, so only the vocab matrix is split.
  const limits: Array<[string, number, typeof gpt2Reference]> = [
    ['gpt2', 70_000, gpt2Reference],
    ['llama', 48 << 10, llamaReference],
  ];
  for (const [key, limit, reference] of limits) {
    it(`${key}: row blocks give the reference logits and the unsplit gradients`, async () => {
      const d = dirs[key];
      const labels = CAUSAL_IDS.map((row, b) => row.map((id, t) => (CAUSAL_MASK[b][t] ? id : -100)));
      const inp = { ids: CAUSAL_IDS, mask: CAUSAL_MASK };
      const grads = async (model: CausalLM) => {
        tidy(() => {
          const loss = causalLmLoss(
            model.forward(ids(inp.ids), { attentionMask: ids(inp.mask) }),
            ids(labels),
          );
          backward(loss);
          return loss;
        }).dispose();
        const vocab = checkpointTensors(model).filter(
          (t) => t.blocks[0].shape[1] === model.config.hiddenSize && t.shape[0] === model.config.vocabSize,
        );
        return Promise.all(vocab.map((t) => readCheckpointTensor(t, 'grad')));
      };
      const plain = await causal(d.dir, { trainable: true });
      const plainGrads = await grads(plain);
      plain.dispose();

      device().setBindingLimitForTesting(limit);
      try {
        const model = await causal(d.dir, { trainable: true });
        const vocabs = model.namedModules().filter(([, m]) => m instanceof VocabEmbedding);
        expect(vocabs.length).toBeGreaterThan(0);
        for (const [, m] of vocabs) expect((m as VocabEmbedding).blocks.length).toBe(2);
        expect(model.stateDict()).toHaveProperty(`${vocabs[0][0]}.weight.1`);
        const gpu = await run(() =>
          noGrad(() => model.forward(ids(inp.ids), { attentionMask: ids(inp.mask) })),
        );
        expect(
          logErr(`${key} logits, vocab in 2 blocks`, relErr(gpu, reference(d.weights, d.cfg, inp), real)),
        ).toBeLessThan(TOL);
        const blockGrads = await grads(model);
        blockGrads.forEach((g, i) => {
          const ref = plainGrads[i];
          const scale = ref.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
          const diff = g.reduce((s, v, j) => Math.max(s, Math.abs(v - ref[j])), 0);
          expect(logErr(`${key} vocab gradient, blocks vs one`, diff / scale)).toBeLessThan(1e-5);
        });
        model.dispose();
      } finally {
        device().setBindingLimitForTesting(null);
      }
    });
  }
});
