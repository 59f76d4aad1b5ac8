/**
 * The options a task takes beyond the common ones, as data: each names its CLI flag, the run-option
 * key it sets, how its text is read and what the help says. A task definition lists the options it
 * takes with its defaults; the CLI builds its flag table, help lines and value checks from them, so
 * an option is declared once, beside the task that reads it.
 */
import { EvalConfigError } from '../errors.js';

/** A parsed option value. */
export type OptionValue = number | readonly number[] | string | boolean;

/**
 * How an option's text becomes its value: a positive integer ('count'), an integer >= 0 ('whole'),
 * a number >= 0 ('non-negative'), a seed (an integer in [0, 2^53)), comma-separated positive
 * integers ('count-list'), a path, a switch (no value), or one of a fixed set of words.
 */
export type OptionKind =
  | 'count'
  | 'whole'
  | 'non-negative'
  | 'seed'
  | 'count-list'
  | 'path'
  | 'switch'
  | { readonly oneOf: readonly string[] };

/** One task option. */
export interface TaskOption {
  /** The CLI flag, without dashes. */
  flag: string;
  /** The property of the task's run options it sets (several flags may set one: `scoring`). */
  key: string;
  /** The value's placeholder in help ('' for a switch). */
  arg: string;
  /** What it does, for help; defaults are added from the tasks that take it. */
  help: string;
  kind: OptionKind;
}

/** An option as one task takes it: with its default, one value or one per task name (variant). */
export interface TaskOptionUse {
  option: TaskOption;
  default?: OptionValue | { readonly byName: Readonly<Record<string, OptionValue>> };
}

/** Few-shot examples per prompt. */
export const SHOTS: TaskOption = {
  flag: 'shots',
  key: 'shots',
  arg: 'K',
  help: 'few-shot examples per prompt',
  kind: 'whole',
};

/** Generation limit in new tokens. */
export const MAX_NEW_TOKENS: TaskOption = {
  flag: 'max-new-tokens',
  key: 'maxNewTokens',
  arg: 'N',
  help: 'generation limit in new tokens',
  kind: 'count',
};

/** Sampling temperature of generation. */
export const TEMPERATURE: TaskOption = {
  flag: 'temperature',
  key: 'temperature',
  arg: 'T',
  help: '0 = greedy; > 0 samples',
  kind: 'non-negative',
};

/** Base seed of sampling. */
export const SEED: TaskOption = {
  flag: 'seed',
  key: 'seed',
  arg: 'N',
  help: "base seed of sampling; each document's seed derives from it",
  kind: 'seed',
};

/** A task's `--…-scoring` option: how it scores answers, one of `choices`. */
export function scoringOption(flag: string, choices: readonly string[]): TaskOption {
  return { flag, key: 'scoring', arg: 'S', help: 'how answers are scored', kind: { oneOf: choices } };
}

/** The default a task gives an option under one of its names, or undefined. */
export function optionDefault(use: TaskOptionUse, name: string): OptionValue | undefined {
  const d = use.default;
  if (d !== null && typeof d === 'object' && 'byName' in d) return d.byName[name];
  return d;
}

/** An option value as help prints it. */
export function formatOptionValue(value: OptionValue): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

/** What the value must be, for error messages. */
function rule(kind: OptionKind): string {
  if (typeof kind === 'object') return `one of ${kind.oneOf.join(', ')}`;
  return {
    count: 'a positive integer',
    whole: 'an integer >= 0',
    'non-negative': 'a number >= 0',
    seed: 'an integer in [0, 2^53)',
    'count-list': 'comma-separated positive integers, e.g. 1,10',
    path: 'a path',
    switch: 'given without a value',
  }[kind];
}

/**
 * Reads an option's CLI text (a boolean for a switch; undefined when absent). Throws an
 * {@link EvalConfigError} naming the flag and the rule for a bad value.
 */
export function parseOptionValue(
  option: TaskOption,
  text: string | boolean | undefined,
): OptionValue | undefined {
  if (text === undefined) return undefined;
  const { kind, flag } = option;
  const bad = () => new EvalConfigError(`--${flag} must be ${rule(kind)}, got "${String(text)}"`);
  if (kind === 'switch') {
    if (typeof text !== 'boolean') throw bad();
    return text;
  }
  if (typeof text !== 'string') throw bad();
  if (typeof kind === 'object') {
    if (!kind.oneOf.includes(text)) throw bad();
    return text;
  }
  if (kind === 'path') {
    if (text === '') throw bad();
    return text;
  }
  const number = (s: string): number => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n)) throw bad();
    return n;
  };
  const positive = (n: number) => Number.isInteger(n) && n >= 1;
  if (kind === 'count-list') {
    const ks = text.split(',').map(number);
    if (!ks.every(positive)) throw bad();
    return ks;
  }
  const n = number(text);
  const ok = {
    count: positive(n),
    whole: Number.isInteger(n) && n >= 0,
    'non-negative': n >= 0,
    seed: Number.isSafeInteger(n) && n >= 0,
  }[kind];
  if (!ok) throw bad();
  return n;
}
