import { readFile } from 'node:fs/promises';
import { METHODS, type Method, RECOMMENDED } from '@sharelora/adapters';
import { formatBytes } from '@sharelora/core';
import * as core from '@sharelora/core/node';
import { DEFAULT_MAX_INPUT_BYTES, shutdown } from '@sharelora/core/node';
import { accuracy, pearson, spearman } from '@sharelora/eval';
import {
  checkOutputPath,
  DataError,
  DEFAULT_MAX_RECORD_BYTES,
  FineTuneError,
  type FineTuneResult,
  fineTune,
  listCheckpoints,
  lockOutputDir,
  type OutputLock,
  type StepMetrics,
  TrainingError,
  trainingOptionsOf,
} from '@sharelora/train';
import {
  intFlag,
  numberFlag,
  oneOf,
  parseFlags,
  quantizeFlag,
  quantizeHelp,
  requireFlags,
  seedFlag,
} from '../args.js';
import { asUsage, UsageError } from '../cli-error.js';
import { type CliFormat, dataErrorAsUsage, dataSpec, FORMATS } from '../data-formats.js';
import { clearProgressLine, loadProgress, progress, progressDone } from '../progress.js';
import { QUIT_WITHOUT_CHECKPOINT, StopSignals } from '../stop-signals.js';
import { RECOMMENDED_TEXT, TARGETS_HELP, targetsFlag } from '../targets.js';
import { num, plural } from '../units.js';
import { profileJson, saveTrace } from './profile-output.js';

const TRAIN_METHODS = [...METHODS, 'full'] as const;
type TrainMethod = Method | 'full';
const SCHEDULES = ['constant', 'linear', 'cosine'] as const;

