/**
 * The whole fine-tuning pipeline behind `sharelora train`, as one call: read the data, split off a
 * validation set, tokenize, load the model (quantized if asked), put in the adapter (or train every
 * weight), train with checkpoints, score held-out data, and save the adapter with its prompt format.
 * Everything about the data is checked before the device starts or anything is written.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DEFAULT_TARGETS,
  injectAdapter,
  type LinearModuleInfo,
  linearModules,
  type Method,
  methodOf,
  presetConfig,
  resolveTargets,
} from '@sharelora/adapters';
import { loadAdapter, saveAdapter } from '@sharelora/adapters/node';
import { type ProfileReport, ShareloraError } from '@sharelora/core';
import { getDevice, init, type QuantFormat } from '@sharelora/core/node';
import {
  type AnyModel,
  type LoadProgress,
  loadModel,
  loadTokenizer,
  type ModelConfig,
  readConfig,
  saveModel,
  weightBytesByFormat,
} from '@sharelora/models';
import type { ClassifierFormatSpec, FormatSpec } from './data/formats.js';
import {
  checkColumns,
  type Dataset,
  describeReport,
  labelSetOf,
  readDataset,
  splitValidation,
} from './data/index.js';
import { type PromptFormat, writePromptFormat } from './data/prompt-format.js';
import type { ReadOptions } from './data/readers/read.js';
import { type TokenizeReport, tokenizeDataset } from './data/tokenize.js';
import { padIdOf } from './data/tokenizer.js';
import { type FrozenWeightBytes, frozenWeightBytes } from './memory/estimate.js';
import type { OutputLock } from './output/index.js';
import { listCheckpoints } from './trainer/checkpoint.js';
import { textTokenizerOf } from './trainer/tokenizer.js';
import { Trainer } from './trainer/trainer.js';
import type {
  CheckpointEvent,
  EvalMetrics,
  StepMetrics,
  TrainerOptions,
  TrainResult,
} from './trainer/types.js';

/** The trainer's options a fine-tuning run passes on as they are (see TrainerOptions). */
export const TRAINING_OPTIONS = [
  'batchSize',
  'gradAccum',
  'steps',
  'epochs',
  'lr',
  'weightDecay',
  'schedule',
  'warmupSteps',
  'warmupRatio',
  'maxGradNorm',
  'evalEvery',
  'saveEvery',
] as const;

/** Batch size, length (steps or epochs), learning rate and schedule, clipping, eval and save intervals. */
export type TrainingOptions = Pick<TrainerOptions, (typeof TRAINING_OPTIONS)[number]>;

/** The {@link TRAINING_OPTIONS} of an object holding them among other settings. */
export function trainingOptionsOf(settings: TrainingOptions): TrainingOptions {
  return Object.fromEntries(TRAINING_OPTIONS.map((k) => [k, settings[k]])) as unknown as TrainingOptions;
}

/** What to fine-tune, on which data, and how: the settings `sharelora train` takes, as values. */
export interface FineTuneSettings extends TrainingOptions {
  /** The base model's directory. */
  model: string;
  /** The training data file, read with `read` and rendered with `format`. */
  data: string;
  format: FormatSpec;
  read?: ReadOptions;
  /** A file scored after training (same format), reported as held-out loss and predictions. */
  evalData?: string;
  /** Fraction of the records held out for validation (default 0). */
  validation?: number;
  /** Seeds the split, the adapter's init, a new head and the trainer (default 0). */
  seed?: number;
  /** A classifier's label names; default: those of the training split. */
  labels?: string[];
  /** Tokens per example (default and most: the model's positions). */
  maxLength?: number;
  /** Loss on the prompt's tokens too. */
  trainOnSource?: boolean;
  /** An adapter method, or 'full' to train every weight. */
  method: Method | 'full';
  /**
   * An adapter directory to go on training (continual fine-tuning): the adapter's own method, rank,
   * alpha and targets apply (method, rank, alpha, targets and dropout here are ignored), and the
   * optimizer and schedule start afresh.
   */
  adapter?: string;
  rank?: number;
  alpha?: number;
  dropout?: number;
  /** Modules to adapt: names or the short aliases (default q, v). */
  targets?: readonly string[];
  /** Keep the base's block weights quantized (adapter methods only). */
  quantize?: QuantFormat;
  /** Output directory: checkpoints, metrics, the adapter (or model). */
  out: string;
  /** Continue from the newest checkpoint in `out`. */
  resume?: boolean;
  /** Limits of the data reader (record and file bytes). */
  limits?: { maxRecordBytes?: number; maxBytes?: number };
}

