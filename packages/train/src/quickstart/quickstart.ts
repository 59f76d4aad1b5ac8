/**
 * `sharelora quickstart`: the paper's claim in miniature, offline, in minutes on a CPU. A tiny LLaMA is
 * pretrained from scratch (every weight trained) on a generated task, then fine-tuned on a related
 * one with LoRA, ShareA, ShareB and ShareAB at the same rank, seed and step budget; each method's
 * trainable parameters, optimizer state, peak memory, step time, held-out exact match and validation
 * loss are measured (nothing is estimated), and written with the loss curves to an HTML report.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { injectAdapter, type Method, presetConfig } from '@sharelora/adapters';
import { formatBytes, Rng } from '@sharelora/core';
import {
  type AnyModel,
  type CausalLM,
  generate,
  initPreset,
  LLAMA_LORA_TARGETS,
  loadModel,
  loadTokenizer,
  saveModel,
  type Tokenizer,
} from '@sharelora/models';
import { splitValidation } from '../data/split.js';
import { type LmExample, tokenizeDataset } from '../data/tokenize.js';
import { padIdOf } from '../data/tokenizer.js';
import { withOutputDirLock } from '../output/lock.js';
import { TrainingError } from '../trainer/errors.js';
import { medianStepMs } from '../trainer/step-time.js';
import { textTokenizerOf } from '../trainer/tokenizer.js';
import { Trainer } from '../trainer/trainer.js';
import type { TrainResult } from '../trainer/types.js';
import { METHOD_LABELS, renderReport } from './report.js';
import {
  COPY_TASK,
  DIGITS,
  type DigitTask,
  digitExample,
  digitRecords,
  heldOutDigits,
  randomDigits,
  SHIFT_TASK,
} from './tasks.js';

/** The methods the quickstart fine-tunes with, in table order. */
export const QUICKSTART_METHODS: readonly Method[] = ['lora', 'share-a', 'share-b', 'share-ab'];

/** Budgets at stepsScale 1, chosen so the whole run takes a few minutes on two CPU cores (lavapipe). */
const SETUP = {
  /** The tiny LLaMA preset (d_model 64, 4 query / 2 kv heads) with 4 layers, so sharing across layers shows. */
  layers: 4,
  batchSize: 64,
  pretrain: { steps: 80, lr: 3e-3 },
  finetune: { steps: 60, lr: 1e-2 },
  adapter: { r: 8, alpha: 16, targets: [...LLAMA_LORA_TARGETS] },
  warmupRatio: 0.05,
  maxGradNorm: 1,
  validation: 128,
  heldOut: 200,
  /** Validation points per run, for the curves. */
  evalPoints: 6,
} as const;

/** Where runQuickstart writes, and how it seeds and scales the run. */
export interface QuickstartOptions {
  /** Created if missing; the base model, adapters, report.html and results.json go here. */
  outDir: string;
  /** Seeds the base weights, the data, the adapters and the data order (default 0). */
  seed?: number;
  /** Multiplies every step budget (default 1); below 1 the validation and held-out sets shrink too. */
  stepsScale?: number;
  /** Progress: each phase's start, every step's loss, and the phase's summary at its end. */
  onEvent?: (e: QuickstartEvent) => void;
}

/** What the quickstart is training: the base model, or one method's adapter. */
export type QuickstartPhase = 'pretrain' | Method;

/** Progress reported to QuickstartOptions.onEvent. */
export type QuickstartEvent =
  | { type: 'start'; phase: QuickstartPhase; title: string; steps: number }
  | { type: 'step'; phase: QuickstartPhase; step: number; steps: number; loss: number }
  | { type: 'end'; phase: QuickstartPhase; summary: string; seconds: number };

/** One point of a loss curve. */
export interface CurvePoint {
  step: number;
  loss: number;
}

