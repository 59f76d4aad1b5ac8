import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeBF16, encodeF16 } from '@sharelora/core';
import type { AnyModel } from '../arch/types.js';
import { checkpointTensors, readCheckpointTensor } from '../arch/vocab.js';
import { type OutputDtype, type PlannedTensor, writeJson, writeWeights } from '../import/hf-llama.js';

/** Options of {@link saveModel}. */
export interface SaveModelOptions {
  /** Stored dtype (default F32). */
  dtype?: OutputDtype;
  /** Largest shard in bytes (default 5 GB as transformers); larger checkpoints are sharded with an index. */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Record<OutputDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * Writes an HF model directory: the weights under their checkpoint names (a tied matrix once, as
 * transformers does) read back from the GPU one shard at a time (quantized layers dequantized), then config.json (the loaded one,
 * with architectures, torch_dtype and the label count updated), last, so a directory with a
 * config.json is complete. Every parameter of the module tree is written: merge adapters first.
 * Returns the file names written.
 */
export async function saveModel(
  model: AnyModel,
  dir: string,
  opts: SaveModelOptions = {},
): Promise<string[]> {
  const dtype = opts.dtype ?? 'F32';
  await mkdir(dir, { recursive: true });
  const planned: PlannedTensor[] = checkpointTensors(model).map((t) => ({
    name: t.name,
    dtype,
    shape: [...t.shape],
    load: async () => {
      const values = await readCheckpointTensor(t);
      return dtype === 'F32' ? values : dtype === 'BF16' ? encodeBF16(values) : encodeF16(values);
    },
  }));
  const files = await writeWeights(dir, planned, { maxShardBytes: opts.maxShardBytes });
  const config: Record<string, unknown> = {
    ...model.config.raw,
    architectures: [model.hfClass],
    model_type: model.config.raw.model_type ?? model.config.arch,
    torch_dtype: TORCH_DTYPE[dtype],
  };
  // Quantized layers were read back dequantized: the directory holds floats.
  delete config.quantization_config;
  if (model.task === 'sequence-classification') {
    const labels = config.id2label as Record<string, unknown> | undefined;
    if (!labels || Object.keys(labels).length !== model.numLabels) {
      const names = Array.from({ length: model.numLabels }, (_, i) => `LABEL_${i}`);
      config.id2label = Object.fromEntries(names.map((n, i) => [String(i), n]));
      config.label2id = Object.fromEntries(names.map((n, i) => [n, i]));
    }
    if ('num_labels' in config) config.num_labels = model.numLabels;
  }
  await writeJson(join(dir, 'config.json'), config);
  return [...files, 'config.json'];
}
