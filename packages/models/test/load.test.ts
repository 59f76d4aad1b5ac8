/** config.json parsing, checkpoint variants that must load identically, and one clear error per broken directory. */
import { copyFile, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsReader, type TensorInput, writeSafetensors } from '@sharelora/core/node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  initPreset,
  type LlamaConfig,
  type LoadProgress,
  loadModel,
  ModelLoadError,
  parseConfig,
  saveModel,
} from '../src/index.js';
import { errorLog, ids, relErr, run, useDevice, useTmp } from './helpers.js';
import { readWeights } from './reference/math.js';
import { gpt2Reference } from './reference/models.js';

describe('parseConfig', () => {
  it('GPT-2: n_* keys, their generic aliases, and defaults for absent or null keys', () => {
    const a = parseConfig({
      model_type: 'gpt2',
      n_embd: 32,
      n_layer: 3,
      n_head: 4,
      n_positions: 64,
      n_inner: null,
    });
    const b = parseConfig({
      model_type: 'gpt2',
      hidden_size: 32,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      max_position_embeddings: 64,
    });
    for (const c of [a, b]) {
      expect(c).toMatchObject({ arch: 'gpt2', hiddenSize: 32, numLayers: 3, numHeads: 4, maxPositions: 64 });
      expect(c).toMatchObject({
        vocabSize: 50257,
        intermediateSize: 128,
        activation: 'gelu_new',
        layerNormEps: 1e-5,
      });
      expect(c).toMatchObject({ tieWordEmbeddings: true, eosTokenIds: [50256], scaleAttnWeights: true });
    }
  });

  it('LLaMA: transformers defaults, eos as int or list, head_dim null or explicit', () => {
    const d = parseConfig({ model_type: 'llama' }) as LlamaConfig;
    expect(d).toMatchObject({ hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128 });
    expect(d).toMatchObject({
      vocabSize: 32000,
      intermediateSize: 11008,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
    });
    expect(d.rope).toEqual({ theta: 10000, rotaryDim: 128 });
    expect(d.eosTokenIds).toEqual([2]);
    const l3 = parseConfig({
      model_type: 'llama',
      eos_token_id: [128001, 128009],
      head_dim: 64,
      num_key_value_heads: 8,
    });
    expect(l3).toMatchObject({ eosTokenIds: [128001, 128009], headDim: 64, numKvHeads: 8 });
    expect(
      parseConfig({ model_type: 'llama', head_dim: null, hidden_size: 64, num_attention_heads: 4 }),
    ).toMatchObject({ headDim: 16 });
  });

  it('LLaMA RoPE: rope_scaling with type or rope_type, and rope_parameters (transformers v5)', () => {
    const llama3 = {
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    const rope = (extra: Record<string, unknown>) =>
      (parseConfig({ model_type: 'llama', ...extra }) as LlamaConfig).rope;
    expect(rope({ rope_scaling: { type: 'linear', factor: 2 } }).scaling).toEqual({
      type: 'linear',
      factor: 2,
    });
    expect(rope({ rope_theta: 500000, rope_scaling: { rope_type: 'llama3', ...llama3 } })).toEqual({
      theta: 500000,
      rotaryDim: 128,
      scaling: { type: 'llama3', ...llama3 },
    });
    expect(rope({ rope_parameters: { rope_type: 'llama3', rope_theta: 500000, ...llama3 } })).toEqual(
      rope({ rope_theta: 500000, rope_scaling: { rope_type: 'llama3', ...llama3 } }),
    );
    expect(rope({ rope_parameters: { rope_type: 'default', rope_theta: 1e6 } })).toEqual({
      theta: 1e6,
      rotaryDim: 128,
    });
    expect(() =>
      parseConfig({ model_type: 'llama', rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'x/config.json'),
    ).toThrow(/^x\/config\.json: rope_scaling of type "llama3" needs a numeric "low_freq_factor"/);
    expect(() => parseConfig({ model_type: 'llama', rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(
      /"yarn" is not supported/,
    );
  });

  it('RoBERTa: labels from num_labels or id2label, problem_type, architectures without model_type', () => {
    const r = parseConfig({
      architectures: ['RobertaForSequenceClassification'],
      id2label: { 0: 'a', 1: 'b', 2: 'c' },
    });
    expect(r).toMatchObject({
      arch: 'roberta',
      numLabels: 3,
      padTokenId: 1,
      layerNormEps: 1e-12,
      problemType: null,
    });
    expect(r).toMatchObject({ hfArchitecture: 'RobertaForSequenceClassification', classifierDropout: 0.1 });
    expect(parseConfig({ model_type: 'roberta', num_labels: 1, problem_type: 'regression' })).toMatchObject({
      numLabels: 1,
      problemType: 'regression',
    });
    expect(parseConfig({ model_type: 'xlm-roberta' })).toMatchObject({ arch: 'roberta' });
  });

  it('unsupported and invalid configs name the file and say what is supported', () => {
    const err = (raw: unknown) => {
      try {
        parseConfig(raw, 'm/config.json');
      } catch (e) {
        expect(e).toBeInstanceOf(ModelLoadError);
        return e as ModelLoadError;
      }
      throw new Error('no error');
    };
    const mistral = err({ model_type: 'mistral' });
    expect(mistral.code).toBe('UNSUPPORTED');
    expect(mistral.message).toBe(
      'm/config.json: model_type "mistral" is not supported (supported model_type: gpt2, roberta, xlm-roberta, camembert, llama)',
    );
    expect(err({ model_type: 'gpt2', activation_function: 'quick_gelu' }).message).toMatch(
      /activation "quick_gelu".*not supported/,
    );
    expect(err({ model_type: 'gpt2', n_embd: 30, n_head: 4 }).message).toMatch(
      /n_embd \(30\) is not a multiple of n_head \(4\)/,
    );
    expect(err({ model_type: 'llama', num_attention_heads: 6, num_key_value_heads: 4 }).code).toBe(
      'BAD_CONFIG',
    );
    expect(err({ model_type: 'llama', vocab_size: '32000' }).message).toMatch(
      /"vocab_size" must be an integer/,
    );
    expect(err([1, 2]).code).toBe('BAD_CONFIG');
  });
});

const device = useDevice();
const tmp = useTmp('load');
const logErr = errorLog();
const IDS = [
  [17, 104, 250, 33, 71],
  [0, 45, 120, 3, 99],
];

/** A copy of `src` whose tensors are renamed/dropped by `rename` (null drops), plus `extra` ones; shards stay shards. */
async function rewrite(
  src: string,
  dst: string,
  rename: (name: string) => string | null,
  extra: Record<string, TensorInput> = {},
): Promise<void> {
  await mkdir(dst, { recursive: true });
  await copyFile(join(src, 'config.json'), join(dst, 'config.json'));
  let files = ['model.safetensors'];
  let index: { weight_map: Record<string, string> } | null = null;
  try {
    index = JSON.parse(await readFile(join(src, 'model.safetensors.index.json'), 'utf8'));
    files = [...new Set(Object.values((index as { weight_map: Record<string, string> }).weight_map))];
  } catch {
    // single file
  }
  const weightMap: Record<string, string> = {};
  for (const [i, f] of files.entries()) {
    const r = await SafetensorsReader.open(join(src, f));
    const out: Record<string, TensorInput> = i === 0 ? { ...extra } : {};
    for (const k of r.keys()) {
      const name = rename(k);
      if (name === null) continue;
      const info = r.info(k);
      const raw = await r.read(k, { as: 'raw' });
      const data =
        info.dtype === 'F32' ? new Float32Array(raw.slice().buffer) : new Uint16Array(raw.slice().buffer);
      out[name] = { dtype: info.dtype, shape: info.shape, data };
    }
    await r.close();
    for (const n of Object.keys(out)) weightMap[n] = f;
    await writeSafetensors(join(dst, f), out);
  }
  if (index)
    await writeFile(
      join(dst, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
}

async function logits(dir: string): Promise<Float32Array> {
  const { model } = await loadModel(dir);
  const out = await run(() => model.forward(ids(IDS)));
  model.dispose();
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

describe('checkpoint variants load like the plain checkpoint', () => {
  let gpt2 = '';
  let llama = '';
  let roberta = '';
  let plainGpt2: Float32Array;
  beforeAll(async () => {
    device();
    gpt2 = join(tmp(), 'gpt2');
    llama = join(tmp(), 'llama');
    roberta = join(tmp(), 'roberta');
    await initPreset({ arch: 'gpt2', preset: 'tiny', outDir: gpt2, seed: 3 });
    await initPreset({
      arch: 'llama',
      preset: 'tiny',
      outDir: llama,
      seed: 3,
      overrides: { num_hidden_layers: 1 },
    });
    await initPreset({
      arch: 'roberta',
      preset: 'tiny',
      outDir: roberta,
      seed: 3,
      overrides: { num_hidden_layers: 1 },
    });
    plainGpt2 = await logits(gpt2);
  });

  it('sharded (index + shards) and bare (no transformer. prefix, with mask buffers and a tied lm_head copy)', async () => {
    const { model } = await loadModel(gpt2);
    const sharded = join(tmp(), 'gpt2-sharded');
    const files = await saveModel(model, sharded, { maxShardBytes: 40_000 });
    model.dispose();
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    expect(maxDiff(await logits(sharded), plainGpt2)).toBe(0);

    const bare = join(tmp(), 'gpt2-bare');
    const w = await readWeights(gpt2);
    const wte = w.get('transformer.wte.weight');
    await rewrite(gpt2, bare, (n) => n.replace(/^transformer\./, ''), {
      'h.0.attn.bias': { dtype: 'F32', shape: [1, 1, 4, 4], data: new Float32Array(16) },
      'h.1.attn.masked_bias': { dtype: 'F32', shape: [], data: new Float32Array([-1e4]) },
      'lm_head.weight': { dtype: 'F32', shape: wte?.shape ?? [], data: Float32Array.from(wte?.data ?? []) },
    });
    const loaded = await loadModel(bare);
    expect(loaded.ignored).toEqual(['lm_head.weight']);
    loaded.model.dispose();
    expect(maxDiff(await logits(bare), plainGpt2)).toBe(0);
  });

  it('BF16 weights convert on load; sharded + prefix-less BF16 loads equal to plain BF16', async () => {
    const { model } = await loadModel(gpt2);
    const bf16 = join(tmp(), 'gpt2-bf16');
    await saveModel(model, bf16, { dtype: 'BF16' });
    const bf16Sharded = join(tmp(), 'gpt2-bf16-sharded');
    await saveModel(model, bf16Sharded, { dtype: 'BF16', maxShardBytes: 30_000 });
    model.dispose();
    expect(JSON.parse(await readFile(join(bf16, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    const bf16Logits = await logits(bf16);
    const cfg = JSON.parse(await readFile(join(bf16, 'config.json'), 'utf8'));
    const ref = gpt2Reference(await readWeights(bf16), cfg, { ids: IDS });
    expect(logErr('GPT-2 from BF16 vs reference on the BF16 file', relErr(bf16Logits, ref))).toBeLessThan(
      1e-4,
    );
    expect(maxDiff(bf16Logits, plainGpt2)).toBeGreaterThan(1e-4);

    const combo = join(tmp(), 'gpt2-bf16-sharded-bare');
    await rewrite(bf16Sharded, combo, (n) => n.replace(/^transformer\./, ''));
    expect(maxDiff(await logits(combo), bf16Logits)).toBe(0);
  });

  it('LLaMA without the model. prefix and with rotary inv_freq buffers', async () => {
    const bare = join(tmp(), 'llama-bare');
    await rewrite(llama, bare, (n) => n.replace(/^model\./, ''), {
      'layers.0.self_attn.rotary_emb.inv_freq': { dtype: 'F32', shape: [8], data: new Float32Array(8) },
    });
    expect(maxDiff(await logits(bare), await logits(llama))).toBe(0);
  });

  it('RoBERTa: lm_head.decoder.bias for lm_head.bias, tied decoder weight and pooler ignored', async () => {
    const variant = join(tmp(), 'roberta-alias');
    const w = await readWeights(roberta);
    const emb = w.get('roberta.embeddings.word_embeddings.weight');
    const C = emb?.shape[1] ?? 0;
    await rewrite(roberta, variant, (n) => (n === 'lm_head.bias' ? 'lm_head.decoder.bias' : n), {
      'lm_head.decoder.weight': {
        dtype: 'F32',
        shape: emb?.shape ?? [],
        data: Float32Array.from(emb?.data ?? []),
      },
      'roberta.pooler.dense.weight': { dtype: 'F32', shape: [C, C], data: new Float32Array(C * C) },
      'roberta.pooler.dense.bias': { dtype: 'F32', shape: [C], data: new Float32Array(C) },
    });
    const mlm = async (dir: string) => {
      const loaded = await loadModel(dir);
      const out = await run(() => loaded.model.forward(ids(IDS)));
      loaded.model.dispose();
      return { out, ignored: loaded.ignored };
    };
    const a = await mlm(roberta);
    const b = await mlm(variant);
    expect(b.ignored.sort()).toEqual([
      'lm_head.decoder.weight',
      'roberta.pooler.dense.bias',
      'roberta.pooler.dense.weight',
    ]);
    expect(maxDiff(a.out, b.out)).toBe(0);
  });

  it('reports progress in bytes up to the total', async () => {
    const seen: LoadProgress[] = [];
    const { model } = await loadModel(llama, { onProgress: (p) => seen.push(p) });
    const params = model.numParameters();
    model.dispose();
    const last = seen[seen.length - 1];
    expect(last.loadedBytes).toBe(last.totalBytes);
    expect(last.totalBytes).toBe(params * 4);
    expect(seen.every((p, i) => i === 0 || p.loadedBytes >= seen[i - 1].loadedBytes)).toBe(true);
  });

  describe('broken directories give one ModelLoadError naming the file', () => {
    async function failure(dir: string): Promise<ModelLoadError> {
      try {
        (await loadModel(dir)).model.dispose();
      } catch (e) {
        expect(e).toBeInstanceOf(ModelLoadError);
        return e as ModelLoadError;
      }
      throw new Error(`${dir} loaded`);
    }
    const variant = async (
      name: string,
      rename: (n: string) => string | null,
      extra?: Record<string, TensorInput>,
    ) => {
      const dir = join(tmp(), name);
      await rewrite(gpt2, dir, rename, extra);
      return dir;
    };

    it('missing, unexpected and mis-shaped tensors, each alone and all in one message', async () => {
      const file = (dir: string) =>
        `${join(dir, 'model.safetensors')}: does not match GPT2LMHeadModel as ${join(dir, 'config.json')} describes it: `;
      const missing = await variant('missing', (n) => (n === 'transformer.h.0.ln_1.bias' ? null : n));
      expect((await failure(missing)).message).toBe(`${file(missing)}missing (1): transformer.h.0.ln_1.bias`);

      const extra = {
        'transformer.h.0.attn.extra': { dtype: 'F32', shape: [2], data: new Float32Array(2) },
      } as const;
      const unexpected = await variant('unexpected', (n) => n, extra);
      expect((await failure(unexpected)).message).toBe(
        `${file(unexpected)}unexpected (1): transformer.h.0.attn.extra`,
      );

      const wpe = {
        'transformer.wpe.weight': { dtype: 'F32', shape: [64, 64], data: new Float32Array(64 * 64) },
      } as const;
      const shape = await variant('shape', (n) => (n === 'transformer.wpe.weight' ? null : n), wpe);
      expect((await failure(shape)).message).toBe(
        `${file(shape)}shape mismatch (1): transformer.wpe.weight expected [128, 64] got [64, 64]`,
      );

      const all = await variant(
        'all',
        (n) =>
          ['transformer.wpe.weight', 'transformer.ln_f.weight', 'transformer.h.1.mlp.c_fc.bias'].includes(n)
            ? null
            : n,
        {
          ...extra,
          ...wpe,
          'transformer.h.1.mlp.c_fc.bias': { dtype: 'I32', shape: [256], data: new Int32Array(256) },
        },
      );
      const e = await failure(all);
      expect(e.code).toBe('CHECKPOINT_MISMATCH');
      expect(e.message).toBe(
        `${file(all)}missing (1): transformer.ln_f.weight; unexpected (1): transformer.h.0.attn.extra; ` +
          'shape mismatch (1): transformer.wpe.weight expected [128, 64] got [64, 64]; not a float dtype (1): transformer.h.1.mlp.c_fc.bias (I32)',
      );
    });

    it('truncated or garbage weight file', async () => {
      const trunc = await variant('truncated', (n) => n);
      const file = join(trunc, 'model.safetensors');
      await truncate(file, 10_000);
      const e = await failure(trunc);
      expect(e.code).toBe('BAD_CHECKPOINT');
      expect(e.path).toBe(file);
      expect(e.message).toMatch(new RegExp(`^${file}: not a readable safetensors file: .*TRUNCATED`));

      await writeFile(file, 'this is not a safetensors file at all');
      expect((await failure(trunc)).message).toMatch(new RegExp(`^${file}: not a readable safetensors file`));
    });

    it('config.json absent, or with an unknown model_type', async () => {
      const dir = await variant('no-config', (n) => n);
      await rm(join(dir, 'config.json'));
      expect((await failure(dir)).message).toBe(
        `${join(dir, 'config.json')}: not found (a model directory needs config.json)`,
      );
      await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'falcon' }));
      const e = await failure(dir);
      expect(e.code).toBe('UNSUPPORTED');
      expect(e.message).toMatch(
        new RegExp(`^${join(dir, 'config.json')}: model_type "falcon" is not supported`),
      );
    });

    it('an index naming a missing shard, or a tensor its shard lacks; no weights at all', async () => {
      const { model } = await loadModel(gpt2);
      const dir = join(tmp(), 'shard-missing');
      const files = await saveModel(model, dir, { maxShardBytes: 40_000 });
      model.dispose();
      const shard = files.find((f) => f.startsWith('model-00002-')) as string;
      await rm(join(dir, shard));
      const e = await failure(dir);
      expect(e.code).toBe('NO_WEIGHTS');
      expect(e.message).toBe(
        `${join(dir, shard)}: missing, but ${join(dir, 'model.safetensors.index.json')} lists it`,
      );

      const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
      index.weight_map = Object.fromEntries(Object.entries(index.weight_map).filter(([, f]) => f !== shard));
      index.weight_map['transformer.ghost'] = files.find((f) => f.startsWith('model-00001-'));
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
      expect((await failure(dir)).message).toMatch(
        /model\.safetensors\.index\.json: lists tensors its shards do not contain: transformer\.ghost \(in model-00001-/,
      );

      const empty = join(tmp(), 'empty');
      await mkdir(empty);
      await copyFile(join(gpt2, 'config.json'), join(empty, 'config.json'));
      await writeFile(join(empty, 'pytorch_model.bin'), '');
      expect((await failure(empty)).message).toBe(
        `${join(empty, 'model.safetensors')}: not found (nor model.safetensors.index.json); pytorch_model.bin is not a safetensors checkpoint (convert it, or use sharelora import for GGUF)`,
      );
    });
  });
});
