/**
 * The quickstart's outputs for people: a monospaced table for the terminal, and a self-contained HTML
 * report (inline CSS and SVG, no scripts or external assets) with the table and the loss curves.
 */
import type { Method } from '@sharelora/adapters';
import { formatBytes } from '@sharelora/core';
import type { CurvePoint, QuickstartResult } from './quickstart.js';

/** Each method's name as tables and reports print it (LoRA, ShareA, ...). */
export const METHOD_LABELS: Readonly<Record<Method, string>> = {
  lora: 'LoRA',
  'share-a': 'ShareA',
  'share-b': 'ShareB',
  'share-ab': 'ShareAB',
  'share-qkv': 'ShareQKV',
};

const COLORS: Readonly<Record<Method, string>> = {
  lora: '#1f77b4',
  'share-a': '#d62728',
  'share-b': '#2ca02c',
  'share-ab': '#9467bd',
  'share-qkv': '#ff7f0e',
};

const int = (n: number) => n.toLocaleString('en-US');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The comparison as rows of cells, shared by the terminal table and the HTML one. */
function tableCells(r: QuickstartResult): { header: string[]; rows: string[][] } {
  return {
    header: [
      'method',
      'trainable params',
      'vs LoRA',
      'optimizer state',
      'peak memory',
      'ms/step',
      'exact match',
      'val loss (nats/token)',
    ],
    rows: r.rows.map((row) => [
      METHOD_LABELS[row.method],
      int(row.trainable),
      row.method === 'lora' ? '' : `−${pct(row.reduction)}`,
      formatBytes(row.optimizerBytes),
      formatBytes(row.peakBytes),
      row.msPerStep.toFixed(0),
      pct(row.accuracy),
      row.valLoss.toFixed(4),
    ]),
  };
}

/** The comparison table as monospaced text (numbers right-aligned). */
export function formatQuickstartTable(r: QuickstartResult): string {
  const { header, rows } = tableCells(r);
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c].length)));
  const line = (row: string[]) =>
    row
      .map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c])))
      .join('  ')
      .trimEnd();
  return all.map(line).join('\n');
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Series {
  name: string;
  color: string;
  points: readonly CurvePoint[];
  /** Drawn as dots joined by a dashed line (validation points are sparse). */
  dashed?: boolean;
}

/**
 * A line chart of losses per step on a log scale, drawn with Observable Plot (the docs site's chart
 * library) on a server-side DOM, as an inline SVG figure that needs no script to display. The
 * libraries are imported here, not at the top, so browser bundles of this package leave them out.
 */
export async function lossChart(title: string, series: readonly Series[]): Promise<string> {
  const visible = series.map((s) => ({
    ...s,
    points: s.points.filter((p) => p.loss > 0 && Number.isFinite(p.loss)),
  }));
  if (visible.every((s) => s.points.length === 0)) return '';
  const [Plot, { parseHTML }] = await Promise.all([import('@observablehq/plot'), import('linkedom')]);
  const { document } = parseHTML('<!doctype html><html><body></body></html>');
  const marks = visible.flatMap((s) => {
    const style = { x: 'step', y: 'loss', stroke: s.color, strokeWidth: 1.6 };
    return s.dashed
      ? [
          Plot.lineY(s.points, { ...style, strokeDasharray: '4 3' }),
          Plot.dot(s.points, { ...style, r: 2.5, fill: s.color }),
        ]
      : [Plot.lineY(s.points, style)];
  });
  const figure = Plot.plot({
    document: document as unknown as Document,
    title,
    width: 640,
    height: 300,
    marginRight: 20,
    style: { fontFamily: 'system-ui, sans-serif', fontSize: '11px' },
    x: { label: 'optimizer step', nice: true },
    y: { type: 'log', label: 'loss (log scale)', grid: true },
    color: {
      type: 'categorical',
      domain: series.map((s) => s.name),
      range: series.map((s) => s.color),
      legend: true,
    },
    marks,
  });
  return figure.outerHTML;
}

/** report.html: what ran, the table, the notes and the curves, in one file that opens offline. */
export async function renderReport(r: QuickstartResult): Promise<string> {
  const { header, rows } = tableCells(r);
  const table = [
    '<table>',
    `<tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`,
    ...rows.map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`),
    '</table>',
  ].join('\n');
  const pretrainChart = await lossChart(
    `Pretraining on "${r.tasks.pretrain.name}" (all ${int(r.model.parameters)} weights)`,
    [
      { name: 'train', color: '#444', points: r.pretrain.curve },
      { name: 'validation', color: '#e377c2', points: r.pretrain.valCurve, dashed: true },
    ],
  );
  const trainChart = await lossChart(
    `Fine-tuning on "${r.tasks.finetune.name}": training loss`,
    r.rows.map((row) => ({ name: METHOD_LABELS[row.method], color: COLORS[row.method], points: row.curve })),
  );
  const valChart = await lossChart(
    `Fine-tuning on "${r.tasks.finetune.name}": validation loss`,
    r.rows.map((row) => ({
      name: METHOD_LABELS[row.method],
      color: COLORS[row.method],
      points: row.valCurve,
      dashed: true,
    })),
  );
  const m = r.model;
  const ft = r.rows[0];
  const setup = [
    `Model: LLaMA architecture, ${m.layers} layers, d_model ${m.hiddenSize}, ${m.heads} query / ${m.kvHeads} key-value heads, vocabulary ${m.vocabSize} (${int(m.parameters)} parameters), random init with seed ${r.seed}.`,
    `Pretraining: ${escapeHtml(r.tasks.pretrain.description)}; ${r.pretrain.steps} steps of ${r.batchSize} examples, all weights, AdamW lr ${r.pretrain.lr}, cosine schedule. Held-out exact match afterwards: ${pct(r.pretrain.accuracy)}; on the fine-tuning task before fine-tuning: ${pct(r.pretrain.newTaskAccuracy)}.`,
    `Fine-tuning: ${escapeHtml(r.tasks.finetune.description)}; ${ft?.steps ?? 0} steps of ${r.batchSize} examples, lr ${ft?.lr ?? 0}, rank ${r.adapter.r}, alpha ${r.adapter.alpha}, on ${r.adapter.targets.join(', ')} of every layer; the same base, seed and data order for every method.`,
    `Exact match: ${escapeHtml(r.tasks.metric)}.`,
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sharelora quickstart</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
svg { display: block; margin: 1rem 0; font-family: system-ui, sans-serif; }
.note { color: #555; }
</style>
</head>
<body>
<h1>sharelora quickstart: LoRA vs ShareLoRA in miniature</h1>
<p>ShareLoRA shares LoRA's low-rank matrices across layers (one A and/or B per module type). This run
fine-tunes one small pretrained model with each method under the same budget and measures what each costs
and how well it learns.</p>
${table}
<ul>
${r.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('\n')}
</ul>
<h2>Setup</h2>
<ul class="note">
${setup.map((s) => `<li>${s}</li>`).join('\n')}
</ul>
<h2>Loss curves</h2>
${pretrainChart}
${trainChart}
${valChart}
<p class="note">Seed ${r.seed}, steps scale ${r.stepsScale}, ${r.seconds.toFixed(0)} s in all. Results: results.json; base model: base/; adapters (PEFT format): ${r.rows.map((row) => `${row.method}/`).join(', ')}.</p>
</body>
</html>
`;
}
