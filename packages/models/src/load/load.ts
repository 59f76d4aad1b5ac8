import { join } from 'node:path';
import {
  type BaseModelIdentity,
  type FloatDType,
  getDevice,
  isHalf,
  type QuantFormat,
  QuantizedTensor,
  ShareloraError,
  setBaseModelIdentity,
  zeros,
} from '@sharelora/core';
import { type CreateModelOptions, createModel } from '../arch/create.js';
import { initWeights } from '../arch/init.js';
import type { AnyModel, ModelConfig } from '../arch/types.js';
import { checkpointTensors } from '../arch/vocab.js';
import { CheckpointFiles, type LoadPlan, type LoadProgress, planLoad, streamWeights } from './checkpoint.js';
import { readConfig } from './config.js';
import { ModelLoadError } from './errors.js';
import { commonGgmlFormat } from './gguf-stored.js';
import { checkModelFits, machineLimits } from './limits.js';
import { storedQuantization } from './quantized.js';

/**
 * Options of {@link loadModel}: the task, seed, whether the weights train, their storage dtype and
 * progress. `task` defaults to what config.json's `architectures` names ({@link defaultTask});
 * `seed` initialises task heads the checkpoint lacks and the dropout masks.
 */
export interface LoadModelOptions extends Omit<CreateModelOptions, 'weightDtype'> {
  /** Leave the weights trainable (requiresGrad), as for full fine-tuning; default frozen. */
  trainable?: boolean;
  /**
   * Storage of the matmul and embedding weights; norms and biases are always f32. 'auto' (the
   * default when frozen) keeps each F16/BF16 checkpoint tensor in its format and loads the others
   * as f32; 'f16'/'bf16' store every such weight in that format (rounding others to it); 'f32'
   * (the default, and the only choice, with `trainable`) converts everything. Half-precision weights
   * take half the memory and are decoded exactly to f32 where used, so the logits equal an f32 load
   * of the same checkpoint, at the cost of one cast per weight per forward. Merging an adapter into
   * them rounds the merged weights to half precision: load with 'f32' to merge exactly.
   */
  weightDtype?: FloatDType | 'auto';
  /** Number of classes of a sequence-classification head (default: config.json's num_labels / id2label). */
  numLabels?: number;
  /** Called as tensor data is read (a progress bar). */
  onProgress?: (p: LoadProgress) => void;
  /**
   * Keep the transformer blocks' linear weights quantized (QLoRA's frozen base): a float checkpoint
   * is quantized tensor by tensor as it is read, never held whole in full precision. A directory
   * stored quantized (config.json's quantization_config, as `sharelora quantize` writes) loads as
   * stored whether or not this is given; asking for another format is an error. Frozen only.
   */
  quantize?: QuantFormat;
}

/**
 * What {@link loadModel} returns: the model on the device, its parsed config, and what loading did
 * with the checkpoint's tensors.
 */
export interface LoadedModel {
  model: AnyModel;
  config: ModelConfig;
  /** Weight files read, relative to the directory. */
  files: string[];
  /** What adapters and checkpoints trained on this model record of it (see baseModelIdentityOf). */
  identity: BaseModelIdentity;
  /** Task-head tensors the checkpoint lacked, initialised from `seed` (e.g. a new classifier). */
  initialised: string[];
  /** Checkpoint tensors the model does not use (another task's head, a tied copy). */
  ignored: string[];
}

