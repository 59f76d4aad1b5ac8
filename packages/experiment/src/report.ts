/**
 * The paper-style tables of an experiment: per dataset, model and method, each metric's mean ± sample
 * standard deviation over the seeds that finished, beside trainable parameters, optimizer bytes,
 * peak memory and time. Everything but `timing` is a function of the cells' results alone, so a
 * resumed experiment reports exactly what an uninterrupted one does.
 */
import { formatBytes } from '@sharelora/core';
import type { Cell } from './cells.js';
import type { CellRecord } from './record.js';

/** A metric over seeds. */
export interface Stat {
  mean: number;
  /** Sample standard deviation (n − 1); null for a single value. */
  std: number | null;
  n: number;
}

/** One model × method on one dataset, over its seeds. */
export interface ReportRow {
  model: string;
  dataset: string;
  method: string;
  cells: number;
  complete: number;
  failed: number;
  /** By metric name: "held-out loss", "validation loss", "train loss", "<task>.<metric>", ... */
  metrics: Record<string, Stat>;
  trainableParams: number | null;
  optimizerBytes: number | null;
  peakBytes: number | null;
  /** Wall-clock figures: the only part that differs between runs of the same cells. */
  timing: { seconds: Stat | null; tokensPerSec: Stat | null };
}

/** A sequence's forgetting table for one model and method, over its seeds. */
export interface ContinualTable {
  model: string;
  sequence: string;
  method: string;
  /** The datasets, in training order. */
  tasks: string[];
  cells: number;
  complete: number;
  /** After each stage: every task's held-out loss (mean ± std over seeds). */
  after: Array<{ stage: number; dataset: string; loss: Record<string, Stat> }>;
  /**
   * For each task trained before the last stage: its loss after the last stage minus its loss right
   * after its own stage (positive: forgotten).
   */
  forgetting: Record<string, Stat>;
}

/** A training-loss curve: the mean over a row's finished seeds at each step they all logged. */
export interface ReportCurve {
  dataset: string;
  model: string;
  method: string;
  points: Array<{ step: number; loss: number }>;
}

/** An experiment's tables as data (`report.json`); reportMarkdown, reportCsv and reportHtml render it. */
export interface ExperimentReport {
  experiment: string;
  /** Unit of the losses. */
  lossUnit: string;
  /** Metric names in table order. */
  metricNames: string[];
  rows: ReportRow[];
  failures: Array<{ name: string; id: string; error: string }>;
  /** Cells without a finished or failed record. */
  pending: string[];
  /** Training loss per step, by dataset, model and method (when the curves were given). */
  curves: ReportCurve[];
  /** The sequences' forgetting tables. */
  continual: ContinualTable[];
}

function continualTable(group: readonly Cell[], records: ReadonlyMap<string, CellRecord>): ContinualTable {
  const tasks = (group[0].settings.sequence ?? []).map((s) => s.name);
  const done = group
    .map((c) => records.get(c.id))
    .filter((r): r is CellRecord => r?.status === 'complete' && r.stages?.length === tasks.length);
  const stages = done.map((r) => r.stages ?? []);
  const last = tasks.length - 1;
  const forgetting: Record<string, Stat> = {};
  for (const [j, task] of tasks.slice(0, last).entries()) {
    const s = stat(stages.map((st) => st[last].heldOut[task] - st[j].heldOut[task]));
    if (s) forgetting[task] = s;
  }
  return {
    model: group[0].model,
    sequence: group[0].dataset,
    method: group[0].method,
    tasks,
    cells: group.length,
    complete: done.length,
    after: tasks.map((dataset, i) => ({
      stage: i + 1,
      dataset,
      loss: Object.fromEntries(
        tasks.flatMap((t) => {
          const s = stat(stages.map((st) => st[i].heldOut[t]).filter((v) => v !== undefined));
          return s ? [[t, s]] : [];
        }),
      ),
    })),
    forgetting,
  };
}

/** Mean over curves at the steps every one of them has. */
function meanCurve(curves: ReadonlyArray<ReadonlyArray<{ step: number; loss: number }>>) {
  if (!curves.length) return [];
  const maps = curves.map((c) => new Map(c.map((p) => [p.step, p.loss])));
  return [...maps[0].keys()]
    .filter((step) => maps.every((m) => m.has(step)))
    .sort((a, b) => a - b)
    .map((step) => ({ step, loss: maps.reduce((a, m) => a + (m.get(step) as number), 0) / maps.length }));
}

