/** @sharelora/models: model architectures, checkpoint import, tokenizers, generation and scoring. */

export {
  ACTIVATION_KINDS,
  ACTIVATIONS,
  type ActivationName,
  logitChunks,
  type ModelBuildOptions,
  positionIdsFromAttentionMask,
  type RopeConfig,
} from './arch/common.js';
export { type CreateModelOptions, createModel, defaultTask } from './arch/create.js';
export { GPT2_LORA_TARGETS, GPT2LMHeadModel, GPT2Model } from './arch/gpt2.js';
export { type InitWeightsOptions, initWeights } from './arch/init.js';
export { LLAMA_LORA_TARGETS, LlamaForCausalLM, LlamaModel } from './arch/llama.js';
export {
  argmaxAt,
  causalLmLoss,
  causalLmLossAt,
  maskedLmLoss,
  sequenceClassificationLoss,
} from './arch/loss.js';
export {
  ROBERTA_LORA_TARGETS,
  RobertaForMaskedLM,
  RobertaForSequenceClassification,
  RobertaModel,
} from './arch/roberta.js';
export {
  type AnyModel,
  type Arch,
  type CausalLM,
  type CausalLMForwardOptions,
  type CheckpointRules,
  type EncoderForwardOptions,
  type Gpt2Config,
  type HfModel,
  KVCache,
  type LlamaConfig,
  type MaskedLM,
  type ModelConfig,
  type ProblemType,
  type RobertaConfig,
  type SequenceClassifier,
  type Task,
} from './arch/types.js';
export {
  type CheckpointTensor,
  checkpointTensors,
  readCheckpointTensor,
  VocabEmbedding,
} from './arch/vocab.js';
export * from './config/linear-modules.js';
export * from './generate/index.js';
export {
  type GgufImportOptions,
  type HfLlamaConfig,
  ImportError,
  type ImportErrorCode,
  type ImportOptions,
  type ImportProgress,
  type ImportSummary,
  importGguf,
  importLlama2c,
  type Llama2cImportOptions,
} from './import/index.js';
export type { LoadProgress } from './load/checkpoint.js';
export { parseConfig, readConfig } from './load/config.js';
export { ModelLoadError, type ModelLoadErrorCode } from './load/errors.js';
export {
  checkModelFits,
  estimateModelSize,
  MAX_LAYERS,
  type MachineLimits,
  type ModelSizeEstimate,
  machineLimits,
} from './load/limits.js';
export { type LoadedModel, type LoadModelOptions, loadModel } from './load/load.js';
export {
  CHECKPOINT_TARGETS,
  type CheckpointTarget,
  type QuantizeCheckpointOptions,
  quantizeCheckpoint,
} from './load/quantize-dir.js';
export { QUANT_FORMATS, quantizationConfig, storedQuantization } from './load/quantized.js';
export { type SaveModelOptions, saveModel } from './load/save.js';
export { weightBytesByFormat } from './load/weight-bytes.js';
export {
  createPreset,
  type InitPresetOptions,
  type InitPresetResult,
  initPreset,
  PRESET_ARCHS,
  PRESET_NAMES,
  type Preset,
  type PresetName,
  type PresetOptions,
} from './presets/presets.js';
export { LLAMA_3_2_1B_CONFIG } from './presets/shapes.js';
export * from './score/index.js';
export * from './tokenizer/index.js';
