/**
 * `sharelora eval`'s task list, task option help and option checks, all derived from the task
 * definitions (and the CLI's own loss task): a task's flags, defaults and value rules are declared
 * once, beside the task.
 */
import {
  EVAL_TASK_DEFINITIONS,
  formatOptionValue,
  optionDefault,
  parseOptionValue,
  TASK_OPTIONS,
  type TaskOption,
  type TaskOptionUse,
  taskDefinition,
  taskOptionUses,
} from '@sharelora/eval';
import { QUANT_FORMATS } from '@sharelora/models';
import { asUsage } from '../cli-error.js';
import { LOSS_TASK } from './eval-loss.js';

/** A task as help and the flag checks see it. */
interface TaskEntry {
  names: readonly string[];
  summary: string;
  /** Options of a model run. */
  uses: readonly TaskOptionUse[];
  /** Options when scoring a file of outputs instead (the file's option first), if the task can. */
  scoringUses: readonly TaskOptionUse[] | null;
}

const ENTRIES: readonly TaskEntry[] = [
  ...EVAL_TASK_DEFINITIONS.map((d) => ({
    names: d.names,
    summary: d.summary,
    uses: taskOptionUses(d),
    scoringUses: d.fileScoring ? taskOptionUses(d, true) : null,
  })),
  { names: LOSS_TASK.names, summary: LOSS_TASK.summary, uses: LOSS_TASK.options, scoringUses: null },
];

/** Every task name `--task` accepts. */
export const TASK_NAMES = ENTRIES.flatMap((e) => e.names);

/** Every task option, once per flag: the registry's, then the loss task's. */
const OPTIONS: readonly TaskOption[] = [...TASK_OPTIONS, ...LOSS_TASK.options.map((u) => u.option)];

/** The flags of task options, for the command's flag parser. */
export const TASK_FLAG_SPEC = Object.fromEntries(
  OPTIONS.map((o) => [o.flag, { type: o.kind === 'switch' ? ('boolean' as const) : ('string' as const) }]),
);

/** Flags naming a file of outputs to score instead of a model (--completions, --predictions). */
export const SCORING_FILE_FLAGS = ENTRIES.flatMap((e) =>
  e.scoringUses ? [e.scoringUses[0].option.flag] : [],
);

/** Every task-option flag: given to a task that does not take it, it is refused, not ignored. */
export const TASK_ONLY_FLAGS = OPTIONS.map((o) => o.flag);

const entryOf = (task: string) => ENTRIES.find((e) => e.names.includes(task));

/**
 * The options `task` takes: a model run's, or with `scoring` (a file-scoring flag) that file's and
 * the ones it keeps; none when the task cannot score that file.
 */
export function taskUses(task: string, scoring: string | null): readonly TaskOptionUse[] {
  const entry = entryOf(task);
  if (!entry) return [];
  if (scoring === null) return entry.uses;
  return entry.scoringUses?.[0].option.flag === scoring ? entry.scoringUses : [];
}

/** The file-scoring flag of `task`, if it has one. */
export function scoringFlagOf(task: string): string | undefined {
  return taskDefinition(task)?.fileScoring?.option.flag;
}

/**
 * The values of `options` from the parsed flags, keyed as the task reads them (absent flags
 * omitted, so the task's defaults apply). A bad value is a usage error naming the flag.
 */
export function readTaskOptions(
  options: readonly TaskOption[],
  values: Record<string, string | boolean | undefined>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const option of options) {
    try {
      const value = parseOptionValue(option, values[option.flag]);
      if (value !== undefined) out[option.key] = value;
    } catch (e) {
      asUsage(e);
    }
  }
  return out;
}

/** Words of `text` in lines of at most `width` columns, each indented by `indent` spaces. */
function wrap(text: string, indent: number, width = 100): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l) => ' '.repeat(indent) + l);
}

/** The help's task list: names, then the summary beside them (or below, when the names are long). */
export function taskListHelp(): string {
  return ENTRIES.flatMap(({ names, summary }) => {
    const label = names.join(', ');
    const body = wrap(summary, 16);
    if (label.length <= 13) return [`  ${label.padEnd(14)}${body[0].trimStart()}`, ...body.slice(1)];
    return [`  ${label}`, ...body];
  }).join('\n');
}

