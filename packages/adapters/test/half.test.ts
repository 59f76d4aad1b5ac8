import { cast, decodeBF16, encodeBF16, Linear, type Module, noGrad } from '@sharelora/core/node';
import { describe, expect, it } from 'vitest';
import { injectAdapter, LoraLinear, mergeAdapter, presetConfig } from '../src/index.js';
import { useGpu } from './gpu.js';
import { input, maxAbsDiff, randomize, shareAStep, TinyGpt2, TinyLlama, values } from './tiny.js';

/** Rounds every Linear weight to bf16: kept as bf16 (`half`) or as f32 holding the same values. */
function roundWeights(model: Module, half: boolean): void {
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    m.weight.trainable = false;
    const rounded = cast(m.weight.value, 'bf16');
    if (half) m.weight.value = rounded;
    else {
      m.weight.value = cast(rounded, 'f32');
      rounded.dispose();
    }
  }
}

describe('LoRA over half-precision base weights', () => {
  useGpu();

  const cases = [
    [TinyLlama, ['q_proj', 'v_proj', 'o_proj']],
    [TinyGpt2, ['c_attn', 'c_proj']],
  ] as const;
  for (const [Model, targetModules] of cases) {
    it(`${Model.name}: forward and adapter gradients equal those over f32 weights of the same values`, async () => {
      const run = async (half: boolean) => {
        const model = new Model();
        roundWeights(model, half);
        return { model, ...(await shareAStep(model, targetModules)) };
      };
      const ref = await run(false);
      const got = await run(true);
      const q = got.model.namedModules().find(([, m]) => m instanceof LoraLinear)?.[1] as LoraLinear;
      expect(q.weight.value.dtype).toBe('bf16');
      expect(got.y).toEqual(ref.y);
      expect(got.grads).toEqual(ref.grads);
    });
  }

  it('merging into a bf16 weight rounds W + s·B A to bf16 and keeps the dtype', async () => {
    const build = (half: boolean) => {
      const model = new TinyLlama();
      roundWeights(model, half);
      randomize(injectAdapter(model, presetConfig('lora', { r: 2, targetModules: ['q_proj'] }), { rng: 3 }));
      return model;
    };
    const ref = build(false);
    const model = build(true);
    const x = input([2, 3, 8]);
    mergeAdapter(ref);
    mergeAdapter(model);
    const path = 'model.layers.1.self_attn.q_proj';
    const w = (model.getSubmodule(path) as LoraLinear).weight.value;
    const wRef = await values((ref.getSubmodule(path) as LoraLinear).weight.value);
    expect(w.dtype).toBe('bf16');
    expect(await values(w)).toEqual(decodeBF16(encodeBF16(wRef)));
    const y = await values(noGrad(() => model.forward(x)));
    const yRef = await values(noGrad(() => ref.forward(x)));
    expect(maxAbsDiff(y, yRef)).toBeGreaterThan(0);
    expect(maxAbsDiff(y, yRef)).toBeLessThan(0.05);
  });
});
