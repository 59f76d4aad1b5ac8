/**
 * The guides' charts, drawn with Observable Plot from the data files in docs/data (written by
 * apps/docs/scripts/params-data.mjs and study-data.mjs, or transcribed from the benchmark runs the guides describe).
 * A guide places one with `<Chart name="..." />`.
 */
import * as Plot from '@observablehq/plot';
import params from '../../../../docs/data/params.json';
import profile from '../../../../docs/data/step-profile.json';
import study from '../../../../docs/data/stories260k-study.json';
import throughput from '../../../../docs/data/throughput-vs-pytorch.json';
import throughputAvx2 from '../../../../docs/data/throughput-vs-pytorch-avx2.json';

const METHOD_LABELS: Record<string, string> = {
  lora: 'LoRA',
  'share-a': 'ShareA',
  'share-b': 'ShareB',
  'share-ab': 'ShareAB',
};
const METHOD_ORDER = Object.values(METHOD_LABELS);
const methodLabel = (method: string) => METHOD_LABELS[method] ?? method;
const WIDTH = 688;

/** One machine's sittings of scripts/bench-vs-peer.mjs: each side's best per step and sitting. */
interface ThroughputData {
  machine: string;
  peer: string;
  measured: string;
  sittings: string[];
  rows: Array<{ step: string; unit: string; peer: number[]; sharelora: number[] }>;
}

/** sharelora ÷ PyTorch per step shape and sitting: above 1 is faster than the peer. */
function throughputChart(throughput: ThroughputData) {
  const points = throughput.rows.flatMap((r) =>
    r.peer.map((peer, i) => ({
      step: r.step,
      sitting: throughput.sittings[i],
      ratio: r.sharelora[i] / peer,
    })),
  );
  return Plot.plot({
    width: WIDTH,
    marginLeft: 270,
    x: {
      type: 'log',
      label: `sharelora ÷ PyTorch (${throughput.rows[0].unit}; GFLOP/s for the matmul) →`,
      ticks: [0.1, 0.2, 0.5, 1, 2],
      tickFormat: (d: number) => `${d}×`,
      grid: true,
    },
    y: { axis: null },
    fy: { axis: 'left', label: null, domain: throughput.rows.map((r) => r.step) },
    color: { legend: true },
    marks: [
      Plot.barX(points, { x1: 1, x2: 'ratio', y: 'sitting', fy: 'step', fill: 'sitting', tip: true }),
      Plot.ruleX([1], { stroke: 'currentColor', strokeDasharray: '4 3' }),
    ],
    caption: `${throughput.machine}; ${throughput.peer}. ${throughput.measured}.`,
  });
}

/** GPU milliseconds per kernel kind in one profiled step, before and after the kernel work. */
function profileChart() {
  const points = profile.kernels.flatMap((k) =>
    (['before', 'after'] as const).flatMap((when) => {
      const v = k[when];
      return v ? [{ kind: k.kind, when, ms: v.ms, dispatches: v.dispatches }] : [];
    }),
  );
  return Plot.plot({
    width: WIDTH,
    marginLeft: 230,
    x: { label: 'GPU ms per step →', grid: true },
    y: { axis: null },
    fy: { axis: 'left', label: null, domain: profile.kernels.map((k) => k.kind) },
    color: { legend: true, domain: ['before', 'after'] },
    marks: [Plot.barX(points, { x: 'ms', y: 'when', fy: 'kind', fill: 'when', tip: true }), Plot.ruleX([0])],
    caption: profile.step,
  });
}

const paramRows = params.rows.map((r) => ({
  ...r,
  label: methodLabel(r.method),
  panel: `${r.model}, r=${r.rank}, ${r.targets.length} module types`,
}));
const models = [...new Set(paramRows.map((r) => r.model))];

/** Trainable parameters per method, one panel per model (log scale: ShareAB is 1/L of LoRA). */
function paramsChart() {
  return Plot.plot({
    width: WIDTH,
    marginLeft: 250,
    marginRight: 60,
    x: { type: 'log', label: 'trainable parameters →', grid: true },
    y: { axis: null, domain: METHOD_ORDER },
    fy: { axis: 'left', label: null, domain: [...new Set(paramRows.map((r) => r.panel))] },
    color: { legend: true, domain: METHOD_ORDER },
    marks: [
      Plot.barX(paramRows, { x1: 1000, x2: 'trainable', y: 'label', fy: 'panel', fill: 'label', tip: true }),
      Plot.text(paramRows, {
        x: 'trainable',
        y: 'label',
        fy: 'panel',
        text: (r) => (r.reduction > 0 ? `−${(100 * r.reduction).toFixed(1)}%` : ''),
        dx: 4,
        textAnchor: 'start',
      }),
    ],
    caption: `Counted by \`${params.command}\` from each model's config.json.`,
  });
}

