/**
 * A training step's device memory from a config.json alone, by category and at each precision of
 * the frozen base: what `sharelora params --memory` prints before anything is downloaded or built.
 *
 * Weights, adapter, gradients and AdamW state are counted exactly (the same byte sizes the engine
 * allocates). Activations and temporaries live at the step's peak are a linear fit per
 * architecture, over bytes per token, to peaks measured with `benchTrainStep` on lavapipe
 * (LLaMA-, GPT-2- and RoBERTa-shaped models from d 64 to d 512, ranks 8 to 64). It counts tensor
 * bytes: a process also holds the runtime and the driver's own allocations.
 */

import { countParameters, type Method, presetConfig } from '@sharelora/adapters';
import { QuantizedTensor, ShareloraError } from '@sharelora/core';
import { estimateModelSize, type LinearArch, linearModulesFromConfig, parseConfig } from '@sharelora/models';

/** Precisions of the frozen base an estimate is made at. */
export const BASE_PRECISIONS = ['f32', 'bf16', 'int8', 'nf4'] as const;
/** One of {@link BASE_PRECISIONS}: how the frozen base's block weights are stored. */
export type BasePrecision = (typeof BASE_PRECISIONS)[number];

/** The model, adapter and batch a training step is estimated for. */
export interface StepMemoryOptions {
  /** A Hugging Face config.json (GPT-2, RoBERTa/BERT or LLaMA family). */
  config: Record<string, unknown>;
  method: Method;
  rank: number;
  /** Resolved LoRA targets (module types or short names). */
  targets: string[];
  batchSize: number;
  seqLength: number;
}

/** Estimated peak bytes of one training step, by category. */
export interface StepMemoryEstimate {
  precision: BasePrecision;
  /** The transformer blocks' linear weights (quantized for int8 and nf4). */
  blockWeights: number;
  /** Embeddings, heads, norms and biases: f32 at f32, otherwise bf16. */
  otherWeights: number;
  /** Trainable adapter values (f32). */
  adapter: number;
  gradients: number;
  /** AdamW's two moments. */
  optimizer: number;
  /** Activations and temporaries live at the step's peak. */
  activations: number;
  total: number;
}

/** Fitted bytes per token: per layer per hidden unit, per FFN unit, per rank per adapted module; per vocabulary entry; per hidden unit. */
interface ActivationFit {
  layerHidden: number;
  layerFfn: number;
  layerRank: number;
  vocab: number;
  hidden: number;
}

// GPT-2's FFN is 4·d in every released checkpoint, so its FFN term is folded into layerHidden.
const FITS: Record<LinearArch, ActivationFit> = {
  llama: { layerHidden: 32.8, layerFfn: 20.8, layerRank: 12.8, vocab: 8.6, hidden: 81.8 },
  gpt2: { layerHidden: 108.7, layerFfn: 0, layerRank: 0, vocab: 12, hidden: 86.6 },
  roberta: { layerHidden: 46.5, layerFfn: 11.1, layerRank: 0, vocab: 0, hidden: 125.1 },
};

function size(config: Record<string, unknown>, key: string): number {
  const v = config[key];
  if (!Number.isInteger(v) || (v as number) < 1)
    throw new ShareloraError(
      'BAD_MODEL_CONFIG',
      `config.json: ${key} must be a positive integer, got ${JSON.stringify(config[key])}`,
    );
  return v as number;
}

/** The frozen model's bytes at one precision of its blocks' linear weights. */
export interface FrozenWeightBytes {
  precision: BasePrecision;
  /** The transformer blocks' linear weights (quantized for int8 and nf4). */
  blockWeights: number;
  /** Embeddings, heads, norms and biases: f32 at f32, otherwise bf16. */
  otherWeights: number;
}

/** What a model's frozen weights take at each precision (default all of {@link BASE_PRECISIONS}), from its config.json. */
export function frozenWeightBytes(
  config: Record<string, unknown>,
  precisions: readonly BasePrecision[] = BASE_PRECISIONS,
): FrozenWeightBytes[] {
  const { modules } = linearModulesFromConfig(config);
  // Everything but the blocks' linear weights: embeddings, heads, norms, biases.
  const blockValues = modules.reduce((n, m) => n + m.inFeatures * m.outFeatures, 0);
  const other = estimateModelSize(parseConfig(config)).params - blockValues;
  return precisions.map((precision) => ({
    precision,
    blockWeights: modules.reduce((n, m) => n + blockWeightBytes(precision, m.outFeatures, m.inFeatures), 0),
    otherWeights: other * (precision === 'f32' ? 4 : 2),
  }));
}

/** One estimate per precision (default all of {@link BASE_PRECISIONS}), in that order. */
export function estimateStepMemory(
  opts: StepMemoryOptions,
  precisions: readonly BasePrecision[] = BASE_PRECISIONS,
): StepMemoryEstimate[] {
  const { arch, layers, modules } = linearModulesFromConfig(opts.config);
  const count = countParameters(
    modules,
    presetConfig(opts.method, { r: opts.rank, targetModules: opts.targets }),
  );
  const fit = FITS[arch];
  const d = modules[0].inFeatures;
  const ffn = arch === 'gpt2' ? 0 : Math.max(...modules.map((m) => m.outFeatures));
  const tokens = opts.batchSize * opts.seqLength;
  const perLayer =
    fit.layerHidden * d + fit.layerFfn * ffn + fit.layerRank * opts.rank * count.byModuleType.length;
  const V = size(opts.config, 'vocab_size');
  const activations = Math.round(tokens * (layers * perLayer + fit.vocab * V + fit.hidden * d));
  const trainable = 4 * count.total.trainable;
  return frozenWeightBytes(opts.config, precisions).map(({ precision, blockWeights, otherWeights }) => {
    const parts = {
      blockWeights,
      otherWeights,
      adapter: trainable,
      gradients: trainable,
      optimizer: 2 * trainable,
      activations,
    };
    return { precision, ...parts, total: Object.values(parts).reduce((a, b) => a + b, 0) };
  });
}

/** Bytes of one frozen linear weight [out, in] stored at `precision`. */
export function blockWeightBytes(precision: BasePrecision, out: number, inFeatures: number): number {
  if (precision === 'int8' || precision === 'nf4')
    return QuantizedTensor.bytesFor(precision, [out, inFeatures]);
  return out * inFeatures * (precision === 'f32' ? 4 : 2);
}
