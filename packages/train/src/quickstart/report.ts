/**
 * The quickstart's outputs for people: a monospaced table for the terminal, and a self-contained HTML
 * report (inline CSS and SVG, no scripts or external assets) with the table and the loss curves.
 */
import type { Method } from '@sharelora/adapters';
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

/** A byte count for people: B, KiB (one decimal) or MiB (two). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

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

/** "Nice" tick values for a log axis: the decades in range, with 2× and 5× steps when there are few. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (const mults of [[1], [1, 2, 5]]) {
    ticks.length = 0;
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
      for (const m of mults) {
        const v = m * 10 ** e;
        if (v >= lo && v <= hi) ticks.push(v);
      }
    if (ticks.length >= 3) break;
  }
  return ticks;
}

const tickLabel = (v: number) => (v >= 1 ? String(Number(v.toPrecision(3))) : v.toPrecision(1));

/** A line chart of losses per step on a log scale, as an inline SVG element. */
export function lossChart(title: string, series: readonly Series[]): string {
  const W = 640;
  const H = 300;
  const m = { left: 56, right: 130, top: 28, bottom: 40 };
  const pts = series.flatMap((s) => s.points).filter((p) => p.loss > 0 && Number.isFinite(p.loss));
  if (pts.length === 0) return '';
  const xMax = Math.max(1, ...pts.map((p) => p.step));
  let lo = Math.min(...pts.map((p) => p.loss));
  let hi = Math.max(...pts.map((p) => p.loss));
  if (hi / lo < 10) {
    // Widen a narrow range around its centre so the axis keeps a few ticks.
    const mid = Math.sqrt(lo * hi);
    lo = mid / Math.sqrt(10);
    hi = mid * Math.sqrt(10);
  }
  const x = (step: number) => m.left + ((W - m.left - m.right) * step) / xMax;
  const y = (loss: number) =>
    m.top + ((H - m.top - m.bottom) * (Math.log(hi) - Math.log(loss))) / (Math.log(hi) - Math.log(lo));
  const f = (v: number) => v.toFixed(1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-weight="bold">${escapeHtml(title)}</text>`,
    `<rect x="${m.left}" y="${m.top}" width="${W - m.left - m.right}" height="${H - m.top - m.bottom}" fill="none" stroke="#999"/>`,
  ];
  for (const v of logTicks(lo, hi)) {
    parts.push(
      `<line x1="${m.left}" x2="${W - m.right}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#e5e5e5"/>`,
      `<text x="${m.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" font-size="11">${tickLabel(v)}</text>`,
    );
  }
  const xStep = 10 ** Math.floor(Math.log10(xMax));
  const every = xMax / xStep >= 5 ? xStep : xStep / 2;
  for (let s = 0; s <= xMax; s += Math.max(1, every)) {
    parts.push(
      `<text x="${f(x(s))}" y="${H - m.bottom + 16}" text-anchor="middle" font-size="11">${s}</text>`,
    );
  }
  parts.push(
    `<text x="${(m.left + W - m.right) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">optimizer step</text>`,
    `<text x="14" y="${(m.top + H - m.bottom) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${(m.top + H - m.bottom) / 2})">loss (log scale)</text>`,
  );
  series.forEach((s, i) => {
    const visible = s.points.filter((p) => p.loss > 0 && Number.isFinite(p.loss));
    const d = visible.map((p, k) => `${k ? 'L' : 'M'}${f(x(p.step))},${f(y(Math.max(lo, p.loss)))}`).join('');
    parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
    );
    if (s.dashed)
      for (const p of visible)
        parts.push(
          `<circle cx="${f(x(p.step))}" cy="${f(y(Math.max(lo, p.loss)))}" r="2.5" fill="${s.color}"/>`,
        );
    const ly = m.top + 12 + 18 * i;
    parts.push(
      `<line x1="${W - m.right + 10}" x2="${W - m.right + 30}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
      `<text x="${W - m.right + 36}" y="${ly + 4}" font-size="12">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** report.html: what ran, the table, the notes and the curves, in one file that opens offline. */
export function renderReport(r: QuickstartResult): string {
  const { header, rows } = tableCells(r);
  const table = [
    '<table>',
    `<tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`,
    ...rows.map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`),
    '</table>',
  ].join('\n');
  const pretrainChart = lossChart(
    `Pretraining on "${r.tasks.pretrain.name}" (all ${int(r.model.parameters)} weights)`,
    [
      { name: 'train', color: '#444', points: r.pretrain.curve },
      { name: 'validation', color: '#e377c2', points: r.pretrain.valCurve, dashed: true },
    ],
  );
  const trainChart = lossChart(
    `Fine-tuning on "${r.tasks.finetune.name}": training loss`,
    r.rows.map((row) => ({ name: METHOD_LABELS[row.method], color: COLORS[row.method], points: row.curve })),
  );
  const valChart = lossChart(
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
