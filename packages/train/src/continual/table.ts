/**
 * The forgetting table of a continual run: each task's scores after every stage, and how much of each
 * task was lost by the end (Chaudhry et al.'s forgetting measure, used for continual fine-tuning).
 */
import { TrainingError } from '../trainer/errors.js';

/** One task's scores measured after a stage. */
export interface TaskScore {
  /** Mean loss on the task's validation examples. */
  valLoss: number;
  /** The task's own accuracy in [0, 1], or null when the task defines none. */
  accuracy: number | null;
}

/**
 * Scores of every task after every stage of a continual run, and how much each task lost by the
 * end: what {@link forgettingTable} computes and {@link formatForgettingTable} prints. Row i is
 * stage i + 1, column j task j, both 0-based.
 */
export interface ForgettingTable {
  tasks: string[];
  /** valLoss[i][j]: task j after stage i; null for j > i (not trained yet). */
  valLoss: (number | null)[][];
  /** Same layout; null also where task j has no accuracy. */
  accuracy: (number | null)[][];
  /**
   * Per task j: best score after stages j..T-2 minus the final score (T stages), so positive means
   * forgotten. For loss, lower is better: final loss minus the lowest earlier one. Null for the last
   * task (nothing came after it) and for accuracy where the task has none.
   */
  forgetting: { valLoss: (number | null)[]; accuracy: (number | null)[] };
  /** Mean forgetting over the tasks that have a value; null when none has. */
  averageForgetting: { valLoss: number | null; accuracy: number | null };
  /** Mean of the final row: every task's score at the end. */
  final: { valLoss: number | null; accuracy: number | null };
}

const mean = (xs: readonly (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
};

/**
 * Forgetting of column j: higher-is-better scores compare max-earlier − final; lower-is-better ones
 * are negated first, so the result is positive when the task got worse either way.
 */
function forgettingOf(rows: (number | null)[][], j: number, higherIsBetter: boolean): number | null {
  const T = rows.length;
  const final = rows[T - 1][j];
  if (j >= T - 1 || final === null) return null;
  const sign = higherIsBetter ? 1 : -1;
  let best: number | null = null;
  for (let i = j; i < T - 1; i++) {
    const s = rows[i][j];
    if (s !== null && (best === null || sign * s > sign * best)) best = s;
  }
  return best === null ? null : sign * (best - final);
}

/** Builds the table from scores[i] = the scores of tasks 0..i measured right after stage i. */
export function forgettingTable(tasks: readonly string[], scores: readonly TaskScore[][]): ForgettingTable {
  if (scores.length === 0 || scores.length > tasks.length)
    throw new TrainingError(
      'BAD_OPTION',
      `forgettingTable: ${scores.length} stages for ${tasks.length} tasks`,
    );
  scores.forEach((row, i) => {
    if (row.length !== i + 1)
      throw new TrainingError(
        'BAD_OPTION',
        `forgettingTable: stage ${i + 1} has ${row.length} scores, expected ${i + 1}`,
      );
  });
  const cell = (i: number, j: number, pick: (s: TaskScore) => number | null) =>
    j < scores[i].length ? pick(scores[i][j]) : null;
  const grid = (pick: (s: TaskScore) => number | null) =>
    scores.map((_, i) => tasks.map((_, j) => cell(i, j, pick)));
  const valLoss = grid((s) => s.valLoss);
  const accuracy = grid((s) => s.accuracy);
  const forgetting = {
    valLoss: tasks.map((_, j) => forgettingOf(valLoss, j, false)),
    accuracy: tasks.map((_, j) => forgettingOf(accuracy, j, true)),
  };
  const last = scores.length - 1;
  return {
    tasks: [...tasks],
    valLoss,
    accuracy,
    forgetting,
    averageForgetting: { valLoss: mean(forgetting.valLoss), accuracy: mean(forgetting.accuracy) },
    final: { valLoss: mean(valLoss[last]), accuracy: mean(accuracy[last]) },
  };
}

const loss = (x: number | null) => (x === null ? '—' : x.toFixed(4));
const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
const signed = (x: number | null, f: (v: number) => string) =>
  x === null ? '—' : `${x >= 0 ? '+' : '−'}${f(Math.abs(x))}`;

/** The table as monospaced text: a row per stage, a loss and an accuracy column per task, then forgetting. */
export function formatForgettingTable(t: ForgettingTable): string {
  const hasAcc = t.tasks.map((_, j) => t.accuracy.some((row) => row[j] !== null));
  const header = [
    'after stage',
    ...t.tasks.flatMap((name, j) => (hasAcc[j] ? [`${name} loss`, `${name} acc`] : [`${name} loss`])),
  ];
  const row = (
    label: string,
    l: (number | null)[],
    a: (number | null)[],
    fl: typeof loss,
    fa: typeof pct,
  ) => [label, ...t.tasks.flatMap((_, j) => (hasAcc[j] ? [fl(l[j]), fa(a[j])] : [fl(l[j])]))];
  const rows = [
    header,
    ...t.valLoss.map((l, i) => row(`${i + 1} ${t.tasks[i]}`, l, t.accuracy[i], loss, pct)),
    row(
      'forgetting',
      t.forgetting.valLoss,
      t.forgetting.accuracy,
      (x) => signed(x, (v) => v.toFixed(4)),
      (x) => signed(x, (v) => `${(100 * v).toFixed(1)}pt`),
    ),
  ];
  const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ');
  const avg = t.averageForgetting;
  const footer =
    `average forgetting: loss ${signed(avg.valLoss, (v) => v.toFixed(4))}` +
    (avg.accuracy === null ? '' : `, accuracy ${signed(avg.accuracy, (v) => `${(100 * v).toFixed(1)}pt`)}`);
  return [line(rows[0]), ...rows.slice(1).map(line), footer].join('\n');
}
