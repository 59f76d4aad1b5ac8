/**
 * What the runner, `eval-merge` and the CLI know of an evaluation task, in one object each task
 * module default-exports: its names, its one-line summary, the options it takes, how it runs on a
 * model (or scores a file of outputs), how its metrics are recomputed from samples and shown. The
 * registry collects the default exports of the modules in this folder; nothing else names a task.
 */
import type { EvalModel } from '../model.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import type { RunOptions } from '../run.js';
import type { GlueClassifier } from './glue.js';
import type { TaskOption, TaskOptionUse } from './options.js';

/** The JSON type of a sample field a task's metrics read. */
export type SampleFieldKind = 'string' | 'number' | 'boolean' | 'integer' | 'object' | 'array';

/**
 * The options every run takes plus any task's own, as the CLI passes them (a task reads its own,
 * the CLI refuses the flags of other tasks before a run starts).
 */
export interface TaskRunSpec extends RunOptions {
  /** The task name (one of the definition's `names`). */
  task: string;
  /** The task's data folder or file. */
  data: string;
  [option: string]: unknown;
}

/** One evaluation task. */
export interface EvalTaskDefinition {
  /** Result-file names it answers to (variants share a definition: gsm8k, gsm8k-cot, gsm8k-paper). */
  names: readonly string[];
  /** One line for help listings. */
  summary: string;
  /** Its place in help listings, lowest first (ties by first name). */
  order: number;
  /** What it evaluates: a causal LM (through {@link EvalModel}) or a sequence classifier (GLUE). */
  model: 'causal-lm' | 'classifier';
  /** Its own options with its defaults (the CLI's flags, help lines and checks); other tasks refuse them. */
  options: readonly TaskOptionUse[];
  /** Sample fields its metrics read and their JSON types, checked before shards are merged. */
  sampleFields: readonly (readonly [field: string, kind: SampleFieldKind])[];
  /** Its metrics from a result's samples and settings (also what merging shards recomputes). */
  metrics(samples: ResultSample[], settings: ResultSettings): unknown;
  /** Loads the data at `spec.data` and evaluates a causal LM (`model` 'causal-lm' only). */
  run?(model: EvalModel, spec: TaskRunSpec): Promise<EvalResult>;
  /** Loads the data at `spec.data` and evaluates a sequence classifier (`model` 'classifier' only). */
  classify?(classifier: GlueClassifier, spec: TaskRunSpec): Promise<EvalResult>;
  /** The classes a classifier needs for a task name (1: a regression head), checked before it runs. */
  numLabels?(name: string): number;
  /** The group `--limit` counts documents within (MMLU: "subject"), where it is not the whole task. */
  limitPer?: string;
  /**
   * Markdown tables of per-group metrics, printed below a result's summary, and the top-level
   * metric keys they show (left out of the summary's rows).
   */
  groupTables?: { keys: readonly string[]; render(metrics: unknown): string | null };
  /**
   * Scoring outputs produced elsewhere instead of a model: the option naming the file, the flags of
   * `options` that still apply, and the scorer (`spec.file` is the outputs file).
   */
  fileScoring?: {
    option: TaskOption;
    keeps: readonly string[];
    run(spec: TaskRunSpec & { file: string }): Promise<EvalResult>;
  };
}
