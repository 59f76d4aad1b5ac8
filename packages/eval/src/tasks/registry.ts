/// <reference path="../import-meta-glob.d.ts" />
/**
 * Every evaluation task: the default export of each module in this folder that has one (helpers
 * such as options.ts have none). The runner, eval-merge and the CLI's task list and flag checks all
 * read this list, so a new task is one new module here and nothing else. Vite expands the glob in
 * the tests, the plugin in tsup.config.ts in the build.
 */
import type { EvalTaskDefinition } from './definition.js';
import type { TaskOption, TaskOptionUse } from './options.js';

type TaskModule = { default?: unknown };

const modules = import.meta.glob<TaskModule>('./*.ts', { eager: true });

function definitionsOf(found: Record<string, TaskModule>): EvalTaskDefinition[] {
  const definitions: EvalTaskDefinition[] = [];
  for (const [path, module] of Object.entries(found)) {
    const d = module.default as Partial<EvalTaskDefinition> | undefined;
    if (d === undefined) continue;
    // A default export that is not a definition is a mistake better caught at load than ignored.
    if (!Array.isArray(d.names) || typeof d.order !== 'number' || typeof d.metrics !== 'function')
      throw new Error(`tasks/${path.slice(2)}: its default export is not an EvalTaskDefinition`);
    definitions.push(d as EvalTaskDefinition);
  }
  definitions.sort((a, b) => a.order - b.order || (a.names[0] < b.names[0] ? -1 : 1));
  const names = definitions.flatMap((d) => d.names);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`two task definitions answer to "${twice}"`);
  return definitions;
}

/** The tasks, in the order help listings show them. */
export const EVAL_TASK_DEFINITIONS: readonly EvalTaskDefinition[] = definitionsOf(modules);

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