/** AdamW fine-tuning state per method: f32 weights, gradients and two moments, 16 bytes per parameter. */
function adapterMemoryChart() {
  const rows = paramRows.map((r) => ({ ...r, mib: (16 * r.trainable) / 2 ** 20 }));
  return Plot.plot({
    width: WIDTH,
    marginLeft: 60,
    x: { axis: null, domain: METHOD_ORDER },
    y: { type: 'log', label: '↑ adapter training state (MiB)', tickFormat: ',~g', grid: true },
    fx: { label: null, domain: models },
    color: { legend: true, domain: METHOD_ORDER },
    marks: [Plot.barY(rows, { x: 'label', y1: 0.01, y2: 'mib', fx: 'model', fill: 'label', tip: true })],
    caption:
      'Adapter weights, their gradients and AdamW moments in f32 (16 bytes per trainable parameter), from the ' +
      'same counts; the frozen base and the activations are the same for every method.',
  });
}

/** A seed statistic as the mean and the ends of its ± std bar. */
const spread = (s: { mean: number; std: number }) => ({
  mean: s.mean,
  low: s.mean - s.std,
  high: s.mean + s.std,
});
const studyRows = study.rows.map((r) => ({
  label: methodLabel(r.method),
  trainable: r.trainable,
  ...spread(r.heldOut),
}));
const studyCaption = (what: string) => `${study.experiment} study, ${what} over the seeds; ${study.machine}.`;

/** Held-out loss against trainable parameters: lower-left is better. */
function studyQualityChart() {
  return Plot.plot({
    width: WIDTH,
    marginRight: 70,
    x: { label: 'trainable parameters →', grid: true, zero: true, nice: true },
    y: { label: `↑ held-out loss (${study.lossUnit})`, grid: true },
    color: { legend: true, domain: METHOD_ORDER },
    marks: [
      Plot.ruleX(studyRows, { x: 'trainable', y1: 'low', y2: 'high', stroke: 'label', strokeWidth: 2 }),
      Plot.dot(studyRows, { x: 'trainable', y: 'mean', fill: 'label', r: 5, tip: true }),
      Plot.text(studyRows, { x: 'trainable', y: 'mean', text: 'label', dx: 10, textAnchor: 'start' }),
    ],
    caption: studyCaption('mean ± std'),
  });
}

/** Training loss per step, one line per method (the mean over seeds). */
function studyCurvesChart() {
  const points = study.curves.flatMap((c) =>
    c.points.map((p) => ({ label: methodLabel(c.method), step: p.step, loss: p.loss })),
  );
  return Plot.plot({
    width: WIDTH,
    x: { label: 'step →', grid: true },
    y: { type: 'log', label: `↑ training loss (${study.lossUnit})`, grid: true, tickFormat: ',~g' },
    color: { legend: true, domain: METHOD_ORDER },
    marks: [Plot.line(points, { x: 'step', y: 'loss', stroke: 'label', tip: true })],
    caption: studyCaption('mean'),
  });
}

/** Loss on each task after each stage of the continual sequence, per method. */
function studyContinualChart() {
  const bars = study.continual.flatMap((c) =>
    c.after.flatMap((a) =>
      Object.entries(a.loss).map(([task, s]) => ({
        label: methodLabel(c.method),
        series: `${task}, after stage ${a.stage} (${a.dataset})`,
        ...spread(s),
      })),
    ),
  );
  // Stage by stage, in the order the sequence ran.
  const series = [...new Set(bars.map((b) => b.series))];
  return Plot.plot({
    width: WIDTH,
    x: { axis: null, domain: series },
    y: { label: `↑ held-out loss (${study.lossUnit})`, grid: true },
    fx: { label: null, domain: METHOD_ORDER },
    color: { legend: true, domain: series },
    marks: [
      Plot.barY(bars, { x: 'series', y: 'mean', fx: 'label', fill: 'series', tip: true }),
      Plot.ruleX(bars, { x: 'series', y1: 'low', y2: 'high', fx: 'label', stroke: 'currentColor' }),
      Plot.ruleY([0]),
    ],
    caption: studyCaption('mean ± std'),
  });
}

/** Every chart a guide can place, by name. */
export const CHARTS = {
  'throughput-vs-pytorch': () => throughputChart(throughput),
  'throughput-vs-pytorch-avx2': () => throughputChart(throughputAvx2),
  'step-profile': profileChart,
  'params-by-method': paramsChart,
  'adapter-memory-by-method': adapterMemoryChart,
  'study-quality-vs-params': studyQualityChart,
  'study-loss-curves': studyCurvesChart,
  'study-continual': studyContinualChart,
} satisfies Record<string, () => Element>;

export type ChartName = keyof typeof CHARTS;
