import { join } from 'node:path';
import { type CreateModelOptions, createModel } from '../arch/create.js';
import { initWeights } from '../arch/init.js';
import type { AnyModel, ModelConfig } from '../arch/types.js';
import { CheckpointFiles, type LoadProgress, planLoad, streamWeights } from './checkpoint.js';
import { readConfig } from './config.js';

export interface LoadModelOptions extends CreateModelOptions {
  /** Leave the weights trainable (requiresGrad), as for full fine-tuning; default frozen. */
  trainable?: boolean;
  /** Number of classes of a sequence-classification head (default: config.json's num_labels / id2label). */
  numLabels?: number;
  /** Called as tensor data is read (a progress bar). */
  onProgress?: (p: LoadProgress) => void;
}

export interface LoadedModel {
  model: AnyModel;
  config: ModelConfig;
  /** Weight files read, relative to the directory. */
  files: string[];
  /** Task-head tensors the checkpoint lacked, initialised from `seed` (e.g. a new classifier). */
  initialised: string[];
  /** Checkpoint tensors the model does not use (another task's head, a tied copy). */
  ignored: string[];
}

/**
 * Loads an HF model directory (config.json + safetensors weights) onto the current device: parses
 * the config, builds the model, checks every tensor name, shape and dtype against it (one error
 * lists all problems, naming the file), then streams the weights to the GPU. The model is returned
 * in eval mode, frozen unless `trainable`.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const parsed = await readConfig(dir);
  const config =
    parsed.arch === 'roberta' && opts.numLabels !== undefined
      ? { ...parsed, numLabels: opts.numLabels }
      : parsed;
  const files = await CheckpointFiles.open(dir);
  try {
    const model = createModel(config, opts);
    try {
      const plan = planLoad(model, files, join(dir, 'config.json'));
      await streamWeights(plan, opts.onProgress);
      if (plan.initialised.length) {
        const fresh = new Set(plan.initialised);
        initWeights(model, { seed: opts.seed ?? 0, filter: (name) => fresh.has(name) });
      }
      if (!opts.trainable) model.freeze();
      model.eval();
      return { model, config, files: files.files, initialised: plan.initialised, ignored: plan.ignored };
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    await files.close();
  }
}
