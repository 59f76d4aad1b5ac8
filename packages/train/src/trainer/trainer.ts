import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { listAdapters } from '@sharelora/adapters';
import { saveAdapter } from '@sharelora/adapters/node';
import {
  AdamW,
  add,
  assignTensor,
  backward,
  baseModelDifference,
  baseModelIdentityOf,
  clipGradNorm,
  Dropout,
  getDevice,
  lrAt,
  type MemoryReport,
  noGrad,
  type Parameter,
  scale,
  type Tensor,
  tidy,
} from '@sharelora/core';
import { BatchLoader, type DataPosition } from '../data/batch.js';
import { DataError } from '../data/errors.js';
import type { Example } from '../data/tokenize.js';
import { lockOutputDir } from '../output/lock.js';
import {
  type CheckpointState,
  checkpointDir,
  cleanStale,
  listCheckpoints,
  readCheckpoint,
  writeCheckpoint,
  writeDirAtomically,
} from './checkpoint.js';
import { TrainingError } from './errors.js';
import { type EvaluationResult, evaluateExamples } from './evaluate.js';
import { forwardLoss, lossTerms } from './loss.js';
import type {
  EvalMetrics,
  RunReport,
  StepMetrics,
  TrainableModel,
  TrainerOptions,
  TrainResult,
} from './types.js';

/**
 * File name, in the output directory, of the run's metrics: one JSON line per step and per
 * evaluation.
 */
export const METRICS_FILE = 'metrics.jsonl';
/**
 * Folder, in the output directory, of the adapter (or model) with the lowest validation loss
 * ({@link TrainerOptions.keepBest}).
 */
export const BEST_DIR = 'best';

/**
 * Stands in for "no clipping" while still measuring the norm: clipGradNorm's factor
 * min(1, maxNorm / (norm + 1e-6)) stays finite in f32 (≤ 1e36) and is exactly 1 for any real norm.
 */
const NO_CLIP = 1e30;

const positiveInt = (name: string, v: number | undefined, min = 1): void => {
  if (v !== undefined && !(Number.isInteger(v) && v >= min))
    throw new TrainingError('BAD_OPTION', `${name} must be an integer >= ${min}, got ${v}`);
};

function checkOptions(o: TrainerOptions): void {
  positiveInt('batchSize', o.batchSize);
  positiveInt('gradAccum', o.gradAccum);
  // Zero steps: the adapter as initialised, saved and (with validation examples) evaluated.
  positiveInt('steps', o.steps, 0);
  positiveInt('warmupSteps', o.warmupSteps, 0);
  positiveInt('evalEvery', o.evalEvery);
  positiveInt('saveEvery', o.saveEvery);
  positiveInt('padId', o.padId, 0);
  if (!Number.isSafeInteger(o.seed))
    throw new TrainingError('BAD_OPTION', `seed must be an integer, got ${o.seed}`);
  if (o.steps !== undefined && o.epochs !== undefined)
    throw new TrainingError('BAD_OPTION', 'give steps or epochs, not both');
  if (o.epochs !== undefined && !(o.epochs > 0))
    throw new TrainingError('BAD_OPTION', `epochs must be > 0, got ${o.epochs}`);
  if (!(o.lr >= 0 && Number.isFinite(o.lr)))
    throw new TrainingError('BAD_OPTION', `lr must be >= 0, got ${o.lr}`);
  if (o.warmupRatio !== undefined && !(o.warmupRatio >= 0 && o.warmupRatio < 1))
    throw new TrainingError('BAD_OPTION', `warmupRatio must be in [0, 1), got ${o.warmupRatio}`);
  if (o.maxGradNorm !== undefined && !(o.maxGradNorm > 0))
    throw new TrainingError('BAD_OPTION', `maxGradNorm must be > 0, got ${o.maxGradNorm}`);
  if (o.train.length === 0) throw new TrainingError('BAD_OPTION', 'no training examples');
  if (o.evalEvery !== undefined && !o.validation?.length)
    throw new TrainingError('BAD_OPTION', 'evalEvery needs validation examples');
  if (o.keepBest && !(o.validation?.length && o.outDir))
    throw new TrainingError('BAD_OPTION', 'keepBest needs validation examples and an outDir');
  if (o.model.task === 'sequence-classification') {
    if (o.train[0].kind !== 'classification')
      throw new TrainingError('BAD_OPTION', 'a sequence-classification model needs classification examples');
  } else if (o.train[0].kind !== 'lm') {
    throw new TrainingError('BAD_OPTION', `a ${o.model.task} model needs language-model examples`);
  }
  if (o.outDirLock && !(o.outDir && resolve(o.outDir) === o.outDirLock.target))
    throw new TrainingError('BAD_OPTION', `outDirLock locks ${o.outDirLock.target}, not outDir ${o.outDir}`);
  if (o.outDir && !o.save && listAdapters(o.model).length === 0) {
    throw new TrainingError(
      'BAD_OPTION',
      'the model has no adapter: for full fine-tuning pass `save` (e.g. saveModel from @sharelora/models)',
    );
  }
}