export const trainHelp = `Usage: sharelora train --model DIR --data FILE --format FORMAT --out DIR [options]

Fine-tunes a model with LoRA, a ShareLoRA variant, or in full, with AdamW; by default
${RECOMMENDED_TEXT} on the q and v projections.
A validation split is carved from --data with the seed (never from a test set); its loss is reported
every --eval-every steps and at the end, and the adapter with the lowest one is kept in OUT/best.
Checkpoints go to OUT/checkpoint-N every --save-every steps (atomically; only the last is kept) and
--resume continues from the last one to exactly the result an uninterrupted run gives. Ctrl-C,
SIGTERM or SIGHUP stops at the next step and writes a checkpoint first (see exit codes). Metrics go
to OUT/metrics.jsonl; the final adapter to OUT (adapter_config.json, adapter_model.safetensors; with
--method full a model directory). OUT is locked while the run lasts (OUT/.sharelora.lock): a second
run into it is refused.

Data:
  --data FILE            JSONL, JSON, CSV, TSV or Parquet; a bad record stops the run before anything
                         is written, naming the file and line
  --format FORMAT        ${FORMATS.join(', ')}
                         (classification formats train a RoBERTa sequence classifier; the others a
                         GPT-2 or LLaMA causal LM with the loss on the response only)
  --labels A,B,...       class names in id order (classification, sentence-pair; default: the labels
                         of the training split, sorted)
  --train-on-source      put the loss on the prompt tokens too
  --max-length N         longest example in tokens (default: the model's positions); truncations
                         and drops are counted in the data report
  --max-record-bytes N   most bytes of text in one record, checked before tokenizing (default 1048576)
  --max-data-bytes N     most bytes in a data file (default 268435456); a device or FIFO is refused
  --validation V         validation split: a fraction in (0, 1) or a count; 0 for none (default 0.1)
  --eval-data FILE       a labelled held-out file (e.g. a GLUE dev.tsv) scored once after training:
                         loss, and accuracy (classes) or Pearson/Spearman (regression)

Adapter:
  --method METHOD        ${TRAIN_METHODS.join(', ')} (default ${RECOMMENDED.method})
  --rank R, --alpha A    LoRA rank and alpha (default ${RECOMMENDED.r} and ${RECOMMENDED.alpha}; not with --method full)
  --targets LIST         ${TARGETS_HELP}
  --dropout P            LoRA dropout in [0, 1) (default 0)
  --adapter DIR          go on training this adapter (continual fine-tuning: a task after another):
                         its own method, rank, alpha and targets apply; optimizer and schedule restart

Optimisation:
  --lr LR                peak learning rate (default 2e-4; 5e-5 with --method full)
  --steps N | --epochs E optimizer steps, or passes over the training split (default 1 epoch);
                         --steps 0 saves the adapter untrained and reports its validation loss
  --batch-size N         examples per micro-batch (default 8)
  --grad-accum N         micro-batches per step (default 1)
  --schedule S           ${SCHEDULES.join(', ')} (default linear)
  --warmup-steps N       linear warmup steps (default 0) | --warmup-ratio F fraction of the steps
  --weight-decay W       AdamW decoupled weight decay (default 0)
  --max-grad-norm N      clip the global gradient norm to N; 0 turns clipping off (default 1)
  --eval-every N         validation loss every N steps (default: at the end only)
  --save-every N         checkpoint every N steps (default 100)
  --seed N               seeds the adapter, dropout, split and data order (default 0)

Run:
  --out DIR              output directory; refused if it is, or contains, an input (--model, --data,
                         --eval-data, --config), if it is a system directory or a file, and if it
                         holds a model or adapter (config.json, adapter_config.json) unless --overwrite
  --overwrite            write into an OUT that holds a model or adapter (never over an input)
  --resume               continue from the last checkpoint in OUT (starts fresh when there is none)
  --config FILE          JSON object of these options by long name, e.g. {"lr": 1e-4, "targets":
                         ["q_proj", "v_proj"], "resume": true}; flags given override it
  --json                 print one JSON document on stdout (reports, evaluations, outputs)
  --profile              print where the training time went, per kernel kind: dispatches and GPU time
                         (timestamp queries) per step, encoding time, copies, submits, waits and readbacks;
                         covers every step of this run with its validation passes and checkpoint
                         writes, and slows the run (a timed compute pass per dispatch, empty timed
                         passes around each copy: 20-50% longer steps on lavapipe)
  --profile-out FILE     also write the profile as a Chrome trace (opens in Perfetto)
${quantizeHelp(25)}
                         (QLoRA: adapters train in f32 over the frozen quantized base; not with
                         --method full)
  -h, --help             show this help

Exit codes:
  0    done
  1    runtime failure (e.g. a NaN loss: the message names the step and the last good checkpoint)
  2    bad usage, bad data, a model too large for this machine, a checkpoint that does not match, or an
       OUT refused or locked by another run: OUT left as it was; or a full disk while writing: free
       space and --resume
  130, 143, 129
       stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP with a checkpoint of the step reached in OUT
       (checkpoint-0 if it came before the first step): --resume continues; after the last step the
       final outputs are written instead and --eval-data is skipped
  ${QUIT_WITHOUT_CHECKPOINT}    quit by a second signal before a checkpoint of the current step was written: OUT holds
       only earlier checkpoints (the message names the last, if any); a second signal while a
       checkpoint is being written waits for it, then exits as above`;

