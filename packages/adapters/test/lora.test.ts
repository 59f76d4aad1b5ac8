import {
  add,
  assignTensor,
  backward,
  noGrad,
  type Parameter,
  Rng,
  type Tensor,
  tidy,
} from '@sharelora/core/node';
import { describe, expect, it } from 'vitest';
import {
  AdapterError,
  disableAdapters,
  type InjectedAdapter,
  injectAdapter,
  LoraLinear,
  listAdapters,
  type Method,
  mergeAdapter,
  mergeAndUnload,
  presetConfig,
  setActiveAdapter,
  trainableParameters,
  unmergeAdapter,
} from '../src/index.js';
import { useGpu } from './gpu.js';
import { input, maxAbsDiff, TinyGpt2, TinyLlama, values, weightedLoss } from './tiny.js';

/** Gives every matrix random values (B starts at zero, which would make A's gradient vanish). */
function randomize(a: InjectedAdapter, seed: number): void {
  const rng = new Rng(seed);
  for (const p of a.matrices.values()) {
    assignTensor(p.value, {
      data: Float32Array.from({ length: p.value.size }, () => rng.normal() * 0.3),
      shape: p.shape,
    });
  }
}

async function forward(model: TinyLlama | TinyGpt2, x: Tensor): Promise<Float32Array> {
  const y = noGrad(() => model.forward(x));
  const out = await values(y);
  y.dispose();
  return out;
}

const ATTN = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

