/**
 * Continual fine-tuning: tasks trained one after another on the same trainable parameters (one
 * adapter, or the full model), every task seen so far evaluated after each stage, as in ShareLoRA's
 * continual setting. Each stage is an ordinary Trainer run (fresh optimizer and schedule, as when
 * fine-tuning a model that was fine-tuned before); only the weights carry over.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Example } from '../data/tokenize.js';
import { withOutputDirLock } from '../output/lock.js';
import { TrainingError } from '../trainer/errors.js';
import { Trainer } from '../trainer/index.js';
import type { StepMetrics, TrainableModel, TrainerOptions, TrainResult } from '../trainer/types.js';
import { type ForgettingTable, forgettingTable, type TaskScore } from './table.js';

/** Trainer options a task may set for its own stage. */
export type StageOptions = Partial<
  Pick<
    TrainerOptions,
    | 'batchSize'
    | 'gradAccum'
    | 'steps'
    | 'epochs'
    | 'lr'
    | 'weightDecay'
    | 'schedule'
    | 'warmupSteps'
    | 'warmupRatio'
    | 'maxGradNorm'
    | 'evalEvery'
  >
>;

/**
 * One task of a continual run ({@link trainContinual}): its training and validation examples, its
 * stage's trainer options and an optional accuracy measure.
 */
export interface ContinualTask<M extends TrainableModel = TrainableModel> {
  /** Names the table's column and the stage's folder. */
  name: string;
  train: Example[];
  /** Held-out examples of this task (from splitValidation): its loss is measured after every later stage. */
  validation: Example[];
  /** Overrides of the shared trainer options for this task's stage. */
  options?: StageOptions;
  /**
   * The task's accuracy in [0, 1] on held-out data (e.g. exact match of greedy answers), measured
   * after every stage from this task's on. Called with the model in eval mode.
   */
  accuracy?: (model: M) => Promise<number>;
}

/**
 * Options of {@link trainContinual}: the trainer options every stage shares (see
 * {@link TrainerOptions}), the model and the tasks in training order. A task's own `steps` or
 * `epochs` replaces the shared budget.
 */
export interface ContinualOptions<M extends TrainableModel = TrainableModel>
  extends Omit<TrainerOptions, 'model' | 'train' | 'validation' | 'outDir' | 'resume' | 'onStep' | 'onEval'> {
  model: M;
  tasks: ContinualTask<M>[];
  /** Stage i writes its Trainer output to outDir/stage-<i>-<name>, and the run writes outDir/continual.json. */
  outDir?: string;
  /** Each stage's steps, with the 1-based stage number. */
  onStep?: (stage: number, m: StepMetrics) => void;
  /** After each stage's evaluation; awaited before the next stage starts. */
  onStage?: (s: StageResult) => void | Promise<void>;
}

/**
 * One stage of {@link trainContinual}: its Trainer result and the scores of every task trained so
 * far.
 */
export interface StageResult {
  /** 1-based. */
  stage: number;
  /** Name of the task trained in this stage. */
  task: string;
  train: TrainResult;
  /** Scores of tasks 1..stage, in task order, measured right after this stage. */
  scores: TaskScore[];
}

/**
 * What {@link trainContinual} returns: every stage's result (fewer than the tasks when a stage was
 * aborted) and the forgetting table built from their scores.
 */
export interface ContinualResult {
  stages: StageResult[];
  table: ForgettingTable;
}

/** A folder name from a task name: letters, digits, '-', '_' and '.' kept. */
const slug = (name: string) => name.replace(/[^A-Za-z0-9._-]+/g, '_');

function checkTasks<M extends TrainableModel>(tasks: readonly ContinualTask<M>[]): void {
  if (tasks.length === 0) throw new TrainingError('BAD_OPTION', 'continual: no tasks');
  const seen = new Set<string>();
  for (const t of tasks) {
    if (seen.has(t.name)) throw new TrainingError('BAD_OPTION', `continual: two tasks are named "${t.name}"`);
    seen.add(t.name);
    if (t.validation.length === 0)
      throw new TrainingError(
        'BAD_OPTION',
        `continual: task "${t.name}" has no validation examples to measure forgetting on`,
      );
  }
}

async function score<M extends TrainableModel>(
  model: M,
  trainer: Trainer,
  task: ContinualTask<M>,
): Promise<TaskScore> {
  const valLoss = await trainer.evaluate(task.validation);
  if (!task.accuracy) return { valLoss, accuracy: null };
  const wasTraining = model.training;
  model.eval();
  try {
    const accuracy = await task.accuracy(model);
    if (!(accuracy >= 0 && accuracy <= 1))
      throw new TrainingError(
        'BAD_OPTION',
        `continual: task "${task.name}" accuracy ${accuracy} is outside [0, 1]`,
      );
    return { valLoss, accuracy };
  } finally {
    model.train(wasTraining);
  }
}

/** Written beside the stages: the table and each stage's summary (its step history is in metrics.jsonl). */
async function writeReport(outDir: string, result: ContinualResult): Promise<void> {
  const stages = result.stages.map(({ train, ...s }) => ({
    ...s,
    steps: train.steps,
    trainLoss: train.trainLoss,
    bestValLoss: train.bestValLoss,
    report: train.report,
  }));
  const file = join(outDir, 'continual.json');
  // Through a temporary name: a reader never sees half a report.
  await writeFile(`${file}.tmp`, `${JSON.stringify({ stages, table: result.table }, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
}

/**
 * Trains `tasks` in order on `model`'s trainable parameters and returns the forgetting table: after
 * stage i, the validation loss (and accuracy, where defined) of tasks 1..i.
 */
export async function trainContinual<M extends TrainableModel>(
  opts: ContinualOptions<M>,
): Promise<ContinualResult> {
  checkTasks(opts.tasks);
  // Locked for the whole sequence: a second run into outDir is refused, not interleaved between stages.
  return opts.outDir === undefined ? stagesIn(opts) : withOutputDirLock(opts.outDir, () => stagesIn(opts));
}

async function stagesIn<M extends TrainableModel>(opts: ContinualOptions<M>): Promise<ContinualResult> {
  const { tasks, outDir, onStep, onStage, ...shared } = opts;
  const stages: StageResult[] = [];
  for (const [i, task] of tasks.entries()) {
    const stage = i + 1;
    // A stage's own budget replaces the shared one, whichever of steps/epochs either gives.
    const ownBudget = task.options?.steps !== undefined || task.options?.epochs !== undefined;
    const trainer = new Trainer({
      ...shared,
      ...(ownBudget ? { steps: undefined, epochs: undefined } : {}),
      ...task.options,
      train: task.train,
      validation: task.validation,
      outDir: outDir === undefined ? undefined : join(outDir, `stage-${stage}-${slug(task.name)}`),
      onStep: onStep && ((m) => onStep(stage, m)),
    });
    const train = await trainer.train();
    const scores: TaskScore[] = [];
    for (const earlier of tasks.slice(0, stage)) scores.push(await score(opts.model, trainer, earlier));
    const result: StageResult = { stage, task: task.name, train, scores };
    stages.push(result);
    await onStage?.(result);
    if (train.aborted) break;
  }
  const result = {
    stages,
    table: forgettingTable(
      tasks.map((t) => t.name),
      stages.map((s) => s.scores),
    ),
  };
  if (outDir !== undefined) await writeReport(outDir, result);
  return result;
}