/**
 * Loads an HF model directory (config.json + safetensors weights) onto the current device: parses
 * the config, builds the model, checks every tensor name, shape and dtype against it (one error
 * lists all problems, naming the file), then streams the weights to the GPU. A config whose weights
 * cannot fit this machine's memory or WebGPU adapter is refused first (TOO_LARGE), from config.json
 * alone. The model is returned in eval mode, frozen unless `trainable`, with its identity recorded
 * (setBaseModelIdentity) so adapters saved from it, and loaded onto it, can be checked.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const parsed = await readConfig(dir);
  const config =
    parsed.arch === 'roberta' && opts.numLabels !== undefined
      ? { ...parsed, numLabels: opts.numLabels }
      : parsed;
  const requested = opts.weightDtype ?? (opts.trainable ? 'f32' : 'auto');
  const configPath = join(dir, 'config.json');
  const stored = storedQuantization(config.raw, configPath);
  if (stored && opts.quantize && opts.quantize !== stored)
    throw new ModelLoadError(
      'BAD_CONFIG',
      configPath,
      `the weights are stored as ${stored}, not ${opts.quantize}: load them as stored, or write a float copy first (sharelora quantize --to bf16) and quantize that`,
    );
  if ((opts.quantize ?? stored) && opts.trainable)
    throw new ModelLoadError(
      'BAD_CONFIG',
      configPath,
      `${opts.quantize ?? stored} weights are a frozen base and cannot be trained: full fine-tuning needs unquantized f32 weights`,
    );
  if (opts.trainable && requested !== 'f32') {
    throw new ShareloraError(
      'BAD_ARGUMENT',
      `loadModel: weightDtype '${requested}' keeps weights frozen in half precision; trainable weights need 'f32'`,
    );
  }
  const files = await CheckpointFiles.open(dir);
  try {
    // A GGUF import's layers are built in its most common llama.cpp type (others swap in as read).
    const quantize =
      stored === 'gguf'
        ? await commonGgmlFormat(files.tensors, files.path)
        : (opts.quantize ?? stored ?? undefined);
    checkModelFits(config, machineLimits(getDevice()), {
      bytesPerParam: quantize
        ? QuantizedTensor.bytesFor(quantize, [1, QUANT_PROBE]) / QUANT_PROBE
        : bytesPerParam(requested, config.raw),
      path: configPath,
    });
    const auto = requested === 'auto';
    const model = createModel(config, {
      ...opts,
      quantize,
      weightDtype: auto ? autoBuildDtype(files) : requested,
    });
    try {
      const plan = planLoad(model, files, configPath, stored);
      if (auto) keepStoredDtypes(model, plan);
      await streamWeights(plan, opts.onProgress);
      if (plan.initialised.length) {
        const fresh = new Set(plan.initialised);
        initWeights(model, { seed: opts.seed ?? 0, filter: (name) => fresh.has(name) });
      }
      if (!opts.trainable) model.freeze();
      model.eval();
      const identity = await identityOf(config, plan);
      setBaseModelIdentity(model, identity);
      return {
        model,
        config,
        files: files.files,
        identity,
        initialised: plan.initialised,
        ignored: plan.ignored,
      };
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    await files.close();
  }
}

/** How 'auto' stores a checkpoint dtype: F16/BF16 as they are (f16 only where the adapter has it), others f32. */
function storedAs(dtype: string | undefined): FloatDType {
  if (dtype === 'BF16') return 'bf16';
  return dtype === 'F16' && getDevice().features.has('shader-f16') ? 'f16' : 'f32';
}

/**
 * The dtype 'auto' builds the model's weights in before loading: the half type holding most of the
 * checkpoint's 2-D tensors, so that a half checkpoint never has a full f32 copy of the model allocated.
 */
function autoBuildDtype(files: CheckpointFiles): FloatDType {
  const bytes = { f32: 0, f16: 0, bf16: 0 };
  for (const { info } of files.tensors.values()) {
    if (info.shape.length === 2) bytes[storedAs(info.dtype)] += info.dataOffsets[1] - info.dataOffsets[0];
  }
  if (bytes.f16 + bytes.bf16 === 0) return 'f32';
  return bytes.bf16 >= bytes.f16 ? 'bf16' : 'f16';
}

/** Gives each half-precision weight of the model the dtype 'auto' keeps its checkpoint tensor in (f32 if none). */
function keepStoredDtypes(model: AnyModel, plan: LoadPlan): void {
  const source = new Map(plan.loads.map((l) => [l.target.name, l.source.info.dtype]));
  for (const t of checkpointTensors(model)) {
    const want = storedAs(source.get(t.name));
    for (const p of t.blocks)
      if (isHalf(p.value.dtype) && p.value.dtype !== want) p.value = zeros(p.shape, want);
  }
}

/** Bytes per weight as loaded: 'auto' keeps a half-precision checkpoint (as config.json's torch_dtype says) in half. */
function bytesPerParam(requested: FloatDType | 'auto', raw: Record<string, unknown>): number {
  if (requested !== 'auto') return requested === 'f32' ? 4 : 2;
  const stored = raw.torch_dtype ?? raw.dtype;
  return stored === 'float16' || stored === 'bfloat16' ? 2 : 4;
}

/**
 * Row length whose quantized bytes per weight the fit check uses: the packed codes and scales of a
 * typical row (the embeddings and output layer, kept in their dtype, are a small share of a large
 * model's weights).
 */
const QUANT_PROBE = 4096;

/** Values of the first token-embedding row kept in the identity: enough to tell random inits and pretrainings apart. */
const IDENTITY_SAMPLE = 8;

/** The config's shape fields and the first values of the token embedding, read from the checkpoint. */
async function identityOf(config: ModelConfig, plan: LoadPlan): Promise<BaseModelIdentity> {
  const shape: Record<string, string | number> = {
    model_type: config.arch,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    intermediate_size: config.intermediateSize,
  };
  if (config.arch === 'llama') shape.num_key_value_heads = config.numKvHeads;
  const embedding = plan.loads.find(
    (l) => l.target.shape[0] === config.vocabSize && l.target.shape[1] === config.hiddenSize,
  );
  let sample: number[] = [];
  if (embedding) {
    const rowBytes =
      (embedding.source.info.dataOffsets[1] - embedding.source.info.dataOffsets[0]) / config.vocabSize;
    for await (const chunk of embedding.source.reader.readChunks(embedding.key, rowBytes)) {
      sample = Array.from(chunk.data.subarray(0, IDENTITY_SAMPLE) as Float32Array);
      break;
    }
  }
  return { shape, sample };
}
