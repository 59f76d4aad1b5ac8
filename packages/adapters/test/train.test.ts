import { AdamW, backward, getDevice, mean, mul, randn, sub, type Tensor, tidy } from '@sharelora/core/node';
import { describe, expect, it } from 'vitest';
import {
  countParameters,
  injectAdapter,
  linearModules,
  METHODS,
  type Method,
  presetConfig,
  trainableParameters,
} from '../src/index.js';
import { useGpu } from './gpu.js';
import { input, TinyLlama } from './tiny.js';

const STEPS = 25;

describe('training with every variant', () => {
  useGpu();
  const optimizerBytes = new Map<Method, number>();
  const unique = new Map<Method, number>();

  it.each([...METHODS])(
    '%s: the loss falls and AdamW holds exactly 2×4 bytes per distinct trainable parameter',
    async (method) => {
      const model = new TinyLlama();
      const config = presetConfig(method, {
        r: 2,
        alpha: 4,
        dropout: method === 'lora' ? 0.1 : 0,
        targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      });
      const expected = countParameters(linearModules(model), config).total.trainable;
      injectAdapter(model, config, { rng: 1 });
      const params = trainableParameters(model);
      const n = params.reduce((s, p) => s + p.value.size, 0);
      expect(n).toBe(expected);
      const x = input([4, 3, 8]);
      const target = randn([4, 3, 4], { seed: 99 });
      const opt = new AdamW(params, { lr: 0.05, weightDecay: 0 });
      const before = getDevice().memoryReport().live.optimizer;
      const losses: number[] = [];
      for (let step = 0; step < STEPS; step++) {
        const loss = tidy(() => {
          const d = sub(model.forward(x), target);
          const l = mean(mul(d, d));
          backward(l);
          opt.step();
          opt.zeroGrad();
          return l;
        });
        losses.push(await (loss as Tensor).item());
        loss.dispose();
        if (step === 0) {
          const bytes = getDevice().memoryReport().live.optimizer - before;
          expect(bytes).toBe(2 * 4 * n);
          optimizerBytes.set(method, bytes);
          unique.set(method, n);
        }
      }
      expect(losses[STEPS - 1], losses.map((l) => l.toFixed(4)).join(' ')).toBeLessThan(0.5 * losses[0]);
      opt.dispose();
      model.dispose();
      x.dispose();
      target.dispose();
    },
  );

  it('optimizer state shrinks in proportion to the distinct trainable parameters', () => {
    const lora = optimizerBytes.get('lora') as number;
    for (const m of METHODS) {
      expect((optimizerBytes.get(m) as number) / lora).toBe(
        (unique.get(m) as number) / (unique.get('lora') as number),
      );
    }
    // 3 layers, 4 square 8×8 projections, r=2: LoRA 3·4·2·16; ShareA/ShareB 4·(2·8 + 3·2·8); ShareAB 4·2·16.
    expect(Object.fromEntries(unique)).toEqual({
      lora: 384,
      'share-a': 256,
      'share-b': 256,
      'share-ab': 128,
      'share-qkv': 224,
    });
  });
});