/** What a caller hears of a run while it goes. */
export interface FineTuneHooks {
  /** A line for the user: data reports, the adapter, a new head, resuming. */
  onMessage?(line: string): void;
  /** Loading the model's weights. */
  onLoadProgress?(p: LoadProgress): void;
  /** Training is about to start: how many steps it runs and the loss's unit. */
  onStart?(info: { totalSteps: number; lossUnit: string }): void;
  onStep?(m: StepMetrics): void;
  onEval?(e: EvalMetrics): void;
  onEvalProgress?(done: number, total: number): void;
  onCheckpoint?(c: CheckpointEvent): void;
  /** The adapter about to be put in (before it is). */
  onAdapter?(a: FineTuneAdapter): void;
  /** Resolves the target modules instead of `resolveTargets` (a CLI phrases its errors itself). */
  resolveTargets?(modules: readonly LinearModuleInfo[], targets: readonly string[] | undefined): string[];
  /** Stops training at the next step, with a checkpoint. */
  signal?: AbortSignal;
  /** A lock the caller already holds on `out`. */
  outDirLock?: OutputLock;
  /** Profile the training steps (device time per kernel). */
  profile?: boolean;
}

/** The adapter a run trained. */
export interface FineTuneAdapter {
  method: Method;
  r: number;
  alpha: number;
  targets: string[];
}

/** What {@link fineTune} did and measured. */
export interface FineTuneResult {
  /** Tokenization reports: train, and validation / eval-data when there are. */
  reports: Array<[string, TokenizeReport]>;
  /** nats/token for a causal LM, nats/example for a classifier, squared error for regression. */
  lossUnit: string;
  /** Label count of a classifier (1: regression), undefined for a causal LM. */
  numLabels: number | undefined;
  adapter: FineTuneAdapter | null;
  result: TrainResult;
  /** The held-out file's loss and, for a classifier, its predictions beside the gold labels. */
  heldOut: {
    file: string;
    examples: number;
    loss: number;
    predictions?: number[];
    gold?: number[];
  } | null;
  /** The trained model's frozen weights by storage format (bytes). */
  baseWeightsByFormat: Record<string, number>;
  /** What the frozen model takes at each base precision (adapter methods). */
  frozenBytesByPrecision: FrozenWeightBytes[] | null;
  /** The training steps' profile, when asked for. */
  profile?: ProfileReport;
}

/**
 * Settings that do not fit the data or the model (a classifier format on a causal LM, ...); `setting`
 * names the one at fault when the message starts with it.
 */
export class FineTuneError extends ShareloraError {
  constructor(
    message: string,
    readonly setting?: keyof FineTuneSettings,
  ) {
    super('BAD_SETTINGS', message);
  }
}

const isClassifier = (spec: FormatSpec): spec is ClassifierFormatSpec =>
  spec.type === 'classification' || spec.type === 'sentence-pair';

/** The longest input a model takes: its positions (RoBERTa's start after the padding index). */
export function modelPositions(config: ModelConfig): number {
  return config.arch === 'roberta' ? config.maxPositions - config.padTokenId - 1 : config.maxPositions;
}

/** What a loss is measured in: per target token for a causal LM, per example for a classifier. */
export function lossUnitOf(classifier: boolean, numLabels: number | undefined): string {
  if (!classifier) return 'nats/token';
  return numLabels === 1 ? 'squared error/example' : 'nats/example';
}