/** Offsets of every dropout module by path: with their seeds (fixed when the model was built) the masks to come. */
function dropoutOffsets(model: TrainableModel): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [path, m] of model.namedModules()) if (m instanceof Dropout) out[path] = m.offset;
  return out;
}

function restoreDropout(model: TrainableModel, offsets: Record<string, number>, where: string): void {
  const mods = model.namedModules().filter(([, m]) => m instanceof Dropout) as Array<[string, Dropout]>;
  const missing = mods.filter(([p]) => !(p in offsets)).map(([p]) => p);
  if (missing.length || mods.length !== Object.keys(offsets).length) {
    throw new TrainingError(
      'RESUME_MISMATCH',
      `${where}: the model's dropout modules differ from the checkpoint's (e.g. ${missing[0] ?? Object.keys(offsets)[0]})`,
    );
  }
  for (const [p, m] of mods) m.offset = offsets[p];
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/**
 * Fine-tunes a model's trainable parameters (an injected adapter, a modules_to_save head, or every
 * weight) with AdamW: HF-style learning-rate schedules with warmup, gradient accumulation weighted by
 * loss terms (so it equals one large batch), global-norm clipping, validation loss every N steps with
 * keep-best, metrics as JSONL, and atomic checkpoints from which a resumed run ends bit-identical to
 * an uninterrupted one (same seed, data and settings).
 */
export class Trainer {
  private readonly o: TrainerOptions;
  private readonly gradAccum: number;
  /** BatchLoader's count without dropLast (the loader itself needs the resume position first). */
  private readonly batchesPerEpoch: number;
  /** Optimizer steps of the whole run: `steps`, or `epochs` passes of micro-batches grouped by gradAccum. */
  readonly totalSteps: number;

  constructor(options: TrainerOptions) {
    checkOptions(options);
    this.o = options;
    this.gradAccum = options.gradAccum ?? 1;
    this.batchesPerEpoch = Math.ceil(options.train.length / options.batchSize);
    this.totalSteps =
      options.steps ?? Math.ceil(((options.epochs ?? 1) * this.batchesPerEpoch) / this.gradAccum);
  }

  /** Mean loss over `examples` (the mean over target tokens for LMs, over examples for classifiers). */
  async evaluate(examples: Example[]): Promise<number> {
    return (await this.evaluateDetailed(examples)).loss;
  }

  /** evaluate() plus a classifier's predictions, in one pass (eval mode: dropout off, no gradients). */
  evaluateDetailed(examples: Example[]): Promise<EvaluationResult> {
    return evaluateExamples(this.o.model, examples, {
      batchSize: this.o.batchSize,
      padId: this.o.padId,
      onProgress: this.o.onEvalProgress,
    });
  }

  /** Runs the training loop, holding a lock on outDir (unless the caller holds one, outDirLock). */
  async train(): Promise<TrainResult> {
    const lock = this.o.outDir && !this.o.outDirLock ? await lockOutputDir(this.o.outDir) : null;
    try {
      return await this.run();
    } finally {
      lock?.release();
    }
  }

  private async run(): Promise<TrainResult> {
    const o = this.o;
    const { model } = o;
    const device = getDevice();
    const named = model.namedParameters({ trainableOnly: true });
    if (named.length === 0)
      throw new TrainingError(
        'BAD_OPTION',
        'the model has no trainable parameters (inject an adapter first)',
      );
    const names = named.map(([n]) => n);
    const params: Parameter[] = named.map(([, p]) => p);
    const save = o.save ?? ((dir: string) => saveAdapter(model, dir));
    const optimizer = new AdamW(params, {
      lr: o.lr,
      betas: o.betas,
      eps: o.eps,
      // HF TrainingArguments' default: no decay unless asked for.
      weightDecay: o.weightDecay ?? 0,
    });

    const loaderOpts = { batchSize: o.batchSize, seed: o.seed, padId: o.padId };
    const { totalSteps, batchesPerEpoch } = this;
    const warmupSteps = o.warmupSteps ?? Math.ceil((o.warmupRatio ?? 0) * totalSteps);
    const schedule = { base: o.lr, schedule: o.schedule ?? 'linear', warmupSteps, totalSteps } as const;
    // Everything that changes the numbers of a step; a resume must agree on all of it.
    const settings: Record<string, unknown> = {
      seed: o.seed,
      batchSize: o.batchSize,
      gradAccum: this.gradAccum,
      totalSteps,
      lr: o.lr,
      schedule: schedule.schedule,
      warmupSteps,
      weightDecay: optimizer.hyper.weightDecay,
      betas: optimizer.hyper.betas,
      eps: optimizer.hyper.eps,
      maxGradNorm: o.maxGradNorm ?? null,
    };

    let startStep = 0;
    let position: DataPosition | undefined;
    let bestValLoss: number | null = null;
    let bestStep: number | null = null;
    let trainLoss = Number.NaN;
    let lastCheckpoint: { step: number; dir: string } | null = null;
    let resumedFrom: number | null = null;
    const outDir = o.outDir;
    const keepBest = o.keepBest ?? Boolean(o.validation?.length && outDir);
    const metricsPath = outDir ? join(outDir, METRICS_FILE) : null;
    if (outDir) {
      await mkdir(outDir, { recursive: true });
      await cleanStale(outDir);
      const latest = (await listCheckpoints(outDir)).at(-1);
      if (latest && !o.resume) {
        throw new TrainingError(
          'OUT_DIR_IN_USE',
          `${outDir} already holds ${latest.dir}: resume it, or train into another directory`,
        );
      }
      if (latest) {
        const ck = await readCheckpoint(latest.dir, names);
        const base = baseModelIdentityOf(model);
        const otherBase = base && baseModelDifference(ck.state.baseModel, base);
        if (otherBase)
          throw new TrainingError(
            'RESUME_MISMATCH',
            `${latest.dir} was trained on another base model: ${otherBase}; resume with the model it started from`,
          );
        if (ck.state.step > totalSteps)
          throw new TrainingError(
            'BAD_CHECKPOINT',
            `${latest.dir}: step ${ck.state.step} is past this run's ${totalSteps} steps`,
          );
        const diff = Object.keys(settings).filter(
          (k) => JSON.stringify(settings[k]) !== JSON.stringify(ck.state.settings[k]),
        );
        if (diff.length) {
          throw new TrainingError(
            'RESUME_MISMATCH',
            `${latest.dir} was trained with other settings: ${diff
              .map((k) => `${k} ${JSON.stringify(ck.state.settings[k])} (now ${JSON.stringify(settings[k])})`)
              .join(', ')}; resume with the same ones`,
          );
        }
        restoreDropout(model, ck.state.dropout, latest.dir);
        try {
          noGrad(() => {
            for (const [i, p] of params.entries())
              assignTensor(p.value, ck.params[i], `${latest.dir}: ${names[i]}`);
          });
        } catch (e) {
          // Another rank, targets or model: the saved values do not fit this run's parameters.
          throw new TrainingError(
            'RESUME_MISMATCH',
            `${(e as Error).message}; resume with the same model, method, rank and targets`,
          );
        }
        await optimizer.loadStateDict(ck.optimizer);
        ({ step: startStep, data: position, bestValLoss, bestStep } = ck.state);
        trainLoss = ck.state.trainLoss ?? Number.NaN;
        lastCheckpoint = latest;
        resumedFrom = latest.step;
      }
    }
    // Validate the saved position (same data, same loader options) before anything is written.
    let loader: BatchLoader<Example>;
    try {
      loader = new BatchLoader(o.train, loaderOpts, position);
    } catch (e) {
      if (e instanceof DataError && e.code === 'POSITION_MISMATCH')
        throw new TrainingError('RESUME_MISMATCH', `${lastCheckpoint?.dir}: ${e.message}`);
      throw e;
    }
    if (metricsPath) await this.startMetrics(metricsPath, startStep);
    const log = async (record: object) => {
      if (metricsPath) await appendFile(metricsPath, `${JSON.stringify(record)}\n`);
    };

    const history: StepMetrics[] = [];
    const evals: EvalMetrics[] = [];
    const runEval = async (step: number) => {
      const valLoss = await this.evaluate(o.validation as Example[]);
      const best = Number.isFinite(valLoss) && (bestValLoss === null || valLoss < bestValLoss);
      if (best) {
        bestValLoss = valLoss;
        bestStep = step;
        if (keepBest && outDir) await writeDirAtomically(join(outDir, BEST_DIR), save);
      }
      const e: EvalMetrics = { step, valLoss, best };
      evals.push(e);
      await log({ type: 'eval', ...e });
      o.onEval?.(e);
    };
    const checkpoint = async (step: number) => {
      if (!outDir) return;
      const state: CheckpointState = {
        format: 1,
        step,
        settings,
        data: loader.position(),
        dropout: dropoutOffsets(model),
        // Filled in from the optimizer by writeCheckpoint.
        optimizer: { kind: '', steps: 0, lr: 0, hyper: {}, state: {} },
        trainLoss: Number.isFinite(trainLoss) ? trainLoss : null,
        bestValLoss,
        bestStep,
        baseModel: baseModelIdentityOf(model),
      };
      o.onCheckpoint?.({ step, dir: checkpointDir(outDir, step), written: false });
      const dir = await writeCheckpoint(outDir, { state, names, params, optimizer, save });
      lastCheckpoint = { step, dir };
      o.onCheckpoint?.({ step, dir, written: true });
    };

    const wasTraining = model.training;
    model.train();
    device.memory.resetPeak();
    // Peaks since train() began for the report. The device's own peak is reset every step, so that a
    // step's record shows the gradients and activations of that step (freed again by its end).
    const runPeak = device.memoryReport().peak;
    const foldPeak = () => {
      const p = device.memoryReport().peak;
      for (const k of Object.keys(runPeak) as Array<keyof typeof runPeak>)
        runPeak[k] = Math.max(runPeak[k], p[k]);
    };
    let step = startStep;
    let aborted = false;
    let report: RunReport;
    try {
      while (step < totalSteps) {
        if (o.signal?.aborted) {
          aborted = true;
          if (lastCheckpoint?.step !== step) await checkpoint(step);
          break;
        }
        foldPeak();
        device.memory.resetPeak();
        const t0 = performance.now();
        const micro = Array.from({ length: this.gradAccum }, () => loader.next());
        const terms = micro.map((b) => lossTerms(b, model.task));
        const allTerms = terms.reduce((a, b) => a + b, 0);
        optimizer.lr = lrAt(step, schedule);
        let lossSum: Tensor | null = null;
        for (const [i, batch] of micro.entries()) {
          if (terms[i] === 0) continue;
          const part = tidy(() => {
            const { loss } = forwardLoss(model, batch);
            // Each micro-batch's mean weighted by its share of the step's loss terms: the mean of one large batch.
            const weighted = terms[i] === allTerms ? loss : scale(loss, terms[i] / allTerms);
            backward(weighted);
            return weighted;
          });
          const prev: Tensor | null = lossSum;
          lossSum = prev ? noGrad(() => add(prev, part)) : part;
          if (prev) {
            prev.dispose();
            part.dispose();
          }
        }
        const norm = clipGradNorm(params, o.maxGradNorm ?? NO_CLIP);
        const loss = lossSum ? await lossSum.item() : Number.NaN;
        const gradNorm = await norm.item();
        lossSum?.dispose();
        norm.dispose();
        const last = micro[micro.length - 1];
        const epoch = last.epoch + (last.index + 1) / batchesPerEpoch;
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          optimizer.zeroGrad();
          await log({ type: 'step', step: step + 1, epoch, loss, lr: optimizer.lr, gradNorm });
          const what = !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`;
          throw new TrainingError(
            'NON_FINITE',
            `${what} at step ${step + 1} (epoch ${epoch.toFixed(2)}); stopped before updating the weights. ` +
              (lastCheckpoint
                ? `The last good checkpoint is ${lastCheckpoint.dir} (its adapter is usable as it is); ` +
                  'a resume repeats the same steps, so train again into a new output directory with a lower ' +
                  'learning rate or gradient clipping.'
                : 'No checkpoint was written before it: train again with a lower learning rate or gradient clipping.'),
            step + 1,
          );
        }
        optimizer.step();
        optimizer.zeroGrad();
        step++;
        trainLoss = loss;
        const ms = performance.now() - t0;
        const tokens = micro.reduce((s, b) => s + b.tokens, 0);
        const m: StepMetrics = {
          step,
          epoch,
          loss,
          lr: optimizer.lr,
          gradNorm,
          tokensPerSec: (tokens * 1000) / ms,
          msPerStep: ms,
          memory: device.memoryReport().peak,
        };
        history.push(m);
        await log({ type: 'step', ...m });
        o.onStep?.(m);
        const evalNow =
          o.validation?.length && ((o.evalEvery && step % o.evalEvery === 0) || step === totalSteps);
        if (evalNow) await runEval(step);
        if (o.saveEvery && step % o.saveEvery === 0) await checkpoint(step);
      }
      if (totalSteps === 0 && o.validation?.length) await runEval(0);
      if (!aborted && outDir) await save(outDir);
      const timed = history.length > 1 ? history.slice(1) : history;
      // Measured while the optimizer state is still live.
      foldPeak();
      report = runReport(
        model,
        runPeak,
        mean(timed.map((h) => h.msPerStep)),
        mean(timed.map((h) => h.tokensPerSec)),
      );
    } finally {
      model.train(wasTraining);
      // The state belongs to this run; a later train() call (the next continual stage) starts afresh.
      optimizer.dispose();
    }
    return {
      steps: step,
      trainLoss,
      bestValLoss,
      bestStep,
      history,
      evals,
      report,
      resumedFrom,
      aborted,
      outputs: {
        adapter: !aborted && outDir ? outDir : null,
        best: keepBest && bestStep !== null && outDir ? join(outDir, BEST_DIR) : null,
        checkpoint: lastCheckpoint?.dir ?? null,
        metrics: metricsPath,
      },
    };
  }

  /** A fresh metrics file, or on resume the old one cut back to the checkpoint's step (a killed run may have logged further). */
  private async startMetrics(path: string, fromStep: number): Promise<void> {
    let kept = '';
    if (fromStep > 0) {
      const old = await readFile(path, 'utf8').catch(() => '');
      kept = old
        .split('\n')
        .filter((line) => {
          if (!line) return false;
          try {
            return (JSON.parse(line) as { step: number }).step <= fromStep;
          } catch {
            return false;
          }
        })
        .map((line) => `${line}\n`)
        .join('');
    }
    await writeFile(path, kept);
  }
}

function runReport(
  model: TrainableModel,
  peak: MemoryReport['peak'],
  msPerStep: number,
  tokensPerSec: number,
): RunReport {
  const mem = getDevice().memoryReport();
  const total = model.namedParameters({ removeDuplicate: false }).reduce((s, [, p]) => s + p.numel, 0);
  return {
    params: {
      total,
      trainable: model.numParameters({ trainableOnly: true }),
      unique: model.numParameters(),
    },
    bytes: {
      weights: mem.live.weights,
      trainable: mem.live.trainable,
      gradients: peak.gradients,
      optimizer: mem.live.optimizer,
      peakActivations: peak.activations,
      peakTotal: peak.total,
    },
    msPerStep,
    tokensPerSec,
  };
}
