/**
 * A GGUF whose block weights are llama.cpp blocks (Q4_K, Q6_K, Q8_0 and Q4_0 mixed, as a Q4_K_M file
 * mixes them) imported with its blocks kept, loaded quantized on the GPU, and checked against the
 * same file imported with every block decoded to F32 (core's dequantizeGgml, itself checked against
 * a float64 transcription of llama.cpp's reference loops).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f32ToF16Bits, Rng } from '@sharelora/core';
import { SafetensorsReader, writeSafetensors } from '@sharelora/core/node';
import { describe, expect, it } from 'vitest';
import {
  type AnyModel,
  type CausalLM,
  generateTokens,
  importGguf,
  loadModel,
  ModelLoadError,
  quantizeCheckpoint,
  weightBytesByFormat,
} from '../src/index.js';
import { buildGguf, type GgufKvValue, type GgufTensorSpec, GT } from './fixtures/gguf-writer.js';
import { ids, run, useDevice, useTmp } from './helpers.js';

useDevice();
const tmp = useTmp('gguf-quant');

// Rows of 256 (the K-quants' super-block); head size 64.
const D = 256;
const FFN = 512;
const VOCAB = 16;

const TYPES = { F32: 0, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14 } as const;
type QType = keyof typeof TYPES;
/** Bytes per 256 elements. */
const BLOCK_BYTES: Record<QType, number> = { F32: 1024, Q4_0: 144, Q8_0: 272, Q4_K: 144, Q6_K: 210 };

/** Random blocks with f16 scales where each type keeps them, sized so values stay near ±1. */
function blocks(type: QType, n: number, rng: Rng): Uint8Array {
  if (type === 'F32')
    return new Uint8Array(Float32Array.from({ length: n }, () => rng.normal() * 0.1).buffer);
  const out = new Uint8Array((n / 256) * BLOCK_BYTES[type]);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rng.uniform() * 256);
  const half = (at: number, v: number) => {
    const h = f32ToF16Bits(v * (0.5 + rng.uniform()));
    out[at] = h & 255;
    out[at + 1] = h >> 8;
  };
  if (type === 'Q8_0') for (let b = 0; b < n / 32; b++) half(b * 34, 0.004);
  if (type === 'Q4_0') for (let b = 0; b < n / 32; b++) half(b * 18, 0.05);
  if (type === 'Q4_K')
    for (let b = 0; b < n / 256; b++) {
      half(b * 144, 0.001);
      half(b * 144 + 2, 0.002);
    }
  if (type === 'Q6_K') for (let b = 0; b < n / 256; b++) half(b * 210 + 208, 0.0002);
  return out;
}

const LAYER: Array<[string, number, number, QType]> = [
  ['attn_q', D, D, 'Q4_K'],
  ['attn_k', D / 2, D, 'Q4_K'],
  ['attn_v', D / 2, D, 'Q6_K'],
  ['attn_output', D, D, 'Q4_0'],
  ['ffn_gate', FFN, D, 'Q4_K'],
  ['ffn_up', FFN, D, 'Q8_0'],
  ['ffn_down', D, FFN, 'Q6_K'],
];

function quantizedGguf(): { bytes: Uint8Array; raw: Map<string, Uint8Array> } {
  const rng = new Rng(3);
  const kvs: [string, GgufKvValue][] = [
    ['general.architecture', { type: GT.STRING, value: 'llama' }],
    ['llama.embedding_length', { type: GT.U32, value: D }],
    ['llama.feed_forward_length', { type: GT.U32, value: FFN }],
    ['llama.block_count', { type: GT.U32, value: 2 }],
    ['llama.attention.head_count', { type: GT.U32, value: 4 }],
    ['llama.attention.head_count_kv', { type: GT.U32, value: 2 }],
    ['llama.attention.layer_norm_rms_epsilon', { type: GT.F32, value: 1e-5 }],
    ['llama.context_length', { type: GT.U32, value: 64 }],
  ];
  const raw = new Map<string, Uint8Array>();
  const specs: GgufTensorSpec[] = [];
  const add = (name: string, rows: number, cols: number, type: QType) => {
    const data =
      rows === 1
        ? new Uint8Array(Float32Array.from({ length: cols }, () => 1 + 0.1 * rng.normal()).buffer)
        : blocks(type, rows * cols, rng);
    raw.set(name, data);
    specs.push({ name, dims: rows === 1 ? [cols] : [cols, rows], type: TYPES[type], data });
  };
  add('token_embd.weight', VOCAB, D, 'F32');
  for (let l = 0; l < 2; l++) {
    add(`blk.${l}.attn_norm.weight`, 1, D, 'F32');
    add(`blk.${l}.ffn_norm.weight`, 1, D, 'F32');
    for (const [name, rows, cols, type] of LAYER) add(`blk.${l}.${name}.weight`, rows, cols, type);
  }
  add('output_norm.weight', 1, D, 'F32');
  add('output.weight', VOCAB, D, 'Q6_K');
  return { bytes: buildGguf(kvs, specs), raw };
}

const TOKENS = [
  [1, 5, 9, 2, 14, 7, 3, 11],
  [4, 4, 8, 15, 0, 6, 12, 10],
];