/**
 * Fine-tunes `settings.model` on `settings.data` and saves the result in `settings.out`. Starts the
 * device if it is not (after the data is read and checked); the caller shuts it down.
 */
export async function fineTune(s: FineTuneSettings, hooks: FineTuneHooks = {}): Promise<FineTuneResult> {
  const say = (line: string) => hooks.onMessage?.(line);
  const seed = s.seed ?? 0;
  const read = { ...s.read, ...s.limits };
  const ds = await readDataset(s.data, read);
  // A table missing a column the format needs is reported at its header, before anything else.
  checkColumns(ds, s.format);
  const validation = s.validation ?? 0;
  const split =
    validation > 0
      ? splitValidation(ds.records, { validation, seed })
      : { train: ds.records, validation: [] };
  let spec = s.format;
  if (isClassifier(spec) && spec.labels === undefined && spec.regression === undefined) {
    spec = { ...spec, labels: s.labels ?? labelSetOf(split.train, spec.fields?.label ?? 'label') };
  } else if (s.labels) {
    throw new FineTuneError(
      `labels apply to the classification and sentence-pair formats, not ${spec.type}`,
      'labels',
    );
  }
  const config = await readConfig(s.model);
  const classifier = isClassifier(spec);
  if (classifier !== (config.arch === 'roberta')) {
    throw new FineTuneError(
      classifier
        ? `the ${spec.type} format trains a sequence classifier, which needs a RoBERTa model (${s.model} is ${config.arch})`
        : `the ${spec.type} format trains a causal LM; ${s.model} is RoBERTa (use a classification format)`,
    );
  }
  const positions = modelPositions(config);
  if (s.maxLength !== undefined && s.maxLength > positions)
    throw new FineTuneError(
      `maxLength ${s.maxLength} exceeds the model's ${positions} positions`,
      'maxLength',
    );
  const tokenizer = textTokenizerOf(await loadTokenizer(s.model));
  const tok = (part: Dataset) =>
    tokenizeDataset(part, spec, tokenizer, {
      maxLength: s.maxLength ?? positions,
      trainOnSource: s.trainOnSource ?? false,
    });
  const trainSet = tok({ ...ds, records: split.train });
  const valSet = split.validation.length ? tok({ ...ds, records: split.validation }) : null;
  const heldOutSet = s.evalData ? tok(await readDataset(s.evalData, read)) : null;
  if (trainSet.examples.length === 0)
    throw new FineTuneError(`${s.data}: no training example is left (see the data report)`);
  const reports: Array<[string, TokenizeReport]> = [['train', trainSet.report]];
  if (valSet) reports.push(['validation', valSet.report]);
  if (heldOutSet) reports.push(['eval-data', heldOutSet.report]);
  return { reports, ...(await train()) };

  async function train(): Promise<Omit<FineTuneResult, 'reports'>> {
    for (const [name, r] of reports) say(`${name}: ${describeReport(r)}`);
    await init();
    const numLabels = classifier
      ? Math.max(1, (spec as ClassifierFormatSpec).labels?.length ?? 1)
      : undefined;
    const loaded = await loadModel(s.model, {
      task: classifier ? 'sequence-classification' : 'causal-lm',
      numLabels,
      trainable: s.method === 'full',
      quantize: s.quantize,
      seed,
      onProgress: hooks.onLoadProgress,
    });
    const model: AnyModel = loaded.model;
    try {
      const lossUnit = lossUnitOf(classifier, numLabels);
      if (loaded.initialised.length) say(`new head (seed ${seed}): ${loaded.initialised.join(', ')}`);
      let save: ((dir: string) => Promise<void>) | undefined;
      let adapter: FineTuneAdapter | null = null;
      // A language model's adapter records its prompt template, which `generate` then applies.
      const saveWithFormat = (format: PromptFormat) => async (dir: string) => {
        await saveAdapter(model, dir);
        await writePromptFormat(dir, format);
      };
      if (s.method === 'full') {
        if (s.adapter)
          throw new FineTuneError('an adapter to continue does not go with method full', 'adapter');
        save = async (dir) => {
          await saveModel(model, dir);
          // A full model is only usable with its tokenizer next to it.
          for (const f of ['tokenizer.json', 'tokenizer_config.json'])
            await copyFile(join(s.model, f), join(dir, f)).catch(() => undefined);
        };
      } else if (s.adapter) {
        const { config: cfg } = await loadAdapter(model, s.adapter);
        adapter = {
          method: methodOf(cfg.sharing) ?? 'lora',
          r: cfg.r,
          alpha: cfg.alpha,
          targets: Array.isArray(cfg.targetModules) ? cfg.targetModules : [cfg.targetModules],
        };
        say(`continuing the adapter in ${s.adapter}`);
        hooks.onAdapter?.(adapter);
        if (!classifier) save = saveWithFormat(spec.type as PromptFormat);
      } else {
        const modules = linearModules(model);
        const targets = hooks.resolveTargets
          ? hooks.resolveTargets(modules, s.targets)
          : resolveTargets(modules, s.targets ?? DEFAULT_TARGETS);
        adapter = { method: s.method, r: s.rank ?? 8, alpha: s.alpha ?? 16, targets };
        hooks.onAdapter?.(adapter);
        injectAdapter(
          model,
          presetConfig(s.method, {
            r: adapter.r,
            alpha: adapter.alpha,
            dropout: s.dropout,
            targetModules: targets,
            modulesToSave: classifier ? ['classifier'] : [],
            taskType: classifier ? 'SEQ_CLS' : 'CAUSAL_LM',
            baseModelNameOrPath: s.model,
          }),
          { rng: seed },
        );
        if (!classifier) save = saveWithFormat(spec.type as PromptFormat);
      }
      if (s.resume) {
        const from = (await listCheckpoints(s.out)).at(-1)?.dir;
        say(from ? `resuming from ${from}` : `no checkpoint in ${s.out}: starting at step 0`);
      }
      const trainer = new Trainer({
        ...trainingOptionsOf(s),
        model,
        train: trainSet.examples,
        validation: valSet?.examples,
        padId: padIdOf(tokenizer),
        seed,
        outDir: s.out,
        outDirLock: hooks.outDirLock,
        resume: s.resume,
        save,
        signal: hooks.signal,
        onCheckpoint: hooks.onCheckpoint,
        onStep: hooks.onStep,
        onEvalProgress: hooks.onEvalProgress,
        onEval: hooks.onEval,
      });
      hooks.onStart?.({ totalSteps: trainer.totalSteps, lossUnit });
      const device = getDevice();
      if (hooks.profile) device.startProfile();
      let result: TrainResult;
      let profile: ProfileReport | undefined;
      try {
        result = await trainer.train();
      } finally {
        if (device.profiling) profile = await device.stopProfile();
      }
      let heldOut: FineTuneResult['heldOut'] = null;
      // A stop after the last step leaves the outputs complete and --eval-data unscored.
      if (heldOutSet && !hooks.signal?.aborted) {
        const ev = await trainer.evaluateDetailed(heldOutSet.examples);
        heldOut = { file: s.evalData as string, examples: heldOutSet.examples.length, loss: ev.loss };
        if (ev.predictions) {
          heldOut.predictions = ev.predictions;
          heldOut.gold = heldOutSet.examples.map((e) => (e.kind === 'classification' ? e.label : 0));
        }
      }
      // What the same frozen model would take at each precision, from its config.json.
      const frozen = s.method === 'full' ? null : frozenWeightBytes(config.raw);
      return {
        lossUnit,
        numLabels,
        adapter,
        result,
        heldOut,
        baseWeightsByFormat: weightBytesByFormat(model),
        frozenBytesByPrecision: frozen,
        ...(profile ? { profile } : {}),
      };
    } finally {
      model.dispose();
    }
  }
}
