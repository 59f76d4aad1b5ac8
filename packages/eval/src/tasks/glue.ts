/**
 * GLUE for sequence classifiers (RoBERTa with a classification head): TSV loaders for the GLUE files
 * and scoring with each task's metrics. The classifier is a plain interface, like EvalModel, so the
 * model side stays in @sharelora/models.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GLUE_FILES } from '@sharelora/data';
import { locate, pick } from '../data-files.js';
import { EvalConfigError, EvalDataError, EvalModelError } from '../errors.js';
import { parseCsv, parseTsv, readText } from '../io.js';
import { accuracy, f1Score, matthewsCorrelation, pearson, spearman } from '../metrics.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import {
  applyShard,
  batched,
  batchSizeOf,
  firstN,
  type RunOptions,
  reporter,
  validateLimit,
} from '../run.js';
import type { EvalTaskDefinition } from './definition.js';

/**
 * The GLUE tasks {@link evaluateGlue} scores, by their short names (the result file's task is
 * `glue-` + the name).
 */
export type GlueTask = 'sst2' | 'mrpc' | 'stsb' | 'rte' | 'cola';

interface GlueSpec {
  /** Number of classes; 1 for regression (STS-B). */
  numLabels: number;
  metrics: readonly ('accuracy' | 'f1' | 'mcc' | 'pearson' | 'spearman')[];
  /** Metric quoted by the LoRA / ShareLoRA papers. */
  headline: 'accuracy' | 'mcc' | 'pearson';
}

/**
 * Per GLUE task: the number of classes (1 for STS-B's regression), the metrics computed, and the
 * headline metric the LoRA and ShareLoRA papers report (accuracy; MCC for CoLA; Pearson's r for
 * STS-B).
 */
export const GLUE_TASKS: Readonly<Record<GlueTask, GlueSpec>> = {
  sst2: { numLabels: 2, metrics: ['accuracy'], headline: 'accuracy' },
  mrpc: { numLabels: 2, metrics: ['accuracy', 'f1'], headline: 'accuracy' },
  stsb: { numLabels: 1, metrics: ['pearson', 'spearman'], headline: 'pearson' },
  rte: { numLabels: 2, metrics: ['accuracy'], headline: 'accuracy' },
  cola: { numLabels: 2, metrics: ['mcc'], headline: 'mcc' },
};

/**
 * One example of a GLUE file, as {@link loadGlue} reads it and a {@link GlueClassifier} predicts
 * it.
 */
export interface GlueExample {
  /** The sentence, or the first sentence of a pair. */
  text: string;
  /** The second sentence, for pair tasks (MRPC, STS-B, RTE). */
  textPair?: string;
  /** Class id (HF `glue` label ids) or STS-B similarity 0..5; null where the file has no labels (test). */
  label: number | null;
}

/** A classifier: class ids for classification tasks, a score for STS-B. */
export interface GlueClassifier {
  name: string;
  predict(examples: GlueExample[]): Promise<number[]>;
}

function parseLabel(task: GlueTask, raw: string, file: string, line: number): number {
  // RTE's files name their labels; the id is the name's position in the layout's label list.
  const named = task === 'rte' ? (GLUE_FILES.rte.labels ?? []).indexOf(raw) : -1;
  if (named >= 0) return named;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) {
    throw new EvalDataError(file, line, `label ${JSON.stringify(raw)} is not a number`);
  }
  if (task === 'stsb') return v;
  if (!Number.isInteger(v) || v < 0 || v >= GLUE_TASKS[task].numLabels) {
    throw new EvalDataError(file, line, `label ${JSON.stringify(raw)} is not a class id of ${task}`);
  }
  return v;
}

/**
 * Reads a GLUE TSV, quoted as its layout in @sharelora/data says (the original TSVs not at all,
 * RTE as Hugging Face exports it with quotes; training reads them the same way). Files with a
 * header are matched by column names; CoLA's train/dev files have none (source, label, original
 * label, sentence). A file without the label column (a test split) gives `label: null`.
 */
export async function loadGlue(task: GlueTask, file: string): Promise<GlueExample[]> {
  if (!(task in GLUE_TASKS)) throw new EvalConfigError(`unknown GLUE task "${task}"`);
  const text = await readText(file);
  const layout = GLUE_FILES[task];
  const rows = layout.quote !== null ? parseCsv(text, file, '\t') : parseTsv(text, file);
  if (rows.length === 0) throw new EvalDataError(file, null, 'file is empty');
  const { headerless } = layout;
  if (headerless && rows[0].value.length === headerless.length) {
    const textAt = headerless.indexOf(layout.text);
    const labelAt = headerless.indexOf(layout.label);
    return rows.map(({ value, line }) => {
      if (value.length !== headerless.length)
        throw new EvalDataError(file, line, `expected ${headerless.length} columns, found ${value.length}`);
      return { text: value[textAt], label: parseLabel(task, value[labelAt], file, line) };
    });
  }
  const header = rows[0].value;
  const cols = layout;
  const at = (name: string | undefined) => (name === undefined ? -1 : header.indexOf(name));
  const textAt = at(cols.text);
  const pairAt = at(cols.pair);
  const labelAt = at(cols.label);
  if (textAt < 0 || (cols.pair !== undefined && pairAt < 0)) {
    throw new EvalDataError(
      file,
      rows[0].line,
      `header lacks ${[cols.text, cols.pair].filter(Boolean).join(' / ')} for ${task} (found: ${header.join(', ')})`,
    );
  }
  return rows.slice(1).map(({ value, line }) => {
    if (value.length !== header.length) {
      throw new EvalDataError(
        file,
        line,
        `expected ${header.length} tab-separated columns, found ${value.length}`,
      );
    }
    const example: GlueExample = {
      text: value[textAt],
      label: labelAt < 0 ? null : parseLabel(task, value[labelAt], file, line),
    };
    if (pairAt >= 0) example.textPair = value[pairAt];
    return example;
  });
}

