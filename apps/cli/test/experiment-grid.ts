/** The shipped tiny grid copied into a temporary folder, and its report as a test compares it. */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { runCli } from './run-cli.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/experiments/tiny/', import.meta.url));

/** A fresh copy of examples/experiments/tiny in root/name (its outputs left out); returns its experiment.yaml. */
export function copyGrid(root: string, name: string, edit?: (yaml: string) => string): string {
  const dir = join(root, name);
  cpSync(EXAMPLE, dir, { recursive: true, filter: (src) => !src.includes('-runs') });
  const file = join(dir, 'experiment.yaml');
  if (edit) writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return file;
}

/** The report without wall-clock figures: what must not depend on how the run went. */
export function reportWithoutTiming(file: string): unknown {
  const r = runCli(['experiment', 'report', file, '--json']);
  expect(r.status, r.stderr).toBe(0);
  const report = JSON.parse(r.stdout);
  for (const row of report.rows) delete row.timing;
  return report;
}
