/**
 * @sharelora/train: fine-tuning data (readers, prompt formats, tokenization with loss masks,
 * validation splits, batching with a resumable order) and the Trainer (AdamW, accumulation,
 * clipping, evaluation, keep-best, atomic checkpoints and bit-identical resume), continual
 * fine-tuning with a forgetting table, the quickstart, and safe outputs (path checks, advisory locks).
 */

export {
  benchTrainStep,
  TRAIN_SHAPES,
  type TrainBenchOptions,
  type TrainBenchResult,
  type TrainShape,
} from './bench/train-step.js';
export * from './continual/index.js';
export * from './data/index.js';
export {
  type FineTuneAdapter,
  FineTuneError,
  type FineTuneHooks,
  type FineTuneResult,
  type FineTuneSettings,
  fineTune,
  lossUnitOf,
  modelPositions,
  TRAINING_OPTIONS,
  type TrainingOptions,
  trainingOptionsOf,
} from './fine-tune.js';
export {
  BASE_PRECISIONS,
  type BasePrecision,
  blockWeightBytes,
  estimateStepMemory,
  type FrozenWeightBytes,
  frozenWeightBytes,
  type StepMemoryEstimate,
  type StepMemoryOptions,
} from './memory/estimate.js';
export { estimateStepFlops, type StepFlops, type StepFlopsOptions } from './memory/step-flops.js';
export * from './output/index.js';
export * from './quickstart/index.js';
export * from './trainer/index.js';
