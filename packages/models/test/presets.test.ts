/** `initPreset` directories: real tokenizers, seeded weights, configs that parse back. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { SafetensorsReader } from '@sharelora/core/node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Arch,
  createPreset,
  type InitPresetResult,
  initPreset,
  loadTokenizer,
  readConfig,
} from '../src/index.js';
import { useDevice, useTmp } from './helpers.js';

const device = useDevice();
const tmp = useTmp('presets');
const TEXT = 'Hello world, the cat and the dog went in. Ünïcödé ✓';

const made: Partial<Record<Arch, InitPresetResult>> = {};
beforeAll(async () => {
  device();
  for (const arch of ['gpt2', 'roberta', 'llama'] as const) {
    made[arch] = await initPreset({ arch, preset: 'tiny', outDir: join(tmp(), arch), seed: 11 });
  }
});

async function tokenizer(dir: string): Promise<Tokenizer> {
  const json = async (f: string) => JSON.parse(await readFile(join(dir, f), 'utf8'));
  return new Tokenizer(await json('tokenizer.json'), await json('tokenizer_config.json'));
}

describe('preset tokenizers load in @huggingface/tokenizers', () => {
  it('GPT-2: byte-level BPE, merges applied, lossless round trip, <|endoftext|> special', async () => {
    const r = made.gpt2 as InitPresetResult;
    const tok = await tokenizer(r.outDir);
    const enc = tok.encode(TEXT);
    expect(enc.tokens.slice(0, 6)).toEqual(['H', 'e', 'l', 'l', 'o', 'Ġw']);
    expect(enc.tokens).toContain('Ġthe');
    expect(tok.decode(enc.ids)).toBe(TEXT);
    expect(Math.max(...enc.ids)).toBeLessThan(r.config.vocabSize);
    const eot = tok.encode('<|endoftext|>').ids;
    expect(eot).toEqual([r.config.vocabSize - 1]);
    expect(r.config.eosTokenIds).toEqual(eot);
  });

  it('RoBERTa: <s> ... </s> around the text, special ids matching config.json', async () => {
    const r = made.roberta as InitPresetResult;
    const tok = await tokenizer(r.outDir);
    const enc = tok.encode(TEXT);
    expect(enc.ids[0]).toBe(0);
    expect(enc.ids[enc.ids.length - 1]).toBe(2);
    expect(tok.decode(enc.ids, { skip_special_tokens: true })).toBe(TEXT);
    expect(tok.encode(' <mask>', { add_special_tokens: false }).ids).toEqual([r.config.vocabSize - 1]);
    expect(r.config.padTokenId).toBe(tok.encode('<pad>', { add_special_tokens: false }).ids[0]);
  });

  it('LLaMA: byte fallback for characters outside the vocabulary, <s> prepended', async () => {
    const r = made.llama as InitPresetResult;
    const tok = await tokenizer(r.outDir);
    const enc = tok.encode(TEXT);
    expect(enc.ids[0]).toBe(1);
    expect(enc.tokens).toContain('▁the');
    expect(enc.tokens).toContain('<0xC3>');
    expect(tok.decode(enc.ids, { skip_special_tokens: true })).toBe(TEXT);
    expect(Math.max(...enc.ids)).toBeLessThan(r.config.vocabSize);
  });
});

describe('preset directories', () => {
  it('hold the HF files; config.json parses back to the preset', async () => {
    for (const r of Object.values(made) as InitPresetResult[]) {
      expect(r.files).toEqual(
        expect.arrayContaining([
          'config.json',
          'model.safetensors',
          'tokenizer.json',
          'tokenizer_config.json',
        ]),
      );
      // raw differs only by the torch_dtype saveModel records.
      expect({ ...(await readConfig(r.outDir)), raw: null }).toEqual({ ...r.config, raw: null });
    }
    const llama = made.llama as InitPresetResult;
    expect(llama.config).toMatchObject({ numHeads: 4, numKvHeads: 2, tieWordEmbeddings: false });
    expect(llama.files).toContain('generation_config.json');
  });

  it('same seed, same bytes; another seed, other weights', async () => {
    const again = await initPreset({
      arch: 'llama',
      preset: 'tiny',
      outDir: join(tmp(), 'llama-again'),
      seed: 11,
    });
    const other = await initPreset({
      arch: 'llama',
      preset: 'tiny',
      outDir: join(tmp(), 'llama-other'),
      seed: 12,
    });
    const bytes = (r: InitPresetResult) => readFile(join(r.outDir, 'model.safetensors'));
    expect((await bytes(again)).equals(await bytes(made.llama as InitPresetResult))).toBe(true);
    expect((await bytes(other)).equals(await bytes(again))).toBe(false);
    const reader = await SafetensorsReader.open(join(again.outDir, 'model.safetensors'));
    expect(reader.info('model.layers.0.self_attn.k_proj.weight').shape).toEqual([32, 64]);
    await reader.close();
  });
});

describe('createPreset (in memory, no files)', () => {
  it('builds the same weights and tokenizer that initPreset writes', async () => {
    const { model, tokenizer, config, files } = createPreset({ arch: 'llama', preset: 'tiny', seed: 11 });
    try {
      expect(config).toEqual((made.llama as InitPresetResult).config);
      expect(Object.keys(files).sort()).toEqual([
        'generation_config.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ]);
      expect(tokenizer.encode('the cat')).toEqual(
        (await loadTokenizer(made.llama?.outDir ?? '')).encode('the cat'),
      );
      const reader = await SafetensorsReader.open(join(made.llama?.outDir ?? '', 'model.safetensors'));
      const name = 'model.layers.0.self_attn.k_proj.weight';
      const written = await reader.read(name);
      const inMemory = (await model.stateDict()[name].data()) as Float32Array;
      expect(Array.from(inMemory)).toEqual(Array.from(written));
      await reader.close();
    } finally {
      model.dispose();
    }
  });
});
