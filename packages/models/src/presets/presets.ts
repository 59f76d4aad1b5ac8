/**
 * Tiny and small randomly initialised models of each architecture, written as real HF directories
 * (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json)
 * for tests, examples and the quickstart.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createModel } from '../arch/create.js';
import { initWeights } from '../arch/init.js';
import type { AnyModel, Arch, ModelConfig } from '../arch/types.js';
import { writeJson } from '../import/hf-llama.js';
import { parseConfig } from '../load/config.js';
import { saveModel } from '../load/save.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { gpt2Tokenizer, llamaTokenizer, type PresetTokenizer, robertaTokenizer } from './tokenizers.js';

/**
 * Sizes of the built-in random models ({@link createPreset}, {@link initPreset}): `tiny` (2 layers,
 * width 64) for tests, `small` (4 layers, width 128) for examples.
 */
export type PresetName = 'tiny' | 'small';
/** The architectures there are presets of: every {@link Arch}. */
export const PRESET_ARCHS: readonly Arch[] = ['gpt2', 'roberta', 'llama'];
/** Every {@link PresetName}, e.g. for a command line's choices. */
export const PRESET_NAMES: readonly PresetName[] = ['tiny', 'small'];

/**
 * Larger than transformers' 0.02 so that attention of these narrow models is far from uniform and
 * tests comparing against a reference see every weight's effect.
 */
const INIT_STD = 0.1;

const SHAPES = {
  gpt2: {
    tiny: { n_embd: 64, n_layer: 2, n_head: 4, n_positions: 128 },
    small: { n_embd: 128, n_layer: 4, n_head: 4, n_positions: 256 },
  },
  roberta: {
    tiny: {
      hidden_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 128,
      max_position_embeddings: 130,
    },
    small: {
      hidden_size: 128,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      intermediate_size: 256,
      max_position_embeddings: 258,
    },
  },
  llama: {
    // LLaMA 2 style: untied output matrix, grouped-query attention (4 query heads, 2 kv heads).
    tiny: {
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
      rope_theta: 10000,
      rope_scaling: null,
      tie_word_embeddings: false,
    },
    // LLaMA 3.2 style: tied output matrix, head_dim wider than hidden/heads, llama3 RoPE scaling.
    small: {
      hidden_size: 128,
      intermediate_size: 344,
      num_hidden_layers: 4,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 32,
      max_position_embeddings: 512,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
      tie_word_embeddings: true,
    },
  },
} as const;

interface PresetFiles {
  config: Record<string, unknown>;
  tok: PresetTokenizer;
}

function gpt2Files(preset: PresetName): PresetFiles {
  const s = SHAPES.gpt2[preset];
  const tok = gpt2Tokenizer(s.n_positions);
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: tok.vocabSize,
    ...s,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    embd_pdrop: 0.1,
    resid_pdrop: 0.1,
    attn_pdrop: 0.1,
    scale_attn_weights: true,
    initializer_range: INIT_STD,
    bos_token_id: tok.bosTokenId,
    eos_token_id: tok.eosTokenId,
    tie_word_embeddings: true,
    use_cache: true,
  };
  return { config, tok };
}

function robertaFiles(preset: PresetName): PresetFiles {
  const s = SHAPES.roberta[preset];
  // Positions start after padding_idx, so max_position_embeddings - 2 tokens fit.
  const tok = robertaTokenizer(s.max_position_embeddings - 2);
  const config = {
    architectures: ['RobertaForMaskedLM'],
    model_type: 'roberta',
    vocab_size: tok.vocabSize,
    ...s,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    type_vocab_size: 1,
    layer_norm_eps: 1e-5,
    initializer_range: INIT_STD,
    position_embedding_type: 'absolute',
    pad_token_id: tok.padTokenId,
    bos_token_id: tok.bosTokenId,
    eos_token_id: tok.eosTokenId,
    tie_word_embeddings: true,
  };
  return { config, tok };
}

function llamaFiles(preset: PresetName): PresetFiles {
  const s = SHAPES.llama[preset];
  const tok = llamaTokenizer(s.max_position_embeddings);
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: tok.vocabSize,
    ...s,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    attention_bias: false,
    mlp_bias: false,
    initializer_range: INIT_STD,
    bos_token_id: tok.bosTokenId,
    eos_token_id: tok.eosTokenId,
    use_cache: true,
  };
  return { config, tok };
}

const PRESET_FILES: Record<Arch, (preset: PresetName) => PresetFiles> = {
  gpt2: gpt2Files,
  roberta: robertaFiles,
  llama: llamaFiles,
};

/** Which preset to build, and how. */
export interface PresetOptions {
  arch: Arch;
  preset: PresetName;
  /** Seed of the random weights (default 0): same seed, same weights. */
  seed?: number;
  /** config.json keys to change, e.g. { attention_bias: true } (the tokenizer stays the preset's). */
  overrides?: Record<string, unknown>;
}

/** A preset model in memory: what initPreset writes, without touching a file system (e.g. in a browser). */
export interface Preset {
  model: AnyModel;
  tokenizer: Tokenizer;
  config: ModelConfig;
  /** The JSON files besides the weights and config.json, by file name (tokenizer, generation config). */
  files: Record<string, unknown>;
}

/** Builds a preset model with seeded random weights, and its tokenizer. Needs a current WebGPU device. */
export function createPreset(opts: PresetOptions): Preset {
  const { config: raw, tok } = PRESET_FILES[opts.arch](opts.preset);
  const config = parseConfig({ ...raw, ...opts.overrides }, `preset ${opts.arch}/${opts.preset}`);
  const model = createModel(config);
  try {
    initWeights(model, { seed: opts.seed ?? 0 });
  } catch (e) {
    model.dispose();
    throw e;
  }
  const files: Record<string, unknown> = {
    'tokenizer.json': tok.tokenizerJson,
    'tokenizer_config.json': tok.tokenizerConfig,
  };
  if (model.task === 'causal-lm') {
    files['generation_config.json'] = { bos_token_id: tok.bosTokenId, eos_token_id: tok.eosTokenId };
  }
  return { model, tokenizer: new Tokenizer(tok.tokenizerJson, tok.tokenizerConfig), config, files };
}

/** Which preset initPreset writes, and where. */
export interface InitPresetOptions extends PresetOptions {
  outDir: string;
}

/**
 * What {@link initPreset} wrote: the absolute output directory, the file names in it, the config
 * and the parameter count.
 */
export interface InitPresetResult {
  outDir: string;
  files: string[];
  config: ModelConfig;
  parameters: number;
}

/** Writes a preset model directory with seeded random weights. Needs a current WebGPU device. */
export async function initPreset(opts: InitPresetOptions): Promise<InitPresetResult> {
  const outDir = resolve(opts.outDir);
  const { model, config, files } = createPreset(opts);
  try {
    await mkdir(outDir, { recursive: true });
    for (const [name, value] of Object.entries(files)) await writeJson(join(outDir, name), value);
    // saveModel writes config.json last: a directory with one is complete.
    const weights = await saveModel(model, outDir);
    return {
      outDir,
      files: [...Object.keys(files), ...weights],
      config,
      parameters: model.numParameters(),
    };
  } finally {
    model.dispose();
  }
}
