/**
 * Every evaluation task, by the definitions their modules export: the runner, eval-merge and the
 * CLI's task list and flag checks all read this list, so a new task is its module plus a line here.
 */
import type { EvalTaskDefinition } from './definition.js';
import { E2E_TASK } from './e2e.js';
import { GLUE_TASK } from './glue.js';
import { GSM8K_TASK } from './gsm8k.js';
import { HUMANEVAL_TASK } from './humaneval.js';
import { MMLU_TASK } from './mmlu.js';
import { MMLU_PRO_TASK } from './mmlu-pro.js';

/** The tasks, in the order help listings show them. */
export const EVAL_TASK_DEFINITIONS: readonly EvalTaskDefinition[] = [
  GSM8K_TASK,
  MMLU_TASK,
  MMLU_PRO_TASK,
  HUMANEVAL_TASK,
  E2E_TASK,
  GLUE_TASK,
];

/** The definition answering to a task name, or undefined. */
export function taskDefinition(name: string): EvalTaskDefinition | undefined {
  return EVAL_TASK_DEFINITIONS.find((d) => d.names.includes(name));
}
