import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, shutdown } from '@sharelora/core/node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  formatQuickstartTable,
  lossChart,
  type QuickstartEvent,
  type QuickstartResult,
  runQuickstart,
} from '../src/index.js';

let dir: string;
let result: QuickstartResult;
const events: QuickstartEvent[] = [];

beforeAll(async () => {
  await init();
  dir = await mkdtemp(join(tmpdir(), 'sharelora-quickstart-'));
  // A smoke-sized run: a few steps per phase; the full run is measured by hand (see docs/quickstart.md).
  result = await runQuickstart({ outDir: dir, seed: 1, stepsScale: 0.04, onEvent: (e) => events.push(e) });
}, 240_000);

afterAll(async () => {
  shutdown();
  await rm(dir, { recursive: true, force: true });
});

it('compares the four methods with ShareLoRA training fewer parameters and less optimizer state', () => {
  const by = Object.fromEntries(result.rows.map((r) => [r.method, r]));
  expect(Object.keys(by)).toEqual(['lora', 'share-a', 'share-b', 'share-ab']);
  const { lora, 'share-a': shareA, 'share-b': shareB, 'share-ab': shareAB } = by;
  expect(shareA.trainable).toBeLessThan(lora.trainable);
  expect(shareA.optimizerBytes).toBeLessThan(lora.optimizerBytes);
  for (const r of [lora, shareA, shareB]) {
    expect(shareAB.trainable).toBeLessThan(r.trainable);
    expect(shareAB.optimizerBytes).toBeLessThan(r.optimizerBytes);
  }
  for (const r of result.rows) {
    // AdamW keeps two f32 tensors per trainable parameter.
    expect(r.optimizerBytes).toBe(8 * r.trainable);
    expect(r.peakBytes).toBeGreaterThan(r.optimizerBytes);
    expect(r.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.accuracy).toBeLessThanOrEqual(1);
    expect(Number.isFinite(r.valLoss)).toBe(true);
    expect(r.curve).toHaveLength(r.steps);
    expect(r.msPerStep).toBeGreaterThan(0);
  }
  expect(lora.reduction).toBe(0);
  // Same rank, seed and data: the parameter counts follow the paper's formulas for q/v on 4 layers
  // (d_model 64; v_proj outputs 32 under grouped-query attention).
  const r = result.adapter.r;
  expect(lora.trainable).toBe(4 * r * (64 + 64) + 4 * r * (64 + 32));
  expect(shareA.trainable).toBe(r * 64 + 4 * r * 64 + (r * 64 + 4 * r * 32));
  expect(shareAB.trainable).toBe(r * (64 + 64) + r * (64 + 32));
});

it('writes a self-contained HTML report, results.json and the base model', async () => {
  const html = await readFile(join(dir, 'report.html'), 'utf8');
  expect(html).toContain('<svg');
  expect(html).not.toMatch(/<script|<link|src=|href=/);
  const saved = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8'));
  expect(saved.rows.map((r: { method: string }) => r.method)).toEqual([
    'lora',
    'share-a',
    'share-b',
    'share-ab',
  ]);
  expect(existsSync(join(dir, 'base', 'config.json'))).toBe(true);
  for (const m of ['lora', 'share-a', 'share-b', 'share-ab'])
    expect(existsSync(join(dir, m, 'adapter_config.json'))).toBe(true);
});

it('reports progress per phase and a printable table', () => {
  const ends = events.filter((e) => e.type === 'end').map((e) => e.phase);
  expect(ends).toEqual(['pretrain', 'lora', 'share-a', 'share-b', 'share-ab']);
  const table = formatQuickstartTable(result);
  expect(table.split('\n')).toHaveLength(5);
  expect(table).toMatch(/^ShareAB\s/m);
});

it('draws loss curves as static SVG: one line per series in its colour, a legend, a log loss axis', async () => {
  const html = await lossChart('Two runs', [
    { name: 'first', color: '#1f77b4', points: [1, 2, 3, 4].map((step) => ({ step, loss: 4 / step })) },
    {
      name: 'second',
      color: '#ff7f0e',
      points: [2, 4].map((step) => ({ step, loss: 3 / step })),
      dashed: true,
    },
  ]);
  expect(html).toMatch(/^<figure/);
  expect(html).toContain('<svg');
  expect(html).not.toMatch(/<script|<link|src=|href=/);
  for (const text of ['Two runs', 'first', 'second', 'optimizer step', 'loss (log scale)'])
    expect(html).toContain(text);
  // Plot puts a line mark's styles on its group: one group (with one path) per series.
  const lines = [...html.matchAll(/<g [^>]*aria-label="line"[^>]*><path /g)].map((m) => m[0]);
  expect(lines).toHaveLength(2);
  expect(lines.filter((g) => g.includes('stroke="#1f77b4"'))).toHaveLength(1);
  const second = lines.filter((g) => g.includes('stroke="#ff7f0e"'));
  expect(second).toHaveLength(1);
  expect(second[0]).toContain('stroke-dasharray="4 3"');
  // The dashed (sparse) series also marks its points.
  expect(html.match(/<circle/g)?.length).toBe(2);
  // Nothing to draw: no chart.
  expect(await lossChart('empty', [{ name: 'x', color: '#000', points: [{ step: 1, loss: 0 }] }])).toBe('');
});
