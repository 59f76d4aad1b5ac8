/**
 * What a run leaves in each cell's folder (`cell.json`): the settings it ran with, its state, the
 * versions and timings, and the figures the report reads.
 */
import type { CellSettings } from './cells.js';

/** A cell's state: started and not finished (or interrupted), finished, or stopped by an error. */
export type CellStatus = 'running' | 'complete' | 'failed';

/** The figures of one training run (from `sharelora train --json`). */
export interface TrainFigures {
  /** Unit of every loss here, e.g. nats/token. */
  lossUnit: string;
  steps: number;
  /** Mean loss of the last logged steps. */
  trainLoss: number | null;
  /** Lowest validation loss (null without a validation split). */
  bestValLoss: number | null;
  /** Loss on the dataset's `eval` file after training (null without one). */
  heldOutLoss: number | null;
  /** Accuracy or correlation on a classification `eval` file, when train reports one. */
  heldOutMetrics: Record<string, number>;
  trainableParams: number;
  optimizerBytes: number;
  peakBytes: number;
  msPerStep: number;
  tokensPerSec: number;
}

/** One stage of a sequence cell: what it trained on, and every dataset's held-out loss after it. */
export interface StageRecord {
  dataset: string;
  train: TrainFigures;
  /** Held-out loss of each dataset of the sequence after this stage, by dataset name. */
  heldOut: Record<string, number>;
}

/** A cell's `cell.json`: what it ran with, how it went, and its figures. */
export interface CellRecord {
  id: string;
  name: string;
  index: number;
  model: string;
  dataset: string;
  method: string;
  seed: number;
  settings: CellSettings;
  status: CellStatus;
  /** Why a failed cell failed (the failing command's last words). */
  error?: string;
  /** Runs of this cell so far (a resumed cell counts each). */
  attempts: number;
  started: string;
  finished?: string;
  /** Wall seconds of the attempt that finished it. */
  seconds?: number;
  /** sharelora, node and platform versions of the finishing attempt. */
  versions: Record<string, string>;
  /** A grid cell's training, or a sequence cell's last stage's. */
  train?: TrainFigures;
  /** A sequence cell's stages so far. */
  stages?: StageRecord[];
  /** Each evaluation's numeric metrics, by task name. */
  evals?: Record<string, Record<string, number>>;
}

/** Numeric leaves of an object as dotted keys (`{a: {b: 1}}` → `{"a.b": 1}`). */
export function numericLeaves(value: unknown, prefix = ''): Record<string, number> {
  if (typeof value === 'number' && Number.isFinite(value)) return { [prefix]: value };
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.assign(
    {},
    ...Object.entries(value as Record<string, unknown>).map(([k, v]) =>
      numericLeaves(v, prefix ? `${prefix}.${k}` : k),
    ),
  );
}

/** The figures of a `sharelora train --json` document. */
export function trainFigures(doc: Record<string, unknown>): TrainFigures {
  const report = (doc.report ?? {}) as {
    params?: { trainable?: number };
    bytes?: { optimizer?: number; peakTotal?: number };
    msPerStep?: number;
    tokensPerSec?: number;
  };
  const evalData = (doc.evalData ?? null) as Record<string, unknown> | null;
  const { loss, ...rest } = evalData ?? {};
  return {
    lossUnit: String(doc.lossUnit ?? 'nats/token'),
    steps: Number(doc.steps ?? 0),
    trainLoss: typeof doc.trainLoss === 'number' ? doc.trainLoss : null,
    bestValLoss: typeof doc.bestValLoss === 'number' ? doc.bestValLoss : null,
    heldOutLoss: typeof loss === 'number' ? loss : null,
    heldOutMetrics: Object.fromEntries(Object.entries(numericLeaves(rest)).filter(([k]) => k !== 'examples')),
    trainableParams: report.params?.trainable ?? 0,
    optimizerBytes: report.bytes?.optimizer ?? 0,
    peakBytes: report.bytes?.peakTotal ?? 0,
    msPerStep: report.msPerStep ?? 0,
    tokensPerSec: report.tokensPerSec ?? 0,
  };
}
