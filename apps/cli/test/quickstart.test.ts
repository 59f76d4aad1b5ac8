import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-quickstart-cli-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

interface Row {
  method: string;
  trainable: number;
  optimizerBytes: number;
  peakBytes: number;
  accuracy: number;
  valLoss: number;
}

it('sharelora quickstart --json runs a smoke-sized comparison and prints only JSON', async () => {
  // Relative --out, as a user types it: resolved against the working directory.
  const r = runCli(['quickstart', '--steps-scale', '0.04', '--seed', '2', '--out', 'qs', '--json'], {
    cwd: tmp,
  });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout);
  const rows = out.rows as Row[];
  expect(rows.map((x) => x.method)).toEqual(['lora', 'share-a', 'share-b', 'share-ab']);
  const [lora, shareA, shareB, shareAB] = rows;
  expect(shareA.trainable).toBeLessThan(lora.trainable);
  expect(shareA.optimizerBytes).toBeLessThan(lora.optimizerBytes);
  expect(shareAB.trainable).toBeLessThan(Math.min(lora.trainable, shareA.trainable, shareB.trainable));
  for (const x of rows) {
    expect(x.accuracy).toBeGreaterThanOrEqual(0);
    expect(x.accuracy).toBeLessThanOrEqual(1);
    expect(Number.isFinite(x.valLoss)).toBe(true);
  }
  expect(out.seed).toBe(2);
  expect(out.files.report).toBe(join(tmp, 'qs', 'report.html'));
  expect(await readFile(out.files.report, 'utf8')).toContain('<svg');
  expect(existsSync(join(tmp, 'qs', 'results.json'))).toBe(true);
  // Without a terminal, one line per phase on stderr.
  const phases = r.stderr.split('\n').filter((l) => /^\[\d\/5\] /.test(l));
  expect(phases).toHaveLength(5);
});

it('rejects bad flags with exit code 2 and names the flag', () => {
  const zero = runCli(['quickstart', '--steps-scale', '0', '--out', join(tmp, 'bad')]);
  expect(zero.status).toBe(2);
  expect(zero.stderr).toMatch(/--steps-scale must be a number > 0/);
  const seed = runCli(['quickstart', '--seed', '-1', '--out', join(tmp, 'bad')]);
  expect(seed.status).toBe(2);
  expect(seed.stderr).toMatch(/--seed/);
  expect(runCli(['quickstart', '--bogus']).status).toBe(2);
  expect(existsSync(join(tmp, 'bad'))).toBe(false);
  const help = runCli(['quickstart', '--help']);
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('--steps-scale');
});