describe('GGUF llama.cpp blocks kept quantized', () => {
  it('import keeps the block weights as stored; loading them gives the logits of the decoded import', async () => {
    const { bytes, raw } = quantizedGguf();
    const file = join(tmp(), 'q4km.gguf');
    await writeFile(file, bytes);
    const kept = await importGguf(file, { outDir: join(tmp(), 'kept') });
    const decoded = await importGguf(file, { outDir: join(tmp(), 'decoded'), dequantize: true });
    expect(kept.quantized).toEqual({ q4_k: 6, q6_k: 4, q4_0: 2, q8_0: 2 });
    expect(decoded.quantized).toEqual({});
    expect(kept.parameters).toBe(decoded.parameters);
    expect(kept.tensors).toBe(decoded.tensors);
    expect(kept.config.quantization_config).toEqual({ quant_method: 'gguf' });
    const config = JSON.parse(await readFile(join(kept.outDir, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual({ quant_method: 'gguf' });

    // v_proj (no RoPE permutation) holds the file's bytes as they were, with its type id beside it.
    const r = await SafetensorsReader.open(join(kept.outDir, 'model.safetensors'));
    try {
      const v = 'model.layers.1.self_attn.v_proj.weight';
      expect(r.info(v)).toMatchObject({ dtype: 'U8', shape: [D / 2, BLOCK_BYTES.Q6_K] });
      expect(new Uint8Array((await r.read(v, { as: 'raw' })).slice())).toEqual(
        raw.get('blk.1.attn_v.weight'),
      );
      expect(Array.from(await r.read(`${v}.ggml_type`, { as: 'raw' }))).toEqual([14]);
      // The output layer is not a block weight: decoded.
      expect(r.info('lm_head.weight').dtype).toBe('F32');
    } finally {
      await r.close();
    }

    const q = await loadModel(kept.outDir);
    const f = await loadModel(decoded.outDir);
    let models: AnyModel[] = [q.model, f.model];
    try {
      const bytesBy = weightBytesByFormat(q.model);
      expect(Object.keys(bytesBy).sort()).toEqual(['f32', 'q4_0', 'q4_k', 'q6_k', 'q8_0']);
      // q4_k: 6 weights, codes at half a byte plus two f32 per 32 elements.
      const q4k = 2 * (D * D + (D / 2) * D + FFN * D);
      expect(bytesBy.q4_k).toBe(q4k / 2 + (q4k / 32) * 8);
      const a = await run(() => q.model.forward(ids(TOKENS)));
      const b = await run(() => f.model.forward(ids(TOKENS)));
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < b.length; i++) {
        worst = Math.max(worst, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(b[i]));
      }
      // Generation too: the single-token decoder reads the kept weights as the float ones.
      const prompts = [
        [1, 5, 9],
        [4, 4],
      ];
      const gq = await generateTokens(q.model as CausalLM, prompts, { maxNewTokens: 6, eosIds: [] });
      const gf = await generateTokens(f.model as CausalLM, prompts, { maxNewTokens: 6, eosIds: [] });
      expect(gq.map((g) => g.tokens)).toEqual(gf.map((g) => g.tokens));
      expect(gq[0].tokens).toHaveLength(6);
      console.log(
        `kept-quantized vs decoded GGUF logits: max |diff| ${worst.toExponential(2)} of max |logit| ${scale.toFixed(3)}`,
      );
      expect(scale).toBeGreaterThan(0.1);
      expect(worst / scale).toBeLessThan(1e-5);
    } finally {
      for (const m of models) m.dispose();
      models = [];
    }

    // Asking for another quantization is refused; a float copy decodes the blocks exactly.
    await expect(loadModel(kept.outDir, { quantize: 'nf4' })).rejects.toThrow(ModelLoadError);
    const copy = join(tmp(), 'copy');
    await quantizeCheckpoint(kept.outDir, copy, 'f32');
    const c = await SafetensorsReader.open(join(copy, 'model.safetensors'));
    const d = await SafetensorsReader.open(join(decoded.outDir, 'model.safetensors'));
    try {
      for (const key of d.keys())
        expect(await c.read(key, { as: 'f32' }), key).toEqual(await d.read(key, { as: 'f32' }));
      expect(c.keys().sort()).toEqual(d.keys().sort());
    } finally {
      await c.close();
      await d.close();
    }
  });

  it('refuses a weight whose recorded type is not one it keeps, or whose bytes do not fit it', async () => {
    const { bytes } = quantizedGguf();
    const file = join(tmp(), 'bad.gguf');
    await writeFile(file, bytes);
    const s = await importGguf(file, { outDir: join(tmp(), 'bad') });
    const path = join(s.outDir, 'model.safetensors');
    const r = await SafetensorsReader.open(path);
    const tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array | Float32Array }> = {};
    for (const k of r.keys()) {
      const info = r.info(k);
      const data = new Uint8Array((await r.read(k, { as: 'raw' })).slice());
      tensors[k] = {
        dtype: info.dtype,
        shape: [...info.shape],
        data: info.dtype === 'F32' ? new Float32Array(data.buffer) : data,
      };
    }
    await r.close();
    const withType = async (id: number) => {
      tensors['model.layers.0.mlp.up_proj.weight.ggml_type'].data = Uint8Array.of(id);
      await writeSafetensors(path, tensors as never);
    };
    await withType(3); // Q4_1
    await expect(loadModel(s.outDir)).rejects.toThrow(/ggml_type holds \[3\], not one of the GGUF type ids/);
    await withType(2); // Q4_0: 144 bytes per 256 elements, where the stored Q8_0 rows have 272
    await expect(loadModel(s.outDir)).rejects.toThrow(
      /a q4_0 weight \[512, 256\] is U8 \[512, 144\].*got U8 \[512, 272\]/,
    );
  });
});