/** One training run of the quickstart (pretraining, or one method's fine-tuning), as measured. */
export interface QuickstartRun {
  steps: number;
  lr: number;
  /**
   * Median wall time of a step, the first (which compiles shaders) left out: the median, because other
   * load on a shared machine makes single steps take several times longer.
   */
  msPerStep: number;
  trainLoss: number;
  /** Validation loss after the last step. */
  valLoss: number;
  curve: CurvePoint[];
  valCurve: CurvePoint[];
  seconds: number;
}

/** One method's fine-tuning run and what it costs and reaches: a row of the quickstart's table. */
export interface QuickstartRow extends QuickstartRun {
  method: Method;
  /** Distinct trainable parameters (a shared matrix once). */
  trainable: number;
  /** 1 − trainable / LoRA's trainable. */
  reduction: number;
  /** AdamW state this run allocated (exp_avg and exp_avg_sq, f32). */
  optimizerBytes: number;
  /** Highest total of live GPU tensor bytes during the run (weights, adapter, gradients, optimizer, activations). */
  peakBytes: number;
  /** Exact match of greedy answers on the held-out prompts, in [0, 1]. */
  accuracy: number;
  adapterDir: string;
}

/** Everything runQuickstart measured, as written to results.json. */
export interface QuickstartResult {
  seed: number;
  stepsScale: number;
  model: {
    arch: 'llama';
    layers: number;
    hiddenSize: number;
    heads: number;
    kvHeads: number;
    vocabSize: number;
    parameters: number;
    dir: string;
  };
  adapter: { r: number; alpha: number; targets: string[] };
  tasks: {
    pretrain: { name: string; description: string };
    finetune: { name: string; description: string };
    metric: string;
    trainExamples: { pretrain: number; finetune: number };
    validation: number;
    heldOut: number;
  };
  batchSize: number;
  pretrain: QuickstartRun & {
    /** Exact match on held-out prompts of the pretraining task, and of the fine-tuning task before any fine-tuning. */
    accuracy: number;
    newTaskAccuracy: number;
  };
  rows: QuickstartRow[];
  /** What the numbers say, including where they fall short. */
  notes: string[];
  files: { report: string; results: string; baseModel: string };
  seconds: number;
}

const seconds = (since: number) => (performance.now() - since) / 1000;

/** `n` scaled by the step scale, never below `min`; sets shrink with the scale but never grow. */
function scaled(n: number, scale: number, min: number, grow = true): number {
  return Math.max(min, Math.round(n * (grow ? scale : Math.min(1, scale))));
}

/** A digit task's tokenized training and validation examples. */
export interface TaskData {
  train: LmExample[];
  validation: LmExample[];
  /** Every input drawn for train and validation, to keep the held-out prompts apart from them. */
  inputs: number[][];
}

/**
 * `trainCount + valCount` random prompts of `task`, seeded by `seed` and the task's name, split into
 * training and validation examples and tokenized as prompt-completion pairs (loss on the answer).
 */
export function taskData(
  task: DigitTask,
  tok: Tokenizer,
  seed: number,
  trainCount: number,
  valCount: number,
): TaskData {
  const inputs = randomDigits(new Rng(seed).fork(`quickstart/${task.name}`), trainCount + valCount);
  const split = splitValidation(digitRecords(task, inputs), { validation: valCount, seed });
  const text = textTokenizerOf(tok);
  const encode = (records: typeof split.train) =>
    tokenizeDataset(records, { type: 'prompt-completion' }, text).examples;
  return { train: encode(split.train), validation: encode(split.validation), inputs };
}

/** Exact match of greedy answers to `inputs`: the answer digits, then EOS, and nothing else. */
export async function exactMatch(
  model: CausalLM,
  tok: Tokenizer,
  task: DigitTask,
  inputs: readonly (readonly number[])[],
): Promise<number> {
  const wasTraining = model.training;
  model.eval();
  let hits = 0;
  try {
    for (let i = 0; i < inputs.length; i += 100) {
      const examples = inputs.slice(i, i + 100).map((d) => digitExample(task, d));
      const gens = await generate(
        model,
        tok,
        examples.map((e) => e.prompt),
        { maxNewTokens: DIGITS + 1 },
      );
      gens.forEach((g, k) => {
        if (g.finishReason === 'eos' && g.text === examples[k].answer) hits++;
      });
    }
  } finally {
    model.train(wasTraining);
  }
  return hits / inputs.length;
}

