/**
 * One entry point for `sharelora eval`: a task name, a data path laid out as in ../shared/data, a
 * model, and the task's options.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EvalConfigError, EvalDataError } from './errors.js';
import type { EvalModel } from './model.js';
import type { EvalResult } from './results.js';
import { evaluateGsm8k, type Gsm8kOptions, type Gsm8kVariant, loadGsm8k } from './tasks/gsm8k.js';
import { evaluateHumanEval, type HumanEvalOptions, loadHumanEval } from './tasks/humaneval.js';
import { evaluateMmlu, loadMmlu, type MmluOptions } from './tasks/mmlu.js';
import { evaluateMmluPro, loadMmluPro, type MmluProOptions } from './tasks/mmlu-pro.js';

export type RunEvalSpec = { data: string } & (
  | ({ task: Gsm8kVariant } & Omit<Gsm8kOptions, 'variant'>)
  | ({ task: 'mmlu' } & MmluOptions)
  | ({ task: 'mmlu-pro' } & MmluProOptions)
  | ({ task: 'humaneval' } & HumanEvalOptions)
);

export const EVAL_TASKS = ['gsm8k', 'gsm8k-cot', 'gsm8k-paper', 'mmlu', 'mmlu-pro', 'humaneval'] as const;

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    throw new EvalDataError(path, null, 'not found');
  }
}

/** The first of `names` that exists in `dir`. */
async function pick(dir: string, names: (string | RegExp)[], what: string): Promise<string> {
  const entries = await readdir(dir);
  for (const n of names) {
    const hit =
      typeof n === 'string' ? entries.find((e) => e === n) : entries.filter((e) => n.test(e)).sort()[0];
    if (hit) return join(dir, hit);
  }
  throw new EvalDataError(dir, null, `no ${what} file here (looked for ${names.map(String).join(', ')})`);
}

/**
 * Loads the task's data and evaluates the model. `data` is the task's folder (gsm8k/: test.jsonl +
 * train.jsonl; mmlu/: test/ + dev/; mmlu_pro/: a *test*.jsonl + *validation*.jsonl; humaneval/:
 * HumanEval.jsonl[.gz]) or, except for MMLU, the test file itself with the others beside it.
 */
export async function runEval(model: EvalModel, spec: RunEvalSpec): Promise<EvalResult> {
  const dir = (await isDir(spec.data)) ? spec.data : dirname(spec.data);
  const file = dir === spec.data ? null : spec.data;
  switch (spec.task) {
    case 'gsm8k':
    case 'gsm8k-cot':
    case 'gsm8k-paper': {
      const test = await loadGsm8k(file ?? (await pick(dir, ['test.jsonl', 'test.jsonl.gz'], 'GSM8K test')));
      const needsTrain = spec.task === 'gsm8k' && (spec.shots ?? 5) > 0;
      const train = needsTrain
        ? await loadGsm8k(await pick(dir, ['train.jsonl', 'train.jsonl.gz'], 'GSM8K train'))
        : undefined;
      return evaluateGsm8k(model, { test, train }, { ...spec, variant: spec.task });
    }
    case 'mmlu':
      if (file) throw new EvalDataError(file, null, 'MMLU data must be a folder holding test/ and dev/');
      return evaluateMmlu(model, await loadMmlu(dir), spec);
    case 'mmlu-pro': {
      const testFile =
        file ??
        (await pick(
          dir,
          ['mmlu_pro_test.jsonl', 'test.jsonl', /^(?!.*validation).*test.*\.jsonl(\.gz)?$/],
          'MMLU-Pro test',
        ));
      const validationFile = await pick(
        dir,
        ['mmlu_pro_validation.jsonl', 'validation.jsonl', /validation.*\.jsonl(\.gz)?$/],
        'MMLU-Pro validation',
      );
      if (basename(validationFile) === basename(testFile)) {
        throw new EvalDataError(testFile, null, 'the test and validation files must differ');
      }
      return evaluateMmluPro(
        model,
        { test: await loadMmluPro(testFile), validation: await loadMmluPro(validationFile) },
        spec,
      );
    }
    case 'humaneval':
      return evaluateHumanEval(
        model,
        await loadHumanEval(
          file ?? (await pick(dir, ['HumanEval.jsonl', 'HumanEval.jsonl.gz'], 'HumanEval')),
        ),
        spec,
      );
    default:
      throw new EvalConfigError(
        `unknown task "${(spec as { task: string }).task}" (one of ${EVAL_TASKS.join(', ')}, or glue-<task> via evaluateGlue)`,
      );
  }
}