export interface GlueSample extends ResultSample {
  text: string;
  textPair?: string;
  target: number;
  output: number;
  /** Classification only: prediction equals label. */
  verdict?: boolean;
}

/**
 * The metrics of a GLUE result: those the task defines ({@link GLUE_TASKS}) and its headline. `n`
 * is the number of examples scored.
 */
export interface GlueMetrics {
  n: number;
  accuracy?: number;
  f1?: number;
  mcc?: number;
  pearson?: number;
  spearman?: number;
  /** The task's headline metric and its value (NaN when nothing was scored). */
  headline: { metric: string; value: number };
}

/**
 * Computes a GLUE result's metrics from its samples; the task is read from `settings.glueTask`.
 * Used by {@link evaluateGlue} and to recompute the metrics of merged shards.
 */
export function glueMetrics(samples: GlueSample[], settings: ResultSettings): GlueMetrics {
  const spec = GLUE_TASKS[settings.glueTask as GlueTask];
  const out = samples.map((s) => s.output);
  const gold = samples.map((s) => s.target);
  const metrics: GlueMetrics = { n: samples.length, headline: { metric: spec.headline, value: Number.NaN } };
  if (samples.length === 0) return metrics;
  for (const m of spec.metrics) {
    if (m === 'accuracy') metrics.accuracy = accuracy(out, gold);
    else if (m === 'f1') metrics.f1 = f1Score(out, gold);
    else if (m === 'mcc') metrics.mcc = matthewsCorrelation(out, gold);
    else if (m === 'pearson') metrics.pearson = pearson(out, gold);
    else metrics.spearman = spearman(out, gold);
  }
  metrics.headline.value = metrics[spec.headline] as number;
  return metrics;
}

/**
 * Scores a classifier on labelled GLUE examples (the dev split): predicts the selected examples in
 * batches and computes the task's metrics. Throws an {@link EvalConfigError} for an unknown task or
 * an example without a label (a test split), and an {@link EvalModelError} when a prediction is not
 * a finite number.
 */
export async function evaluateGlue(
  classifier: GlueClassifier,
  task: GlueTask,
  examples: GlueExample[],
  options: RunOptions = {},
): Promise<EvalResult<GlueSample, GlueMetrics>> {
  const spec = GLUE_TASKS[task];
  if (!spec) throw new EvalConfigError(`unknown GLUE task "${task}"`);
  const limit = validateLimit(options.limit);
  const selected = firstN(examples.length, limit);
  const mine = applyShard(selected, options.shard);
  for (const i of mine) {
    if (examples[i].label === null)
      throw new EvalConfigError(`example ${i} has no label (is this a test split?)`);
  }
  const outputs = await batched(
    mine.map((i) => examples[i]),
    (batch) => classifier.predict(batch),
    {
      batchSize: batchSizeOf(options),
      report: reporter(`glue-${task}`, 'classify', options),
      what: `${classifier.name}.predict`,
    },
  );
  const samples: GlueSample[] = mine.map((i, k) => {
    const ex = examples[i];
    const output = outputs[k];
    if (typeof output !== 'number' || !Number.isFinite(output)) {
      throw new EvalModelError(`${classifier.name}.predict returned ${output} for example ${i}`);
    }
    const sample: GlueSample = {
      doc: i,
      text: ex.text,
      ...(ex.textPair === undefined ? {} : { textPair: ex.textPair }),
      target: ex.label as number,
      output,
    };
    if (spec.numLabels > 1) sample.verdict = output === ex.label;
    return sample;
  });
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    glueTask: task,
  };
  return {
    model: classifier.name,
    adapter: options.adapter ?? null,
    task: `glue-${task}`,
    settings,
    metrics: glueMetrics(samples, settings),
    samples,
  };
}

/** GLUE: a RoBERTa sequence classifier on a task's dev split (run through runGlueEval, not a causal LM). */
export const GLUE_TASK: EvalTaskDefinition = {
  names: (Object.keys(GLUE_TASKS) as GlueTask[]).map((t) => `glue-${t}`),
  summary:
    'a RoBERTa sequence classifier (num_labels from config.json) on the dev split: accuracy, F1, Matthews correlation, Pearson / Spearman',
  order: 60,
  model: 'classifier',
  options: [],
  sampleFields: [
    ['target', 'number'],
    ['output', 'number'],
  ],
  metrics: (samples, settings) => glueMetrics(samples as GlueSample[], settings),
  numLabels: (name) => GLUE_TASKS[name.replace(/^glue-/, '') as GlueTask].numLabels,
  // `data` is the TSV itself, the task's folder (dev.tsv) or the GLUE folder holding that folder.
  async classify(classifier, spec) {
    const task = spec.task.replace(/^glue-/, '') as GlueTask;
    const { dir, file } = await locate(spec.data);
    const folder = GLUE_FILES[task].folder;
    const taskDir = (await readdir(dir)).includes(folder) ? join(dir, folder) : dir;
    const tsv = file ?? (await pick(taskDir, ['dev.tsv'], `${task} dev`));
    return evaluateGlue(classifier, task, await loadGlue(task, tsv), spec);
  },
};

export default GLUE_TASK;