/**
 * One option's description: which tasks take it, what it does, its choices and its defaults (one
 * figure when every task agrees, else per task name).
 */
function describeOption(option: TaskOption): string {
  const takers = ENTRIES.flatMap((e) => {
    const use = [...e.uses, ...(e.scoringUses ?? [])].find((u) => u.option.flag === option.flag);
    return use ? [{ names: e.names, use }] : [];
  });
  const names = takers.flatMap((t) => t.names);
  const shown = takers.flatMap(({ names, use }) =>
    names.map((name) => {
      const value = optionDefault(use, name);
      return { name, value: value === undefined ? undefined : formatOptionValue(value) };
    }),
  );
  const known = [...new Set(shown.flatMap((d) => (d.value === undefined ? [] : [d.value])))];
  const only = known.length === 1 ? known[0] : undefined;
  let text = option.help;
  if (typeof option.kind === 'object') {
    const words = option.kind.oneOf.map((c) => (c === only ? `${c} (default)` : c));
    text += `: ${words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words[0]}`;
  } else if (only !== undefined) text += ` (default ${only})`;
  if (known.length > 1)
    return `${text} (${shown.map(({ name, value }) => `${name} ${value ?? '-'}`).join(', ')})`;
  return `${names.join(', ')}: ${text}`;
}

/** A flag's help: the flag, then its wrapped description from `column` (below it when the flag is long). */
function helpLines(flag: string, text: string, column: number): string {
  const body = wrap(text, column);
  if (flag.length + 4 > column) return [`  ${flag}`, ...body].join('\n');
  return [`  ${flag.padEnd(column - 2)}${body[0].trimStart()}`, ...body.slice(1)].join('\n');
}

/** Help lines of every task option, descriptions starting at `column`. */
export function taskOptionHelp(column: number): string {
  return OPTIONS.map((o) =>
    helpLines(`--${o.flag}${o.arg ? ` ${o.arg}` : ''}`, describeOption(o), column),
  ).join('\n');
}

/** --limit's help, naming the tasks that count documents per group (MMLU per subject). */
export function limitHelp(column: number): string {
  const grouped = EVAL_TASK_DEFINITIONS.filter((d) => d.limitPer !== undefined);
  const groups = [...new Set(grouped.map((d) => d.limitPer))].join(' / ');
  const per =
    grouped.length === 0 ? '' : ` (per ${groups} for ${grouped.flatMap((d) => d.names).join(', ')})`;
  return helpLines('--limit N', `only the first N documents${per}`, column);
}

/** `sharelora eval`'s --limit and --batch-size, read like the tasks' options (any task takes them). */
export const COUNT_FLAGS: readonly TaskOption[] = [
  { flag: 'limit', key: 'limit', arg: 'N', help: '', kind: 'count' },
  { flag: 'batch-size', key: 'batchSize', arg: 'N', help: '', kind: 'count' },
];

/** The flags of `sharelora eval` beside the task's own that a run started on one's behalf may set. */
const RUN_FLAGS: readonly TaskOption[] = [
  ...COUNT_FLAGS,
  { flag: 'quantize', key: 'quantize', arg: 'FORMAT', help: '', kind: { oneOf: QUANT_FORMATS } },
];

/**
 * Checks the flags of an eval run to be started later (an experiment's evaluations) as `sharelora
 * eval` will read them: the task exists, takes each flag, and each value is valid. Returns the
 * problem, starting with the key it is about, or null.
 */
export function evalFlagsProblem(
  task: string,
  flags: Record<string, string | number | boolean>,
): string | null {
  if (!TASK_NAMES.includes(task)) return `task: unknown task "${task}" (one of ${TASK_NAMES.join(', ')})`;
  const options = [...RUN_FLAGS, ...taskUses(task, null).map((u) => u.option)];
  for (const [flag, value] of Object.entries(flags)) {
    const option = options.find((o) => o.flag === flag);
    if (!option) return `${flag}: not an option of task ${task} (${options.map((o) => o.flag).join(', ')})`;
    try {
      parseOptionValue(option, typeof value === 'boolean' ? value : String(value));
    } catch (e) {
      return `${flag}: ${(e as Error).message}`;
    }
  }
  return null;
}
