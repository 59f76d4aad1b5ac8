/**
 * Entry points for `sharelora eval`: a task name, a data path laid out as in ../shared/data, a model
 * (or a GLUE classifier, or a file of outputs to score), and the task's options. Which task does
 * what is in its definition (tasks/registry.ts).
 */
import { EvalConfigError } from './errors.js';
import type { EvalModel } from './model.js';
import type { EvalResult } from './results.js';
import type { RunOptions } from './run.js';
import type { TaskRunSpec } from './tasks/definition.js';
import type { E2eOptions } from './tasks/e2e.js';
import type { GlueClassifier } from './tasks/glue.js';
import type { Gsm8kOptions, Gsm8kVariant } from './tasks/gsm8k.js';
import type { HumanEvalOptions, HumanEvalScoreOptions } from './tasks/humaneval.js';
import type { MmluOptions } from './tasks/mmlu.js';
import type { MmluProOptions } from './tasks/mmlu-pro.js';
import { EVAL_TASK_DEFINITIONS, taskDefinition } from './tasks/registry.js';

/**
 * What {@link runEval} evaluates: the task name, its data path (the task's folder or its test file)
 * and that task's options; a GSM8K variant is chosen by the task name. Typed for the tasks shipped
 * here; `runEval` takes any registered task's {@link TaskRunSpec} as well.
 */
export type RunEvalSpec = { data: string } & (
  | ({ task: Gsm8kVariant } & Omit<Gsm8kOptions, 'variant'>)
  | ({ task: 'mmlu' } & MmluOptions)
  | ({ task: 'mmlu-pro' } & MmluProOptions)
  | ({ task: 'humaneval' } & HumanEvalOptions)
  | ({ task: 'e2e' } & E2eOptions)
);

/**
 * The task names {@link runEval} takes (GLUE tasks go through {@link runGlueEval}, named in
 * {@link GLUE_EVAL_TASKS}).
 */
export const EVAL_TASKS: readonly string[] = EVAL_TASK_DEFINITIONS.filter(
  (d) => d.model === 'causal-lm',
).flatMap((d) => d.names);

/**
 * The classifier task names {@link runGlueEval} takes: GLUE's `glue-<task>`, as result files and
 * `sharelora eval --task` spell them.
 */
export const GLUE_EVAL_TASKS: readonly string[] = EVAL_TASK_DEFINITIONS.filter(
  (d) => d.model === 'classifier',
).flatMap((d) => d.names);

/**
 * Loads the task's data and evaluates the model. `data` is the task's folder (gsm8k/: test.jsonl +
 * train.jsonl; mmlu/: test/ + dev/; mmlu_pro/: a *test*.jsonl + *validation*.jsonl; humaneval/:
 * HumanEval.jsonl[.gz]; e2e_nlg/: testset_w_refs.csv) or, except for MMLU, the test file itself with
 * the others beside it.
 */
export async function runEval(model: EvalModel, spec: RunEvalSpec | TaskRunSpec): Promise<EvalResult> {
  const run = taskDefinition(spec.task)?.run;
  if (!run)
    throw new EvalConfigError(
      `unknown task "${spec.task}" (one of ${EVAL_TASKS.join(', ')}, or glue-<task> via runGlueEval)`,
    );
  return run(model, spec as TaskRunSpec);
}

/**
 * Evaluates a classifier on a GLUE task's labelled dev split. `data` is the TSV itself, the task's
 * folder (dev.tsv) or the GLUE folder holding the task's folder (SST-2/, MRPC/, STS-B/, RTE/, CoLA/).
 */
export async function runGlueEval(
  classifier: GlueClassifier,
  spec: { task: string; data: string } & RunOptions,
): Promise<EvalResult> {
  const classify = taskDefinition(spec.task)?.classify;
  if (!classify)
    throw new EvalConfigError(`unknown GLUE task "${spec.task}" (one of ${GLUE_EVAL_TASKS.join(', ')})`);
  return classify(classifier, spec as TaskRunSpec);
}

/**
 * Scores outputs produced elsewhere, without a model, for a task that can (`fileScoring` in its
 * definition: HumanEval completions, E2E predictions); `file` holds them, `data` is the task's data.
 */
export async function runFileScoring(spec: TaskRunSpec & { file: string }): Promise<EvalResult> {
  const scoring = taskDefinition(spec.task)?.fileScoring;
  if (!scoring) throw new EvalConfigError(`task "${spec.task}" does not score a file of outputs`);
  return scoring.run(spec);
}

/**
 * Scores HumanEval completions from a file in human-eval's samples format without a model; `data`
 * is the HumanEval folder or file, as for runEval. `model` defaults to the completions file's path.
 */
export function runHumanEvalCompletions(
  spec: { data: string; completions: string } & HumanEvalScoreOptions,
): Promise<EvalResult> {
  return runFileScoring({ ...spec, task: 'humaneval', file: spec.completions });
}

/**
 * Scores a system's E2E outputs (one per MR, in order of first appearance; plain lines or the
 * challenge's MR/output TSV) without a model; `data` is the E2E folder or a references file.
 */
export function runE2ePredictions(spec: {
  data: string;
  predictions: string;
  limit?: number;
}): Promise<EvalResult> {
  return runFileScoring({ ...spec, task: 'e2e', file: spec.predictions });
}
