/**
 * Locates the real datasets (../shared/data beside the repository, or $SHARELORA_DATA). Missing data
 * fails under CI=true and skips loudly elsewhere (a fresh clone has no data).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

export const DATA_DIR = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');

/** True when `sub` exists under the data folder; otherwise throws under CI or warns and returns false. */
export function hasData(sub: string): boolean {
  const path = resolve(DATA_DIR, sub);
  if (existsSync(path)) return true;
  if (process.env.CI === 'true') {
    throw new Error(`real data missing at ${path} (set SHARELORA_DATA); CI=true makes this an error`);
  }
  console.warn(`\n[SKIPPED] real data missing at ${path}: set SHARELORA_DATA to run these tests\n`);
  return false;
}

export const dataPath = (...parts: string[]) => resolve(DATA_DIR, ...parts);

/** Runs a Python 3 snippet (stdin: `input`) and parses its stdout as JSON; null when python3 is absent. */
export function python(code: string, input = ''): unknown {
  const r = spawnSync('python3', ['-c', code], { input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return null;
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** True when python3 runs; like hasData, an error under CI=true and a loud skip elsewhere. */
export function hasPython(): boolean {
  const r = spawnSync('python3', ['-c', 'pass']);
  if (r.status === 0) return true;
  if (process.env.CI === 'true')
    throw new Error('python3 is required (HumanEval execution, reference values)');
  console.warn('\n[SKIPPED] python3 not found: HumanEval and Python-reference tests are skipped\n');
  return false;
}
