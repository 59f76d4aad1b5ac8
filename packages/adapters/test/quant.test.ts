import { dequantize, Linear, type Module, type QuantFormat } from '@sharelora/core/node';
import { describe, expect, it } from 'vitest';
import { injectAdapter, LoraLinear, mergeAdapter, presetConfig } from '../src/index.js';
import { useGpu } from './gpu.js';
import { shareAStep, TinyGpt2, TinyLlama } from './tiny.js';

/**
 * Quantizes every Linear weight. `kept`: the layers keep it quantized; otherwise they get the f32
 * values it decodes to (the reference a quantized base must match).
 */
async function quantizeWeights(model: Module, format: QuantFormat, kept: boolean): Promise<void> {
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    const q = await m.quantizeWeight(format);
    if (kept) continue;
    m.weight.value = dequantize(q);
    m.quantized = null;
    q.dispose();
  }
}

const relErr = (got: Float32Array, want: Float32Array) => {
  let worst = 0;
  let scale = 1e-12;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return worst / scale;
};

describe('LoRA over quantized base weights', () => {
  useGpu();

  const cases = [
    [TinyLlama, ['q_proj', 'v_proj', 'o_proj'], 'nf4'],
    [TinyGpt2, ['c_attn', 'c_proj'], 'fp4'],
  ] as const;
  for (const [Model, targetModules, format] of cases) {
    it(`${Model.name} over ${format}: outputs and ShareA gradients equal those over the dequantized f32 base`, async () => {
      const run = async (kept: boolean) => {
        const model = new Model();
        await quantizeWeights(model, format, kept);
        return {
          ...(await shareAStep(model, targetModules)),
          quantized: model.namedModules().filter(([, m]) => m instanceof Linear && m.quantized).length,
        };
      };
      const ref = await run(false);
      const got = await run(true);
      expect(ref.quantized).toBe(0);
      expect(got.quantized).toBeGreaterThan(0);
      expect(relErr(got.y, ref.y)).toBeLessThan(1e-5);
      got.grads.forEach((g, i) => {
        expect(relErr(g, ref.grads[i])).toBeLessThan(1e-5);
      });
    });
  }

  it('merging into a quantized base is refused for every layer, naming the way out', async () => {
    const model = new TinyLlama();
    await quantizeWeights(model, 'nf4', true);
    injectAdapter(model, presetConfig('lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }), { rng: 1 });
    expect(() => mergeAdapter(model)).toThrow(/nf4 base weight.*quantize --to bf16/);
    const layers = model.namedModules().filter(([, m]) => m instanceof LoraLinear);
    expect(layers.length).toBeGreaterThan(0);
    for (const [, m] of layers) expect((m as LoraLinear).isMerged('default')).toBe(false);
  });
});
