#!/usr/bin/env node
// Writes docs/data/stories260k-study.json, the data of the experiments page's study charts, from
// the report.json that `sharelora experiment report` wrote for the shipped stories260K study.
// Only what the charts draw is kept; every number comes out of the report unchanged.
//
// Usage: node apps/docs/scripts/study-data.mjs [REPORT_JSON] "MACHINE"
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DEFAULT_REPORT = fileURLToPath(
  new URL('../../../examples/experiments/stories260k/experiment-runs/report/report.json', import.meta.url),
);
const OUT = fileURLToPath(new URL('../../../docs/data/stories260k-study.json', import.meta.url));

const [reportPath = DEFAULT_REPORT, machine] = process.argv.slice(2);
if (!machine) {
  console.error('usage: node apps/docs/scripts/study-data.mjs [REPORT_JSON] "MACHINE (CPU, ISA, adapter)"');
  process.exit(2);
}
const report = JSON.parse(readFileSync(reportPath, 'utf8'));
const stat = ({ mean, std, n }) => ({ mean, std, n });

const data = {
  experiment: report.experiment,
  lossUnit: report.lossUnit,
  machine,
  rows: report.rows.map((r) => ({
    dataset: r.dataset,
    method: r.method,
    trainable: r.trainableParams,
    heldOut: stat(r.metrics['held-out loss']),
  })),
  curves: report.curves.map((c) => ({ dataset: c.dataset, method: c.method, points: c.points })),
  continual: report.continual.map((c) => ({
    sequence: c.sequence,
    method: c.method,
    tasks: c.tasks,
    after: c.after.map((a) => ({
      stage: a.stage,
      dataset: a.dataset,
      loss: Object.fromEntries(Object.entries(a.loss).map(([task, s]) => [task, stat(s)])),
    })),
  })),
};
writeFileSync(OUT, `${JSON.stringify(data, null, 2)}\n`);
console.log(
  `wrote ${OUT}: ${data.rows.length} rows, ${data.curves.length} curves, ${data.continual.length} sequences`,
);
