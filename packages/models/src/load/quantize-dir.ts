import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  dequantize4bit,
  dequantizeGgmlParts,
  dequantizeInt8,
  encodeBF16,
  encodeF16,
  type QuantFormat,
  ShareloraError,
} from '@sharelora/core';
import { createModel } from '../arch/create.js';
import { type OutputDtype, type PlannedTensor, writeJson, writeWeights } from '../import/hf-llama.js';
import { CheckpointFiles, planLoad, readValues } from './checkpoint.js';
import { readConfig } from './config.js';
import { commonGgmlFormat } from './gguf-stored.js';
import {
  plannedQuantized,
  QUANT_FORMATS,
  quantizationConfig,
  readStoredQuantized,
  storedQuantization,
} from './quantized.js';

/** What {@link quantizeCheckpoint} writes: a quantization of the blocks' linear weights, or a float dtype for all. */
export type CheckpointTarget = QuantFormat | 'bf16' | 'f16' | 'f32';

/** Every value `sharelora quantize --to` accepts. */
export const CHECKPOINT_TARGETS: readonly CheckpointTarget[] = [...QUANT_FORMATS, 'bf16', 'f16', 'f32'];

/** Options of {@link quantizeCheckpoint}. */
export interface QuantizeCheckpointOptions {
  /** Largest shard in bytes (default 5 GB, as transformers). */
  maxShardBytes?: number;
  /** Called after each tensor is written. */
  onProgress?: (p: { tensor: string; done: number; total: number }) => void;
}

/** Files of a model directory besides its weights and config that a converted copy keeps. */
const KEPT_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
  'chat_template.jinja',
];

const FLOAT_OUT: Record<'bf16' | 'f16' | 'f32', OutputDtype> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };
const TORCH_DTYPE: Record<OutputDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

function encode(values: Float32Array, dtype: OutputDtype): Float32Array | Uint16Array {
  return dtype === 'F32' ? values : dtype === 'BF16' ? encodeBF16(values) : encodeF16(values);
}

/**
 * Converts the model directory `src` into `out`, one tensor in memory at a time: to nf4/fp4/int8
 * (the transformer blocks' linear weights quantized as loadModel's `quantize` does, stored in
 * bitsandbytes' layout with config.json's quantization_config; other tensors keep their dtype),
 * or to bf16/f16/f32 (every tensor, a quantized source dequantized). Tokenizer and generation files
 * are copied. `out` must be a new or emptied directory (the caller checks). Returns the files written.
 */
export async function quantizeCheckpoint(
  src: string,
  out: string,
  to: CheckpointTarget,
  opts: QuantizeCheckpointOptions = {},
): Promise<string[]> {
  const config = await readConfig(src);
  const configPath = join(src, 'config.json');
  const stored = storedQuantization(config.raw, configPath);
  const quant = (QUANT_FORMATS as readonly string[]).includes(to) ? (to as QuantFormat) : null;
  if (stored && quant)
    throw new ShareloraError(
      'BAD_ARGUMENT',
      `${src} is already stored as ${stored}: convert it to a float dtype first (--to bf16) to quantize it again`,
    );
  const files = await CheckpointFiles.open(src);
  // The module tree names the checkpoint's tensors and says which are block linears; its buffers are
  // allocated but never written.
  const built = stored === 'gguf' ? await commonGgmlFormat(files.tensors, files.path) : stored;
  const model = createModel(config, { quantize: quant ?? built ?? undefined, weightDtype: 'bf16' });
  try {
    const plan = planLoad(model, files, configPath, stored);
    const planned: PlannedTensor[] = [];
    for (const { target, source, key, companions } of plan.loads) {
      const values = async (): Promise<Float32Array> => {
        if (stored && target.quantized && companions) {
          const parts = await readStoredQuantized(key, stored, target.quantized.shape, source, companions);
          if ('scales' in parts) return dequantizeGgmlParts(parts);
          return parts.format === 'int8'
            ? dequantizeInt8(parts, target.quantized.shape[1])
            : dequantize4bit(parts, target.quantized.size);
        }
        return readValues(source, key);
      };
      const shape = [...target.shape];
      if (quant && target.quantized) {
        planned.push(...plannedQuantized(target.name, quant, target.quantized.shape, values));
        continue;
      }
      const dtype: OutputDtype = quant
        ? source.info.dtype === 'BF16' || source.info.dtype === 'F16'
          ? source.info.dtype
          : 'F32'
        : FLOAT_OUT[to as 'bf16' | 'f16' | 'f32'];
      planned.push({ name: target.name, dtype, shape, load: async () => encode(await values(), dtype) });
    }
    await mkdir(out, { recursive: true });
    const written = await writeWeights(out, planned, opts);
    const raw: Record<string, unknown> = { ...config.raw };
    delete raw.quantization_config;
    if (quant) raw.quantization_config = quantizationConfig(quant);
    else raw.torch_dtype = TORCH_DTYPE[FLOAT_OUT[to as 'bf16' | 'f16' | 'f32']];
    for (const f of KEPT_FILES) {
      try {
        await copyFile(join(src, f), join(out, f));
        written.push(f);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    // config.json last: a directory with one is complete.
    await writeJson(join(out, 'config.json'), raw);
    return [...written, 'config.json'];
  } finally {
    model.dispose();
    await files.close();
  }
}
