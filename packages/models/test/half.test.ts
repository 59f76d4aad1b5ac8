import { join } from 'node:path';
import { decodeBF16, encodeBF16, type FloatDType, type Tensor } from '@sharelora/core/node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointTensors,
  initPreset,
  type LlamaForCausalLM,
  type LoadModelOptions,
  loadModel,
  saveModel,
  VocabEmbedding,
} from '../src/index.js';
import { ids, run, useDevice, useTmp } from './helpers.js';

const IDS = [
  [1, 5, 9, 2, 7],
  [3, 3, 8, 1, 4],
];

function relDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

describe('half-precision base weights', () => {
  const device = useDevice();
  const tmp = useTmp('half');
  const dir = (name: string) => join(tmp(), name);

  async function logits(path: string, opts: LoadModelOptions): Promise<Float32Array> {
    const { model } = await loadModel(path, opts);
    const out = await run(() => model.forward(ids(IDS)) as Tensor);
    model.dispose();
    return out;
  }

  beforeAll(async () => {
    device();
    await initPreset({ arch: 'llama', preset: 'tiny', outDir: dir('f32'), seed: 4 });
    // Odd widths: rows of 15 16-bit values do not fill whole u32 words.
    await initPreset({
      arch: 'gpt2',
      preset: 'tiny',
      outDir: dir('gpt2-f32'),
      seed: 4,
      overrides: { n_embd: 15, n_head: 3 },
    });
    for (const [src, dst, dtype] of [
      ['f32', 'bf16', 'BF16'],
      ['f32', 'f16', 'F16'],
      ['gpt2-f32', 'gpt2-bf16', 'BF16'],
    ] as const) {
      const { model } = await loadModel(dir(src));
      await saveModel(model, dir(dst), { dtype });
      model.dispose();
    }
  });

  it('a BF16 checkpoint kept in bf16 gives the logits of its f32 load, in half the weight memory', async () => {
    const memory = async (weightDtype: FloatDType) => {
      const before = device().memoryReport().live.weights;
      const { model } = await loadModel(dir('bf16'), { weightDtype });
      const bytes = device().memoryReport().live.weights - before;
      const dtypes = new Map(checkpointTensors(model).map((t) => [t.name, t.blocks[0].value.dtype]));
      model.dispose();
      return { bytes, dtypes };
    };
    const f32 = await memory('f32');
    const bf16 = await memory('bf16');
    expect(bf16.dtypes.get('model.layers.0.self_attn.q_proj.weight')).toBe('bf16');
    expect(bf16.dtypes.get('model.embed_tokens.weight')).toBe('bf16');
    expect(bf16.dtypes.get('lm_head.weight')).toBe('bf16');
    expect(bf16.dtypes.get('model.layers.0.input_layernorm.weight')).toBe('f32');
    expect([...f32.dtypes.values()].every((d) => d === 'f32')).toBe(true);
    // Only the norms' scales stay 4 bytes per element.
    expect(bf16.bytes).toBeLessThan(0.51 * f32.bytes);

    const ref = await logits(dir('bf16'), { weightDtype: 'f32' });
    const got = await logits(dir('bf16'), { weightDtype: 'bf16' });
    expect(relDiff(got, ref)).toBeLessThanOrEqual(1e-5);
  });

  it("'auto' (the frozen default) keeps F16 and BF16 as stored and F32 as f32; trainable loads are f32", async () => {
    const dtypeOf = async (path: string, opts: LoadModelOptions = {}) => {
      const model = (await loadModel(path, opts)).model as LlamaForCausalLM;
      const d = model.model.layers.at(0).mlp.down_proj.weight.value.dtype;
      model.dispose();
      return d;
    };
    expect(await dtypeOf(dir('bf16'))).toBe('bf16');
    expect(await dtypeOf(dir('f16'))).toBe('f16');
    expect(await dtypeOf(dir('f32'))).toBe('f32');
    expect(await dtypeOf(dir('bf16'), { trainable: true })).toBe('f32');
    await expect(loadModel(dir('bf16'), { trainable: true, weightDtype: 'bf16' })).rejects.toThrow(
      /weightDtype 'bf16'.*trainable weights need 'f32'/,
    );
    const ref = await logits(dir('f16'), { weightDtype: 'f32' });
    expect(relDiff(await logits(dir('f16'), {}), ref)).toBeLessThanOrEqual(1e-5);
  });

  it('F32 weights loaded as bf16 are rounded to nearest even', async () => {
    const ref = (await loadModel(dir('f32'))).model as LlamaForCausalLM;
    const model = (await loadModel(dir('f32'), { weightDtype: 'bf16' })).model as LlamaForCausalLM;
    const w = model.model.layers.at(1).self_attn.k_proj.weight.value;
    expect(w.dtype).toBe('bf16');
    const exact = (await ref.model.layers.at(1).self_attn.k_proj.weight.value.data()) as Float32Array;
    expect(await w.data()).toEqual(decodeBF16(encodeBF16(exact)));
    ref.dispose();
    model.dispose();
  });

  it('vocabulary row blocks are half too, with odd widths and over the binding limit', async () => {
    const compare = async (path: string) => {
      const ref = await logits(path, { weightDtype: 'f32' });
      const { model } = await loadModel(path, { weightDtype: 'bf16' });
      const vocab = model.namedModules().find(([, m]) => m instanceof VocabEmbedding)?.[1] as VocabEmbedding;
      const got = await run(() => model.forward(ids(IDS)) as Tensor);
      model.dispose();
      expect(vocab.blocks.every((b) => b.value.dtype === 'bf16')).toBe(true);
      expect(relDiff(got, ref)).toBeLessThanOrEqual(1e-5);
      return vocab;
    };
    await compare(dir('gpt2-bf16'));
    try {
      // Just above the other operands, so only the vocabulary matrices are split.
      device().setBindingLimitForTesting(48 << 10);
      expect((await compare(dir('bf16'))).blocks.length).toBeGreaterThan(1);
      // 257 f32 rows of 15 fit; the bf16 blocks take 256, so every block starts on a whole word.
      device().setBindingLimitForTesting(257 * 15 * 4);
      const vocab = await compare(dir('gpt2-bf16'));
      expect(vocab.blocks.length).toBeGreaterThan(1);
      expect(vocab.blockRows).toBe(256);
    } finally {
      device().setBindingLimitForTesting(null);
    }
  });
});