describe('LoRA / ShareLoRA layers', () => {
  useGpu();

  it('injection wraps the targets, freezes the base and ties shared matrices into one Parameter', async () => {
    const model = new TinyLlama();
    const a = injectAdapter(model, presetConfig('share-a', { r: 2, targetModules: ATTN }), { rng: 5 });
    const q = (i: number) => model.getSubmodule(`model.layers.${i}.self_attn.q_proj`) as LoraLinear;
    expect(q(0)).toBeInstanceOf(LoraLinear);
    expect(q(0).lora_A.get('default')).toBe(q(2).lora_A.get('default'));
    expect(q(0).lora_B.get('default')).not.toBe(q(1).lora_B.get('default'));
    expect(q(0).weight.trainable).toBe(false);
    expect(model.lm_head.weight.trainable).toBe(false);
    // 4 shared A + 12 per-layer B, nothing else.
    const trainable = trainableParameters(model);
    expect(trainable.length).toBe(16);
    expect(new Set(trainable)).toEqual(new Set(a.matrices.values()));
    expect(model.namedParameters({ trainableOnly: true }).map(([n]) => n)).toContain(
      'model.layers.0.self_attn.q_proj.lora_A.default',
    );
    // kaiming-uniform a=√5 on [r, in]: U(±1/√in); B zeros.
    const A = await values((q(0).lora_A.get('default') as Parameter).value);
    expect(Math.max(...A.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(8));
    expect(Math.max(...A.map(Math.abs))).toBeGreaterThan(0.5 / Math.sqrt(8));
    expect(await values((q(1).lora_B.get('default') as Parameter).value)).toEqual(new Float32Array(8 * 2));
    model.dispose();
  });

  it.each<Method>(['share-a', 'share-b', 'share-ab', 'share-qkv'])(
    '%s: the gradient of each shared matrix is the sum of the per-layer gradients of untied copies',
    async (method) => {
      const x = input([2, 3, 8]);
      const tied = new TinyLlama();
      const a = injectAdapter(tied, presetConfig(method, { r: 3, alpha: 6, targetModules: ATTN }), {
        rng: 1,
      });
      randomize(a, 2);
      // The same adapter with every matrix per site, holding the tied model's values.
      const untied = new TinyLlama();
      const u = injectAdapter(untied, presetConfig('lora', { r: 3, alpha: 6, targetModules: ATTN }), {
        rng: 9,
      });
      const siteMatrix = (ad: InjectedAdapter, id: string, kind: 'A' | 'B') => {
        const s = ad.plan.sites.find((x) => x.id === id);
        if (!s) throw new Error(id);
        return ad.matrices.get(kind === 'A' ? s.aKey : s.bKey) as Parameter;
      };
      for (const s of u.plan.sites) {
        for (const kind of ['A', 'B'] as const)
          assignTensor(siteMatrix(u, s.id, kind).value, siteMatrix(a, s.id, kind).value);
      }
      const shared = [...a.plan.matrices.values()].filter((g) => g.sites.length > 1);
      expect(shared.length).toBeGreaterThan(0);
      if (method === 'share-qkv') {
        expect(shared.map((g) => g.sharedOver)).toEqual([
          'self_attn.{q_proj,k_proj,v_proj}',
          'self_attn.o_proj',
        ]);
        expect(shared[0].sites.length).toBe(9);
      }
      for (const m of [tied, untied]) {
        tidy(() => backward(weightedLoss(m.forward(x))));
      }
      for (const g of a.plan.matrices.values()) {
        const got = await values((a.matrices.get(g.key) as Parameter).grad as Tensor);
        const sum = new Float64Array(got.length);
        for (const s of g.sites) {
          const part = await values(siteMatrix(u, s.id, g.kind).grad as Tensor);
          for (let i = 0; i < sum.length; i++) sum[i] += part[i];
        }
        const scale = Math.max(...sum.map(Math.abs));
        expect(scale).toBeGreaterThan(0);
        expect(maxAbsDiff(got, sum) / scale, `${g.key}`).toBeLessThan(1e-5);
      }
      tied.dispose();
      untied.dispose();
      x.dispose();
    },
  );

  it('merged forward equals the adapter forward; unmerge restores the weights (LLaMA layout)', async () => {
    const x = input([2, 3, 8]);
    const model = new TinyLlama();
    const before = await values(model.model.layers.at(1).self_attn.q_proj.weight.value);
    randomize(
      injectAdapter(model, presetConfig('share-ab', { r: 2, alpha: 4, targetModules: ATTN }), { rng: 3 }),
      4,
    );
    const adapted = await forward(model, x);
    mergeAdapter(model);
    expect(listAdapters(model)[0].merged).toBe(true);
    const merged = await forward(model, x);
    expect(maxAbsDiff(merged, adapted)).toBeLessThan(1e-5);
    const q1 = model.getSubmodule('model.layers.1.self_attn.q_proj') as LoraLinear;
    expect(maxAbsDiff(await values(q1.weight.value), before)).toBeGreaterThan(1e-3);
    expect(() => disableAdapters(model, () => 0)).toThrow(/merged into the weights/);
    unmergeAdapter(model);
    expect(maxAbsDiff(await values(q1.weight.value), before)).toBeLessThan(1e-6);
    expect(maxAbsDiff(await forward(model, x), adapted)).toBeLessThan(1e-5);
    model.dispose();
    x.dispose();
  });

  it('GPT-2 Conv1D c_attn adapted on its q and v parts only: merge respects layout and parts', async () => {
    const x = input([2, 3, 8]);
    const model = new TinyGpt2();
    const base = await forward(model, x);
    const w0 = await values(model.transformer.h.at(0).attn.c_attn.weight.value);
    const a = injectAdapter(
      model,
      presetConfig('share-qkv', { r: 2, alpha: 8, targetModules: ['c_attn[q,v]'] }),
      { rng: 1 },
    );
    expect([...a.plan.matrices.keys()]).toEqual([
      'A:attn.c_attn[q,k,v]',
      'B:transformer.h.0.attn.c_attn[q]',
      'B:transformer.h.0.attn.c_attn[v]',
      'B:transformer.h.1.attn.c_attn[q]',
      'B:transformer.h.1.attn.c_attn[v]',
    ]);
    randomize(a, 5);
    const adapted = await forward(model, x);
    expect(maxAbsDiff(adapted, base)).toBeGreaterThan(1e-3);
    mergeAdapter(model);
    expect(maxAbsDiff(await forward(model, x), adapted)).toBeLessThan(1e-5);
    // Weight [in, 3·d]: the k columns (8..15) are untouched, q and v columns changed.
    const w1 = await values((model.getSubmodule('transformer.h.0.attn.c_attn') as LoraLinear).weight.value);
    const cols = (w: Float32Array, c0: number, c1: number) => w.filter((_, i) => i % 24 >= c0 && i % 24 < c1);
    expect(maxAbsDiff(cols(w1, 8, 16), cols(w0, 8, 16))).toBe(0);
    expect(maxAbsDiff(cols(w1, 0, 8), cols(w0, 0, 8))).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(cols(w1, 16, 24), cols(w0, 16, 24))).toBeGreaterThan(1e-3);
    unmergeAdapter(model);
    expect(maxAbsDiff(await values(model.transformer.h.at(0).attn.c_attn.weight.value), w0)).toBeLessThan(
      1e-6,
    );
    // mergeAndUnload leaves a plain model computing the adapted function.
    mergeAndUnload(model);
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).not.toBeInstanceOf(LoraLinear);
    expect(listAdapters(model)).toEqual([]);
    expect(maxAbsDiff(await forward(model, x), adapted)).toBeLessThan(1e-5);
    model.dispose();
    x.dispose();
  });

  it('with a residual, an adapted layer gives residual + its output (one branch, and q/v parts of a fused weight)', async () => {
    const llama = new TinyLlama();
    const gpt2 = new TinyGpt2();
    randomize(injectAdapter(llama, presetConfig('lora', { r: 2, targetModules: ['o_proj'] }), { rng: 2 }), 3);
    randomize(
      injectAdapter(gpt2, presetConfig('share-qkv', { r: 2, targetModules: ['c_attn[q,v]'] }), { rng: 4 }),
      5,
    );
    for (const layer of [
      llama.getSubmodule('model.layers.0.self_attn.o_proj') as LoraLinear,
      gpt2.getSubmodule('transformer.h.1.attn.c_attn') as LoraLinear,
    ]) {
      const x = input([2, 3, layer.inFeatures]);
      const r = input([2, 3, layer.outFeatures], 8);
      const [onto, sum] = noGrad(() => [layer.forward(x, r), add(layer.forward(x), r)]);
      expect(maxAbsDiff(await values(onto), await values(sum))).toBeLessThan(1e-6);
      for (const t of [x, r, onto, sum]) t.dispose();
    }
    llama.dispose();
    gpt2.dispose();
  });

  it('disabled adapters give the base forward; several adapters switch', async () => {
    const x = input([2, 3, 8]);
    const base = await forward(new TinyLlama(), x);
    const model = new TinyLlama();
    const a = injectAdapter(model, presetConfig('lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }), {
      name: 'a',
      rng: 1,
    });
    const b = injectAdapter(model, presetConfig('share-a', { r: 4, targetModules: ['o_proj'] }), {
      name: 'b',
      rng: 2,
    });
    randomize(a, 1);
    randomize(b, 2);
    expect(listAdapters(model).map((i) => [i.name, i.active])).toEqual([
      ['a', true],
      ['b', false],
    ]);
    expect(new Set(trainableParameters(model))).toEqual(new Set(a.matrices.values()));
    const ya = await forward(model, x);
    const off = await disableAdapters(model, () => forward(model, x));
    expect(maxAbsDiff(off, base)).toBe(0);
    expect(maxAbsDiff(ya, base)).toBeGreaterThan(1e-3);
    setActiveAdapter(model, 'b');
    expect(new Set(trainableParameters(model))).toEqual(new Set(b.matrices.values()));
    const yb = await forward(model, x);
    expect(maxAbsDiff(yb, base)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(yb, ya)).toBeGreaterThan(1e-3);
    setActiveAdapter(model, 'a');
    expect(maxAbsDiff(await forward(model, x), ya)).toBe(0);
    expect(() => setActiveAdapter(model, 'c')).toThrow(AdapterError);
    model.dispose();
    x.dispose();
  });

  it('validates against the model: GQA forbids sharing B across q/k/v; fanInFanOut must match the layout', () => {
    const gqa = new TinyLlama({ kv: 4 });
    const cfg = { r: 2, targetModules: ['q_proj', 'k_proj', 'v_proj'] };
    expect(() => injectAdapter(gqa, { ...cfg, sharing: { shareB: true, group: 'qkv' } })).toThrow(
      /cannot share B over self_attn\.\{q_proj,k_proj,v_proj\}.*out=8.*out=4/,
    );
    // Nothing was changed by the failed injection.
    expect(gqa.getSubmodule('model.layers.0.self_attn.q_proj')).not.toBeInstanceOf(LoraLinear);
    expect(() => injectAdapter(gqa, presetConfig('share-qkv', cfg))).not.toThrow();
    gqa.dispose();
    const gpt = new TinyGpt2();
    expect(() => injectAdapter(gpt, { targetModules: ['c_attn'], fanInFanOut: false })).toThrow(
      /fanInFanOut is false but transformer\.h\.0\.attn\.c_attn stores its weight \[in, out\]/,
    );
    gpt.dispose();
  });
});