function asCausalLm(model: AnyModel): CausalLM {
  if (model.task !== 'causal-lm')
    throw new TrainingError('BAD_OPTION', 'the quickstart model must be a causal LM');
  return model;
}

interface RunSpec {
  phase: QuickstartPhase;
  title: string;
  model: CausalLM;
  data: TaskData;
  steps: number;
  lr: number;
  seed: number;
  padId: number;
  outDir: string;
  save?: (dir: string) => Promise<void>;
  onEvent?: (e: QuickstartEvent) => void;
}

async function runTraining(s: RunSpec): Promise<{ run: QuickstartRun; result: TrainResult }> {
  const started = performance.now();
  s.onEvent?.({ type: 'start', phase: s.phase, title: s.title, steps: s.steps });
  const trainer = new Trainer({
    model: s.model,
    train: s.data.train,
    validation: s.data.validation,
    padId: s.padId,
    batchSize: SETUP.batchSize,
    steps: s.steps,
    lr: s.lr,
    schedule: 'cosine',
    warmupRatio: SETUP.warmupRatio,
    maxGradNorm: SETUP.maxGradNorm,
    seed: s.seed,
    evalEvery: Math.max(1, Math.round(s.steps / SETUP.evalPoints)),
    keepBest: false,
    outDir: s.outDir,
    save: s.save,
    onStep: (m) => s.onEvent?.({ type: 'step', phase: s.phase, step: m.step, steps: s.steps, loss: m.loss }),
  });
  const result = await trainer.train();
  const valCurve = result.evals.map((e) => ({ step: e.step, loss: e.valLoss }));
  const run: QuickstartRun = {
    steps: result.steps,
    lr: s.lr,
    msPerStep: medianStepMs(result.history),
    trainLoss: result.trainLoss,
    valLoss: valCurve[valCurve.length - 1].loss,
    curve: result.history.map((h) => ({ step: h.step, loss: h.loss })),
    valCurve,
    seconds: seconds(started),
  };
  return { run, result };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Sentences about the outcome, written from the measured numbers. */
function notesOf(r: Pick<QuickstartResult, 'rows' | 'pretrain' | 'tasks'>): string[] {
  const notes: string[] = [];
  const by = new Map(r.rows.map((row) => [row.method, row]));
  const lora = by.get('lora');
  const shareA = by.get('share-a');
  if (r.pretrain.accuracy < 0.9) {
    notes.push(
      `Pretraining reached only ${pct(r.pretrain.accuracy)} exact match on "${r.tasks.pretrain.name}" at this budget; ` +
        'the fine-tuning comparison starts from a weak base (run with a larger --steps-scale).',
    );
  }
  for (const row of [lora, shareA]) {
    if (row && row.accuracy < 0.9) {
      notes.push(
        `${METHOD_LABELS[row.method]} reached only ${pct(row.accuracy)} exact match on "${r.tasks.finetune.name}": it had ` +
          'not finished learning the new task in this budget, so accuracy gaps show learning speed at this learning ' +
          'rate as much as capacity (--steps-scale 2 gives every method twice the steps).',
      );
    }
  }
  if (lora && shareA) {
    const gap = shareA.accuracy - lora.accuracy;
    const versus =
      gap === 0
        ? `the same as LoRA's`
        : `vs LoRA's ${pct(lora.accuracy)} (${gap > 0 ? '+' : '−'}${(100 * Math.abs(gap)).toFixed(1)} points)`;
    notes.push(
      `ShareA trains ${pct(shareA.reduction)} fewer parameters than LoRA and keeps ${pct(
        1 - shareA.optimizerBytes / lora.optimizerBytes,
      )} less optimizer state; its held-out exact match is ${pct(shareA.accuracy)}, ${versus}, and its ` +
        `validation loss ${shareA.valLoss.toFixed(4)} vs LoRA's ${lora.valLoss.toFixed(4)} nats/token.`,
    );
  }
  const peaks = r.rows.map((row) => row.peakBytes);
  const optimizer = r.rows.map((row) => row.optimizerBytes);
  notes.push(
    `Peak memory differs by ${formatBytes(Math.max(...peaks) - Math.min(...peaks))} between methods, out of ` +
      `${formatBytes(Math.max(...peaks))}: at this size the frozen weights and the activations, which every method ` +
      `shares, dwarf the optimizer state (${formatBytes(Math.min(...optimizer))}–` +
      `${formatBytes(Math.max(...optimizer))}). The relative saving carries over to large models, where it is hundreds of MB.`,
  );
  notes.push(
    'ms/step is the median wall time of a training step on this machine, including any other load on it; on a ' +
      'software adapter it is mostly per-kernel overhead, not arithmetic.',
  );
  return notes;
}

/** Writes through a temporary name, so a reader never sees half a file. */
async function writeAtomically(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

/**
 * Runs the quickstart on the current WebGPU device (init() it first), holding a lock on its output
 * folder so that a second quickstart into it is refused rather than mixed in.
 */
export function runQuickstart(opts: QuickstartOptions): Promise<QuickstartResult> {
  return withOutputDirLock(opts.outDir, () => quickstartIn(opts));
}

async function quickstartIn(opts: QuickstartOptions): Promise<QuickstartResult> {
  const started = performance.now();
  const seed = opts.seed ?? 0;
  const scale = opts.stepsScale ?? 1;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new TrainingError('BAD_OPTION', `seed must be a non-negative integer, got ${seed}`);
  if (!(scale > 0 && Number.isFinite(scale)))
    throw new TrainingError('BAD_OPTION', `stepsScale must be a positive number, got ${scale}`);
  const outDir = resolve(opts.outDir);
  const baseDir = join(outDir, 'base');
  const pretrainSteps = scaled(SETUP.pretrain.steps, scale, 2);
  const finetuneSteps = scaled(SETUP.finetune.steps, scale, 2);
  const valCount = scaled(SETUP.validation, scale, 16, false);
  const heldOutCount = scaled(SETUP.heldOut, scale, 32, false);

  await mkdir(outDir, { recursive: true });
  const preset = await initPreset({
    arch: 'llama',
    preset: 'tiny',
    outDir: baseDir,
    seed,
    overrides: { num_hidden_layers: SETUP.layers },
  });
  const config = preset.config;
  if (config.arch !== 'llama') throw new TrainingError('BAD_OPTION', 'the quickstart preset must be a LLaMA');
  const tok = await loadTokenizer(baseDir);
  const padId = padIdOf(textTokenizerOf(tok));
  const pretrainData = taskData(COPY_TASK, tok, seed, pretrainSteps * SETUP.batchSize, valCount);
  const finetuneData = taskData(SHIFT_TASK, tok, seed, finetuneSteps * SETUP.batchSize, valCount);
  const heldOut = heldOutDigits(seed, heldOutCount, [...pretrainData.inputs, ...finetuneData.inputs]);

  // (a) Pretraining from scratch: every weight trains, and the result becomes the base model on disk.
  const base = asCausalLm((await loadModel(baseDir, { trainable: true })).model);
  let pretrain: QuickstartResult['pretrain'];
  try {
    const { run } = await runTraining({
      phase: 'pretrain',
      title: `pretraining a ${SETUP.layers}-layer tiny LLaMA from scratch on "${COPY_TASK.name}" (all weights)`,
      model: base,
      data: pretrainData,
      steps: pretrainSteps,
      lr: SETUP.pretrain.lr,
      seed,
      padId,
      outDir: baseDir,
      save: async (dir) => {
        await saveModel(base, dir);
      },
      onEvent: opts.onEvent,
    });
    pretrain = {
      ...run,
      accuracy: await exactMatch(base, tok, COPY_TASK, heldOut),
      newTaskAccuracy: await exactMatch(base, tok, SHIFT_TASK, heldOut),
    };
    opts.onEvent?.({
      type: 'end',
      phase: 'pretrain',
      summary: `val loss ${run.valLoss.toFixed(4)} nats/token, exact match ${pct(pretrain.accuracy)} on ${COPY_TASK.name}, ${pct(
        pretrain.newTaskAccuracy,
      )} on ${SHIFT_TASK.name} before fine-tuning`,
      seconds: run.seconds,
    });
  } finally {
    base.dispose();
  }

  // (b) The same fine-tuning for every method: same base, rank, seed, data order and step budget.
  const rows: QuickstartRow[] = [];
  for (const method of QUICKSTART_METHODS) {
    const model = asCausalLm((await loadModel(baseDir)).model);
    try {
      const cfg = presetConfig(method, {
        r: SETUP.adapter.r,
        alpha: SETUP.adapter.alpha,
        targetModules: [...SETUP.adapter.targets],
        taskType: 'CAUSAL_LM',
      });
      injectAdapter(model, cfg, { rng: seed });
      const adapterDir = join(outDir, method);
      const { run, result } = await runTraining({
        phase: method,
        title: `fine-tuning on "${SHIFT_TASK.name}" with ${METHOD_LABELS[method]}`,
        model,
        data: finetuneData,
        steps: finetuneSteps,
        lr: SETUP.finetune.lr,
        seed,
        padId,
        outDir: adapterDir,
        onEvent: opts.onEvent,
      });
      const trainable = result.report.params.trainable;
      const row: QuickstartRow = {
        method,
        ...run,
        trainable,
        reduction: 0,
        optimizerBytes: result.report.bytes.optimizer,
        peakBytes: result.report.bytes.peakTotal,
        accuracy: await exactMatch(model, tok, SHIFT_TASK, heldOut),
        adapterDir,
      };
      rows.push(row);
      opts.onEvent?.({
        type: 'end',
        phase: method,
        summary: `${trainable.toLocaleString('en-US')} trainable, val loss ${run.valLoss.toFixed(4)} nats/token, exact match ${pct(row.accuracy)}`,
        seconds: run.seconds,
      });
    } finally {
      model.dispose();
    }
  }
  const loraTrainable = rows.find((r) => r.method === 'lora')?.trainable ?? rows[0].trainable;
  for (const r of rows) r.reduction = 1 - r.trainable / loraTrainable;

  const files = {
    report: join(outDir, 'report.html'),
    results: join(outDir, 'results.json'),
    baseModel: baseDir,
  };
  const tasks: QuickstartResult['tasks'] = {
    pretrain: { name: COPY_TASK.name, description: COPY_TASK.description },
    finetune: { name: SHIFT_TASK.name, description: SHIFT_TASK.description },
    metric: `exact match of greedy answers (generated with the KV cache, answer digits then EOS) on ${heldOutCount} held-out prompts that no training or validation example uses`,
    trainExamples: { pretrain: pretrainData.train.length, finetune: finetuneData.train.length },
    validation: valCount,
    heldOut: heldOutCount,
  };
  const result: QuickstartResult = {
    seed,
    stepsScale: scale,
    model: {
      arch: 'llama',
      layers: config.numLayers,
      hiddenSize: config.hiddenSize,
      heads: config.numHeads,
      kvHeads: config.numKvHeads,
      vocabSize: config.vocabSize,
      parameters: preset.parameters,
      dir: baseDir,
    },
    adapter: { r: SETUP.adapter.r, alpha: SETUP.adapter.alpha, targets: [...SETUP.adapter.targets] },
    tasks,
    batchSize: SETUP.batchSize,
    pretrain,
    rows,
    notes: notesOf({ rows, pretrain, tasks }),
    files,
    seconds: 0,
  };
  result.seconds = seconds(started);
  await writeAtomically(files.results, `${JSON.stringify(result, null, 2)}\n`);
  await writeAtomically(files.report, await renderReport(result));
  return result;
}
