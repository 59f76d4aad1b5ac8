export { CHECKPOINT_ADAPTER_DIR, listCheckpoints } from './checkpoint.js';
export { TrainingError, type TrainingErrorCode } from './errors.js';
export { type EvaluationResult, evaluateExamples, greedyMatches } from './evaluate.js';
export { medianStepMs } from './step-time.js';
export { textTokenizerOf } from './tokenizer.js';
export { BEST_DIR, METRICS_FILE, Trainer } from './trainer.js';
export type {
  CheckpointEvent,
  EvalMetrics,
  RunReport,
  StepMetrics,
  TrainableModel,
  TrainerOptions,
  TrainResult,
  TrainTask,
} from './types.js';