const FLAGS = {
  model: { type: 'string' },
  data: { type: 'string' },
  format: { type: 'string' },
  labels: { type: 'string' },
  'train-on-source': { type: 'boolean' },
  'max-length': { type: 'string' },
  'max-record-bytes': { type: 'string' },
  'max-data-bytes': { type: 'string' },
  validation: { type: 'string' },
  'eval-data': { type: 'string' },
  method: { type: 'string' },
  adapter: { type: 'string' },
  rank: { type: 'string' },
  alpha: { type: 'string' },
  targets: { type: 'string' },
  dropout: { type: 'string' },
  lr: { type: 'string' },
  steps: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'grad-accum': { type: 'string' },
  schedule: { type: 'string' },
  'warmup-steps': { type: 'string' },
  'warmup-ratio': { type: 'string' },
  'weight-decay': { type: 'string' },
  'max-grad-norm': { type: 'string' },
  'eval-every': { type: 'string' },
  'save-every': { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  overwrite: { type: 'boolean' },
  resume: { type: 'boolean' },
  config: { type: 'string' },
  json: { type: 'boolean' },
  profile: { type: 'boolean' },
  'profile-out': { type: 'string' },
  quantize: { type: 'string' },
} as const;
type FlagName = keyof typeof FLAGS;
type Values = Partial<Record<FlagName, string | boolean>>;

/** A --config file's options as flag values; unknown keys and ill-typed values are usage errors naming the file. */
async function readConfigFile(file: string): Promise<Values> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(
      `--config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new UsageError(`--config ${file}: not a JSON object`);
  const allowed = Object.keys(FLAGS).filter((k) => k !== 'config');
  const unknown = Object.keys(json).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    throw new UsageError(
      `--config ${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} ` +
        `(keys are the long flag names: ${allowed.join(', ')})`,
    );
  }
  const out: Values = {};
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    const key = k as FlagName;
    const bad = (want: string) =>
      new UsageError(`--config ${file}: "${k}" must be ${want}, got ${JSON.stringify(v)}`);
    if (FLAGS[key].type === 'boolean') {
      if (typeof v !== 'boolean') throw bad('true or false');
      out[key] = v;
    } else if (Array.isArray(v) && (key === 'targets' || key === 'labels')) {
      if (!v.every((x) => typeof x === 'string')) throw bad('a list of strings');
      out[key] = v.join(',');
    } else if (typeof v === 'string' || typeof v === 'number') {
      out[key] = String(v);
    } else {
      throw bad('a string or a number');
    }
  }
  return out;
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

/** Every option checked and typed before any file is read, so a typo costs nothing. */
function settingsFrom(v: Values) {
  const str = (k: FlagName) => v[k] as string | undefined;
  requireFlags('train', v, ['model', 'data', 'format', 'out']);
  const method: TrainMethod = oneOf('method', str('method'), TRAIN_METHODS) ?? RECOMMENDED.method;
  const full = method === 'full';
  const nonNegInt = (k: FlagName) =>
    numberFlag(k, str(k), (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
  const positive = (k: FlagName) => numberFlag(k, str(k), (n) => n > 0, 'a number > 0');
  const optionalInt = (k: FlagName) => (str(k) === undefined ? undefined : intFlag(k, str(k), 1));
  const validation =
    numberFlag(
      'validation',
      str('validation'),
      (n) => n >= 0 && (n < 1 || Number.isInteger(n)),
      'a fraction in (0, 1), a count, or 0',
    ) ?? 0.1;
  const s = {
    model: str('model') as string,
    data: str('data') as string,
    format: oneOf('format', str('format') as string, FORMATS) as CliFormat,
    labels: list(str('labels')),
    trainOnSource: v['train-on-source'] === true,
    maxLength: numberFlag(
      'max-length',
      str('max-length'),
      (n) => Number.isInteger(n) && n >= 2,
      'an integer >= 2',
    ),
    maxRecordBytes: intFlag('max-record-bytes', str('max-record-bytes'), DEFAULT_MAX_RECORD_BYTES),
    maxDataBytes: intFlag('max-data-bytes', str('max-data-bytes'), DEFAULT_MAX_INPUT_BYTES),
    validation,
    evalData: str('eval-data'),
    method,
    adapter: str('adapter'),
    rank: full ? undefined : intFlag('rank', str('rank'), RECOMMENDED.r),
    alpha: full
      ? undefined
      : (numberFlag('alpha', str('alpha'), (n) => n > 0, 'a number > 0') ?? RECOMMENDED.alpha),
    targets: list(str('targets')),
    dropout: numberFlag('dropout', str('dropout'), (n) => n >= 0 && n < 1, 'in [0, 1)') ?? 0,
    lr: positive('lr') ?? (full ? 5e-5 : 2e-4),
    steps: str('steps') === undefined ? undefined : nonNegInt('steps'),
    epochs: positive('epochs'),
    batchSize: intFlag('batch-size', str('batch-size'), 8),
    gradAccum: intFlag('grad-accum', str('grad-accum'), 1),
    schedule: oneOf('schedule', str('schedule'), SCHEDULES) ?? 'linear',
    warmupSteps: nonNegInt('warmup-steps'),
    warmupRatio: numberFlag('warmup-ratio', str('warmup-ratio'), (n) => n >= 0 && n < 1, 'in [0, 1)'),
    weightDecay: numberFlag('weight-decay', str('weight-decay'), (n) => n >= 0, 'a number >= 0') ?? 0,
    maxGradNorm: numberFlag('max-grad-norm', str('max-grad-norm'), (n) => n >= 0, 'a number >= 0') ?? 1,
    evalEvery: optionalInt('eval-every'),
    saveEvery: intFlag('save-every', str('save-every'), 100),
    seed: seedFlag(str('seed')) ?? 0,
    out: str('out') as string,
    overwrite: v.overwrite === true,
    resume: v.resume === true,
    json: v.json === true,
    profile: v.profile === true,
    profileOut: str('profile-out'),
    quantize: quantizeFlag(str('quantize')),
  };
  // The header says which of these the run took from RECOMMENDED.
  const defaulted =
    full || v.adapter !== undefined
      ? []
      : (['method', 'rank', 'alpha', 'targets'] as const).filter((k) => v[k] === undefined);
  if (s.profileOut !== undefined && !s.profile) throw new UsageError('--profile-out needs --profile');
  if (s.steps !== undefined && s.epochs !== undefined)
    throw new UsageError('give --steps or --epochs, not both');
  const adapterOnly = (['rank', 'alpha', 'targets', 'dropout'] as const).filter((k) => v[k] !== undefined);
  if (full && s.quantize)
    throw new UsageError(
      `--quantize ${s.quantize} does not apply to --method full: quantized weights are a frozen base (train an adapter over them)`,
    );
  if (full && adapterOnly.length)
    throw new UsageError(`--${adapterOnly[0]} does not apply to --method full (it trains every weight)`);
  const ownSettings = (['method', 'rank', 'alpha', 'targets', 'dropout'] as const).filter(
    (k) => v[k] !== undefined,
  );
  if (s.adapter !== undefined && ownSettings.length)
    throw new UsageError(`--${ownSettings[0]} does not go with --adapter (the adapter's own settings apply)`);
  if (s.evalEvery !== undefined && s.validation === 0)
    throw new UsageError('--eval-every needs a validation split (--validation is 0)');
  return { ...s, defaulted };
}
type Settings = ReturnType<typeof settingsFrom>;

/**
 * Bad input exits 2: settings that do not fit the data or model (naming the flag), data errors,
 * models, tokenizers and adapters that cannot be read, trainer errors about options, the out
 * directory or a checkpoint. A NaN loss or a device failure is a runtime failure (exit 1).
 */
function inputError(e: unknown): never {
  if (e instanceof FineTuneError)
    throw new UsageError(
      e.setting
        ? `--${e.setting.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}${e.message.slice(e.setting.length)}`
        : e.message,
    );
  if (e instanceof DataError) dataErrorAsUsage(e);
  if (e instanceof TrainingError && e.code !== 'NON_FINITE') throw new UsageError(e.message);
  return asUsage(e);
}

/** The train phase's progress: loss and learning rate beside the step count, rate and ETA. */
function stepProgress(total: number, lossUnit: string): (m: StepMetrics) => void {
  return (m) =>
    progress('train', m.step, total, {
      unit: 'steps',
      detail: `loss ${m.loss.toFixed(4)} ${lossUnit}  lr ${m.lr.toExponential(2)}`,
    });
}

interface HeldOut {
  file: string;
  examples: number;
  loss: number;
  accuracy?: number;
  pearson?: number;
  spearman?: number;
}

/**
 * Refuses an OUT that must not be written (an input, a system directory, a file, a model or adapter
 * without --overwrite) before anything is read or loaded.
 */
async function checkOut(s: Settings, configFile: string | undefined): Promise<void> {
  const checkpoints = await listCheckpoints(s.out).catch(() => []);
  await checkOutputPath(s.out, {
    kind: 'directory',
    inputs: [
      { flag: '--model', path: s.model },
      { flag: '--data', path: s.data },
      { flag: '--eval-data', path: s.evalData },
      { flag: '--adapter', path: s.adapter },
      { flag: '--config', path: configFile },
    ],
    // A resumed run's OUT holds its own earlier outputs.
    overwriteModel: s.overwrite || (s.resume && checkpoints.length > 0),
  }).catch(asUsage);
}

export async function train(argv: string[]): Promise<number> {
  const { values } = parseFlags('train', argv, FLAGS);
  if (values.help) {
    console.log(trainHelp);
    return 0;
  }
  const fromFile = values.config ? await readConfigFile(values.config) : {};
  const s: Settings = settingsFrom({ ...fromFile, ...values });
  await checkOut(s, values.config);
  // From here on a signal stops the run with a checkpoint (written once training can start).
  const run: RunState = { lastCheckpoint: null };
  const stop = new StopSignals('sharelora train', () => run.lastCheckpoint);
  try {
    const lock = await lockOutputDir(s.out).catch(asUsage);
    try {
      // Under the lock, so that a directory another run is writing is reported as locked (naming
      // that run), not as holding a checkpoint.
      const latest = (await listCheckpoints(s.out)).at(-1);
      if (latest && !s.resume)
        throw new UsageError(
          `--out ${s.out} already holds ${latest.dir}: continue it with --resume, or train into another directory`,
        );
      run.lastCheckpoint = latest?.dir ?? null;
      return await trainLocked(s, lock, stop, run);
    } finally {
      lock.release();
    }
  } finally {
    stop.dispose();
  }
}

interface RunState {
  /** The newest complete checkpoint in OUT, for the message of a run quit without one. */
  lastCheckpoint: string | null;
}

async function trainLocked(s: Settings, lock: OutputLock, stop: StopSignals, run: RunState): Promise<number> {
  const say = (line: string) => {
    clearProgressLine();
    if (!s.json) console.log(line);
  };
  const { read, spec } = dataSpec(s.format);
  let bar: ((m: StepMetrics) => void) | null = null;
  let unit = '';
  let ft: FineTuneResult;
  try {
    ft = await fineTune(
      {
        model: s.model,
        data: s.data,
        format: spec,
        read,
        evalData: s.evalData,
        validation: s.validation,
        seed: s.seed,
        labels: s.labels,
        maxLength: s.maxLength,
        trainOnSource: s.trainOnSource,
        method: s.method,
        adapter: s.adapter,
        rank: s.rank,
        alpha: s.alpha,
        dropout: s.dropout,
        targets: s.targets,
        quantize: s.quantize,
        ...trainingOptionsOf(s),
        maxGradNorm: s.maxGradNorm > 0 ? s.maxGradNorm : undefined,
        out: s.out,
        resume: s.resume,
        limits: { maxRecordBytes: s.maxRecordBytes, maxBytes: s.maxDataBytes },
      },
      {
        onMessage: say,
        onLoadProgress: loadProgress(s.model),
        onAdapter: (a) =>
          say(
            `adapter: ${a.method}, r ${a.r}, alpha ${a.alpha} on ${a.targets.join(', ')}` +
              (s.defaulted.length
                ? ` (${s.defaulted.join(', ')} by default, as the ShareLoRA paper recommends)`
                : ''),
          ),
        resolveTargets: (modules, targets) => targetsFlag(modules, targets),
        onStart: ({ totalSteps, lossUnit }) => {
          unit = lossUnit;
          bar = stepProgress(totalSteps, lossUnit);
        },
        onStep: (m) => bar?.(m),
        onEvalProgress: (done, total) => progress('validate', done, total, { unit: 'examples' }),
        onEval: (e) =>
          say(`step ${e.step}: validation loss ${e.valLoss.toFixed(6)} ${unit}${e.best ? ' (best)' : ''}`),
        onCheckpoint: (c) => {
          stop.checkpointing(!c.written);
          if (c.written) run.lastCheckpoint = c.dir;
        },
        signal: stop.signal,
        outDirLock: lock,
        profile: s.profile,
      },
    ).catch(inputError);
  } finally {
    progressDone();
    shutdown();
  }
  const { result, reports, lossUnit, numLabels, profile } = ft;
  const adapter = ft.adapter && { ...ft.adapter, defaulted: s.defaulted };
  const stepsRun = result.steps - (result.resumedFrom ?? 0);
  if (profile) await saveTrace(s.profileOut, profile);
  let heldOut: HeldOut | null = null;
  if (ft.heldOut) {
    const { predictions, gold, ...rest } = ft.heldOut;
    heldOut = rest;
    if (predictions && gold) {
      if (numLabels === 1) {
        heldOut.pearson = pearson(predictions, gold);
        heldOut.spearman = spearman(predictions, gold);
      } else heldOut.accuracy = accuracy(predictions, gold);
    }
  }
  const heldOutSet = s.evalData !== undefined;
  const r = result.report;
  const frozen = ft.frozenBytesByPrecision;
  if (s.json) {
    console.log(
      JSON.stringify({
        model: s.model,
        data: s.data,
        format: s.format,
        method: s.method,
        adapter,
        dataReport: Object.fromEntries(reports),
        steps: result.steps,
        lossUnit,
        trainLoss: result.trainLoss,
        bestValLoss: result.bestValLoss,
        bestStep: result.bestStep,
        resumedFrom: result.resumedFrom,
        aborted: result.aborted,
        evals: result.evals,
        evalData: heldOut,
        report: {
          ...r,
          baseWeightsByFormat: ft.baseWeightsByFormat,
          ...(frozen ? { frozenBytesByPrecision: frozen } : {}),
        },
        outputs: result.outputs,
        ...(profile ? { profile: { steps: stepsRun, ...profileJson(profile) } } : {}),
      }),
    );
  } else {
    const pct = ((100 * r.params.trainable) / Math.max(1, r.params.unique)).toFixed(3);
    say(
      `parameters: ${num(r.params.trainable)} trainable of ${num(r.params.unique)} (${pct}%); ` +
        `${num(r.params.total)} counting every use of a tied or shared tensor`,
    );
    say(
      `memory: base weights ${formatBytes(r.bytes.weights)}, trainable ${formatBytes(r.bytes.trainable)}, gradients ${formatBytes(r.bytes.gradients)}, ` +
        `optimizer state ${formatBytes(r.bytes.optimizer)}, peak activations ${formatBytes(r.bytes.peakActivations)}, peak total ${formatBytes(r.bytes.peakTotal)}`,
    );
    const byFormat = Object.entries(ft.baseWeightsByFormat);
    if (byFormat.length > 1 || s.quantize)
      say(`base weights by format: ${byFormat.map(([f, b]) => `${f} ${formatBytes(b)}`).join(', ')}`);
    if (frozen)
      say(
        `frozen model at ${frozen.map((f) => f.precision).join(' / ')}: ` +
          `${frozen.map((f) => formatBytes(f.blockWeights + f.otherWeights)).join(' / ')} (--quantize nf4|int8 keeps the blocks' weights quantized)`,
      );
    if (result.steps === 0) {
      say(
        'no training steps (--steps 0): the adapter is saved as initialised' +
          (result.bestValLoss !== null
            ? `; validation loss ${result.bestValLoss.toFixed(6)} ${lossUnit}`
            : ''),
      );
    } else {
      say(`speed: ${r.msPerStep.toFixed(0)} ms/step, ${r.tokensPerSec.toFixed(0)} tokens/s`);
      say(
        `trained ${plural(result.steps, 'step')}: train loss ${result.trainLoss.toFixed(6)} ${lossUnit}` +
          (result.bestValLoss !== null
            ? `, best validation loss ${result.bestValLoss.toFixed(6)} ${lossUnit} at step ${result.bestStep}`
            : ''),
      );
    }
    if (heldOut) {
      const metric =
        heldOut.accuracy !== undefined
          ? `, accuracy ${heldOut.accuracy.toFixed(4)}`
          : heldOut.pearson !== undefined
            ? `, pearson ${heldOut.pearson.toFixed(4)}, spearman ${(heldOut.spearman as number).toFixed(4)}`
            : '';
      say(
        `eval-data ${heldOut.file} (${plural(heldOut.examples, 'example')}): loss ${heldOut.loss.toFixed(6)} ${lossUnit}${metric}`,
      );
    }
    const o = result.outputs;
    if (o.adapter) say(`${s.method === 'full' ? 'model' : 'adapter'} saved to ${o.adapter}`);
    if (o.best) say(`best (lowest validation loss) saved to ${o.best}`);
    if (o.checkpoint) say(`checkpoint: ${o.checkpoint}`);
    if (o.metrics) say(`metrics: ${o.metrics}`);
    if (profile) {
      say(`\nprofile, per step over ${plural(stepsRun, 'step')}:`);
      say(core.formatProfile(profile, Math.max(1, stepsRun)));
      if (s.profileOut) say(`trace written to ${s.profileOut}`);
    }
  }
  if (result.aborted) {
    console.error(
      `sharelora train: interrupted at step ${result.steps}; checkpoint ${result.outputs.checkpoint} (continue with --resume)`,
    );
  } else if (stop.exitCode !== null) {
    console.error(
      `sharelora train: stopped after the last step: outputs written${heldOutSet ? ', --eval-data not scored' : ''}`,
    );
  }
  return stop.exitCode ?? 0;
}
