/**
 * report.html: the tables and two charts per dataset, drawn with Observable Plot (the docs site's
 * chart library) on a server-side DOM as inline SVG, so the page needs no script and opens offline:
 * quality against trainable parameters (mean ± std over seeds, one point per model and method), and
 * the training-loss curves (mean over seeds).
 */
import type { ExperimentReport, ReportRow } from './report.js';
import { reportMarkdown } from './report.js';

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

type PlotModule = typeof import('@observablehq/plot');

/** Draws `options(Plot)` into an SVG figure; the libraries load here, only when a chart is drawn. */
async function figure(options: (Plot: PlotModule) => Record<string, unknown>): Promise<string> {
  const [Plot, { parseHTML }] = await Promise.all([import('@observablehq/plot'), import('linkedom')]);
  const { document } = parseHTML('<!doctype html><html><body></body></html>');
  return Plot.plot({
    document: document as unknown as Document,
    width: 640,
    height: 300,
    style: { fontFamily: 'system-ui, sans-serif', fontSize: '11px' },
    ...options(Plot),
  }).outerHTML;
}

/** The metric a dataset's quality chart shows: the first the report lists that its rows have. */
function primaryMetric(r: ExperimentReport, rows: readonly ReportRow[]): string | undefined {
  return r.metricNames.find((m) => rows.some((row) => row.metrics[m]));
}

async function qualityChart(r: ExperimentReport, dataset: string): Promise<string> {
  const rows = r.rows.filter((row) => row.dataset === dataset && row.trainableParams);
  const metric = primaryMetric(r, rows);
  if (!metric) return '';
  const points = rows
    .filter((row) => row.metrics[metric])
    .map((row) => {
      const s = row.metrics[metric];
      return {
        label: `${row.model} ${row.method}`,
        method: row.method,
        params: row.trainableParams as number,
        mean: s.mean,
        low: s.mean - (s.std ?? 0),
        high: s.mean + (s.std ?? 0),
      };
    });
  return figure((Plot) => ({
    title: `${dataset}: ${metric} against trainable parameters (mean ± std over seeds)`,
    marginRight: 140,
    x: { type: 'log', label: 'trainable parameters', grid: true, inset: 24 },
    y: { label: metric, grid: true, nice: true, inset: 12 },
    color: { legend: true },
    marks: [
      Plot.ruleX(points, { x: 'params', y1: 'low', y2: 'high', stroke: 'method' }),
      Plot.dot(points, { x: 'params', y: 'mean', fill: 'method', r: 4 }),
      Plot.text(points, { x: 'params', y: 'mean', text: 'label', dx: 8, textAnchor: 'start' }),
    ],
  }));
}

async function curveChart(r: ExperimentReport, dataset: string): Promise<string> {
  const points = r.curves
    .filter((c) => c.dataset === dataset)
    .flatMap((c) => c.points.map((p) => ({ ...p, series: `${c.model} ${c.method}` })));
  if (!points.length) return '';
  return figure((Plot) => ({
    title: `${dataset}: training loss (mean over seeds, ${r.lossUnit})`,
    x: { label: 'optimizer step', nice: true },
    y: { label: 'training loss', grid: true, nice: true },
    color: { legend: true },
    marks: [Plot.lineY(points, { x: 'step', y: 'loss', stroke: 'series', strokeWidth: 1.6 })],
  }));
}

/** Markdown tables as HTML tables (the report's own Markdown, so both say the same). */
function tablesHtml(markdown: string): string {
  const out: string[] = [];
  let inTable = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('|')) {
      const cells = line
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim());
      if (cells.every((c) => c === '---')) continue;
      if (!inTable) out.push('<table>');
      const tag = inTable ? 'td' : 'th';
      out.push(`<tr>${cells.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join('')}</tr>`);
      inTable = true;
      continue;
    }
    if (inTable) out.push('</table>');
    inTable = false;
    if (line.startsWith('## ')) out.push(`<h2>${escapeHtml(line.slice(3))}</h2>`);
    else if (line.startsWith('# ')) out.push(`<h1>${escapeHtml(line.slice(2))}</h1>`);
    else if (line.startsWith('- ')) out.push(`<p class="note">${escapeHtml(line.slice(2))}</p>`);
    else if (line.trim()) out.push(`<p>${escapeHtml(line)}</p>`);
  }
  if (inTable) out.push('</table>');
  return out.join('\n');
}

/** The whole report as one HTML page. */
export async function reportHtml(r: ExperimentReport): Promise<string> {
  const charts: string[] = [];
  for (const dataset of [...new Set(r.rows.map((row) => row.dataset))]) {
    charts.push(
      `<h2>${escapeHtml(dataset)}: charts</h2>`,
      await qualityChart(r, dataset),
      await curveChart(r, dataset),
    );
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(r.experiment)}: sharelora experiment report</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
svg { display: block; margin: 1rem 0; }
.note { color: #555; }
</style>
</head>
<body>
${tablesHtml(reportMarkdown(r))}
${charts.join('\n')}
</body>
</html>
`;
}
