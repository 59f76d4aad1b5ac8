/**
 * The Hugging Face LLaMA directory the importers produce: config.json, generation_config.json and
 * model.safetensors (or HF-style shards plus model.safetensors.index.json for large models).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DTYPE_ITEMSIZE, type TensorInput } from '@sharelora/core';
import { writeSafetensors } from '@sharelora/core/node';
import { listDir, writeTextAtomic } from './file.js';

/** config.json of a LlamaForCausalLM, in the keys and units transformers writes. */
export interface HfLlamaConfig {
  architectures: ['LlamaForCausalLM'];
  model_type: 'llama';
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: { rope_type: 'linear'; factor: number } | null;
  hidden_act: 'silu';
  tie_word_embeddings: boolean;
  attention_bias: false;
  mlp_bias: false;
  bos_token_id: number;
  eos_token_id: number;
  torch_dtype: 'float32' | 'float16' | 'bfloat16';
  initializer_range: number;
  pretraining_tp: 1;
  use_cache: true;
  attention_dropout: 0;
  /** Set when the block weights are stored quantized (see GGUF_QUANTIZATION_CONFIG). */
  quantization_config?: Record<string, unknown>;
}

export type LlamaShape = Pick<
  HfLlamaConfig,
  | 'hidden_size'
  | 'intermediate_size'
  | 'num_hidden_layers'
  | 'num_attention_heads'
  | 'num_key_value_heads'
  | 'head_dim'
  | 'vocab_size'
  | 'max_position_embeddings'
  | 'rms_norm_eps'
  | 'rope_theta'
  | 'tie_word_embeddings'
  | 'bos_token_id'
  | 'eos_token_id'
  | 'torch_dtype'
> &
  Partial<Pick<HfLlamaConfig, 'rope_scaling'>>;

export function llamaConfig(s: LlamaShape): HfLlamaConfig {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    ...s,
    rope_scaling: s.rope_scaling ?? null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    attention_dropout: 0,
  };
}

/** Dtypes the importers write: the source's own float type, or F32 for anything dequantised. */
export type OutputDtype = 'F32' | 'F16' | 'BF16';
/** F32 values, or F16/BF16 bit patterns copied unchanged from the source. */
export type OutputData = Float32Array | Uint16Array;

/**
 * A tensor of the output checkpoint whose data is read only when its shard is written: a float
 * weight, or a part of a quantized one (packed codes, scales, its JSON state as bytes).
 */
export interface PlannedTensor {
  name: string;
  dtype: OutputDtype | 'U8' | 'I8';
  shape: number[];
  /** Weight elements it holds when `shape` counts stored bytes instead (quantized blocks, their types). */
  numel?: number;
  load(): Promise<OutputData | Uint8Array | Int8Array>;
}

/**
 * Progress of an import ({@link ImportOptions.onProgress}), reported after each tensor is written:
 * `done` of `total` tensors.
 */
export interface ImportProgress {
  /** HF name of the tensor just written. */
  tensor: string;
  done: number;
  total: number;
}

/**
 * Undo the interleaved-pair RoPE layout of Meta / llama2.c / GGUF q and k projections: within each
 * head, row 2i+t (rotated as the pair (2i, 2i+1)) becomes row t·(head_dim/2)+i, which is where HF's
 * rotate-half RoPE pairs element i with i+head_dim/2. Same as HF's
 * `w.view(n_heads, head_dim/2, 2, cols).transpose(1, 2)`.
 */
export function interleavedToRotateHalf<T extends OutputData | Uint8Array>(
  w: T,
  nHeads: number,
  cols: number,
): T {
  const headDim = w.length / cols / nHeads;
  const half = headDim / 2;
  const out = w.slice() as T;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let t = 0; t < 2; t++) {
        const src = (h * headDim + 2 * i + t) * cols;
        const dst = (h * headDim + t * half + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** transformers' save_pretrained default shard limit. */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/;

function shardName(i: number, n: number): string {
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/**
 * Write the weights, one shard in memory at a time. Weight files of an earlier import into the same
 * folder that this one did not rewrite are removed (as save_pretrained does), so a reader never mixes
 * two checkpoints. Returns the file names written.
 */
export async function writeWeights(
  outDir: string,
  tensors: readonly PlannedTensor[],
  opts: { maxShardBytes?: number; onProgress?: (p: ImportProgress) => void },
): Promise<string[]> {
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const shards: PlannedTensor[][] = [];
  let bytes = 0;
  for (const t of tensors) {
    const size = DTYPE_ITEMSIZE[t.dtype] * t.shape.reduce((a, b) => a * b, 1);
    if (shards.length === 0 || (bytes > 0 && bytes + size > maxShardBytes)) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(t);
    bytes += size;
  }
  const names =
    shards.length === 1 ? ['model.safetensors'] : shards.map((_, i) => shardName(i, shards.length));
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  let done = 0;
  for (const [i, shard] of shards.entries()) {
    const map: Record<string, TensorInput> = {};
    for (const t of shard) {
      const data = await t.load();
      map[t.name] = { dtype: t.dtype, shape: t.shape, data };
      weightMap[t.name] = names[i];
      totalSize += data.byteLength;
    }
    // The metadata transformers writes; its loader rejects files whose `format` it does not know.
    await writeSafetensors(join(outDir, names[i]), map, { format: 'pt' });
    for (const t of shard) opts.onProgress?.({ tensor: t.name, done: ++done, total: tensors.length });
  }
  if (shards.length > 1) {
    const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
    names.push('model.safetensors.index.json');
    await writeTextAtomic(join(outDir, names[names.length - 1]), `${JSON.stringify(index, null, 2)}\n`);
  }
  for (const f of await listDir(outDir)) {
    if (WEIGHT_FILE.test(f) && !names.includes(f)) await rm(join(outDir, f), { force: true });
  }
  return names;
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
