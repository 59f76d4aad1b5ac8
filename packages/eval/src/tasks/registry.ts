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
import type { TaskOption, TaskOptionUse } from './options.js';

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

/** The options a task takes: its own, or with a file of outputs to score, that option and the ones it keeps. */
export function taskOptionUses(definition: EvalTaskDefinition, scoringFile = false): TaskOptionUse[] {
  const scoring = definition.fileScoring;
  if (!scoringFile) return [...definition.options];
  if (!scoring) return [];
  return [
    { option: scoring.option },
    ...definition.options.filter((u) => scoring.keeps.includes(u.option.flag)),
  ];
}

/**
 * Every option some task takes, once per flag (file-scoring options included), in registry order.
 * Tasks sharing a flag must share its option, since the CLI reads a flag one way for every task.
 */
export const TASK_OPTIONS: readonly TaskOption[] = (() => {
  const byFlag = new Map<string, TaskOption>();
  for (const d of EVAL_TASK_DEFINITIONS) {
    for (const use of [...taskOptionUses(d), ...taskOptionUses(d, true)]) {
      const seen = byFlag.get(use.option.flag);
      if (
        seen &&
        (seen.key !== use.option.key || JSON.stringify(seen.kind) !== JSON.stringify(use.option.kind))
      )
        throw new Error(`task option --${use.option.flag} is declared twice with different keys or kinds`);
      if (!seen) byFlag.set(use.option.flag, use.option);
    }
  }
  return [...byFlag.values()];
})();