/** Mean and sample standard deviation of `values`; null when there are none. */
export function stat(values: readonly number[]): Stat | null {
  if (!values.length) return null;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std =
    values.length > 1
      ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1))
      : null;
  return { mean, std, n: values.length };
}

/** A finished cell's metrics by report name. */
function cellMetrics(r: CellRecord): Record<string, number> {
  const out: Record<string, number> = {};
  const t = r.train;
  if (t?.heldOutLoss != null) out['held-out loss'] = t.heldOutLoss;
  for (const [k, v] of Object.entries(t?.heldOutMetrics ?? {})) out[`held-out ${k}`] = v;
  if (t?.bestValLoss != null) out['validation loss'] = t.bestValLoss;
  if (t?.trainLoss != null) out['train loss'] = t.trainLoss;
  for (const [task, metrics] of Object.entries(r.evals ?? {}))
    for (const [k, v] of Object.entries(metrics)) out[`${task}.${k}`] = v;
  return out;
}

/** The largest over the seeds (sizes are the same for every seed of a method; memory nearly so). */
function largest(values: readonly number[]): number | null {
  return values.length ? Math.max(...values) : null;
}

/** Groups the cells by dataset, model and method and summarises their records (missing ones are pending). */
export function buildReport(
  experiment: string,
  cells: readonly Cell[],
  records: ReadonlyMap<string, CellRecord>,
  curves: ReadonlyMap<string, ReadonlyArray<{ step: number; loss: number }>> = new Map(),
): ExperimentReport {
  const groups = new Map<string, Cell[]>();
  const sequences = new Map<string, Cell[]>();
  for (const c of cells.filter((x) => x.kind === 'sequence')) {
    const key = JSON.stringify([c.dataset, c.model, c.method]);
    sequences.set(key, [...(sequences.get(key) ?? []), c]);
  }
  for (const c of cells.filter((x) => x.kind === 'grid')) {
    const key = JSON.stringify([c.dataset, c.model, c.method]);
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  const metricNames: string[] = [];
  const rows: ReportRow[] = [];
  const meanCurves: ReportCurve[] = [];
  let lossUnit = 'nats/token';
  for (const group of groups.values()) {
    const done = group.map((c) => records.get(c.id)).filter((r): r is CellRecord => r?.status === 'complete');
    const perCell = done.map(cellMetrics);
    for (const m of perCell)
      for (const k of Object.keys(m)) if (!metricNames.includes(k)) metricNames.push(k);
    const metrics: Record<string, Stat> = {};
    for (const name of new Set(perCell.flatMap(Object.keys))) {
      const s = stat(perCell.map((m) => m[name]).filter((v) => v !== undefined));
      if (s) metrics[name] = s;
    }
    const train = done.map((r) => r.train).filter((t) => t !== undefined);
    const points = meanCurve(done.map((r) => curves.get(r.id)).filter((c) => c !== undefined));
    if (points.length)
      meanCurves.push({ dataset: group[0].dataset, model: group[0].model, method: group[0].method, points });
    if (train[0]) lossUnit = train[0].lossUnit;
    rows.push({
      model: group[0].model,
      dataset: group[0].dataset,
      method: group[0].method,
      cells: group.length,
      complete: done.length,
      failed: group.filter((c) => records.get(c.id)?.status === 'failed').length,
      metrics,
      trainableParams: largest(train.map((t) => t.trainableParams)),
      optimizerBytes: largest(train.map((t) => t.optimizerBytes)),
      peakBytes: largest(train.map((t) => t.peakBytes)),
      timing: {
        seconds: stat(done.map((r) => r.seconds ?? 0)),
        tokensPerSec: stat(train.map((t) => t.tokensPerSec)),
      },
    });
  }
  const failures = cells.flatMap((c) => {
    const r = records.get(c.id);
    return r?.status === 'failed' ? [{ name: c.name, id: c.id, error: r.error ?? 'unknown error' }] : [];
  });
  const pending = cells
    .filter((c) => !['complete', 'failed'].includes(records.get(c.id)?.status ?? ''))
    .map((c) => c.name);
  const continual = [...sequences.values()].map((g) => continualTable(g, records));
  return { experiment, lossUnit, metricNames, rows, failures, pending, curves: meanCurves, continual };
}

const num = (x: number): string => (Math.abs(x) >= 1000 ? x.toFixed(0) : x.toPrecision(4));
const meanStd = (s: Stat | undefined | null): string =>
  !s ? '' : s.std === null ? num(s.mean) : `${num(s.mean)} ± ${num(s.std)}`;

/** One Markdown table per dataset (rows: model × method). */
export function reportMarkdown(r: ExperimentReport): string {
  const out = [
    `# ${r.experiment}`,
    '',
    `Losses in ${r.lossUnit}; mean ± sample standard deviation over seeds.`,
  ];
  for (const dataset of [...new Set(r.rows.map((row) => row.dataset))]) {
    const rows = r.rows.filter((row) => row.dataset === dataset);
    const names = r.metricNames.filter((m) => rows.some((row) => row.metrics[m]));
    const head = ['model', 'method', 'seeds', ...names, 'trainable', 'optimizer', 'peak memory', 'time (s)'];
    out.push('', `## ${dataset}`, '', `| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`);
    for (const row of rows) {
      const cells = [
        row.model,
        row.method,
        `${row.complete}/${row.cells}${row.failed ? ` (${row.failed} failed)` : ''}`,
        ...names.map((m) => meanStd(row.metrics[m])),
        row.trainableParams === null ? '' : row.trainableParams.toLocaleString('en-US'),
        row.optimizerBytes === null ? '' : formatBytes(row.optimizerBytes),
        row.peakBytes === null ? '' : formatBytes(row.peakBytes),
        meanStd(row.timing.seconds),
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
  }
  for (const t of r.continual) {
    out.push('', `## Continual: ${t.sequence} (${t.model}, ${t.method}, ${t.complete}/${t.cells} seeds)`, '');
    out.push(
      `Held-out loss on each dataset after each stage; forgetting: the last stage's loss minus the loss right after the dataset's own stage.`,
      '',
    );
    const head = ['after stage', ...t.tasks];
    out.push(`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`);
    for (const a of t.after)
      out.push(`| ${[`${a.stage}: ${a.dataset}`, ...t.tasks.map((k) => meanStd(a.loss[k]))].join(' | ')} |`);
    out.push(
      `| ${['forgetting', ...t.tasks.map((k) => (t.forgetting[k] ? meanStd(t.forgetting[k]) : ''))].join(' | ')} |`,
    );
  }
  if (r.failures.length) {
    out.push('', '## Failed cells', '');
    for (const f of r.failures) out.push(`- ${f.name} (${f.id}): ${f.error.split('\n')[0]}`);
  }
  if (r.pending.length) out.push('', `Not run yet: ${r.pending.join(', ')}.`);
  return `${out.join('\n')}\n`;
}

const csvField = (v: string | number | null | undefined): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** One line per row; each metric as <name>_mean, <name>_std, <name>_n columns. */
export function reportCsv(r: ExperimentReport): string {
  const head = [
    'dataset',
    'model',
    'method',
    'cells',
    'complete',
    'failed',
    ...r.metricNames.flatMap((m) => [`${m}_mean`, `${m}_std`, `${m}_n`]),
    'trainable_params',
    'optimizer_bytes',
    'peak_bytes',
    'seconds_mean',
    'tokens_per_sec_mean',
  ];
  const lines = r.rows.map((row) =>
    [
      row.dataset,
      row.model,
      row.method,
      row.cells,
      row.complete,
      row.failed,
      ...r.metricNames.flatMap((m) => {
        const s = row.metrics[m];
        return s ? [s.mean, s.std, s.n] : [null, null, null];
      }),
      row.trainableParams,
      row.optimizerBytes,
      row.peakBytes,
      row.timing.seconds?.mean,
      row.timing.tokensPerSec?.mean,
    ]
      .map(csvField)
      .join(','),
  );
  return `${[head.map(csvField).join(','), ...lines].join('\n')}\n`;
}
