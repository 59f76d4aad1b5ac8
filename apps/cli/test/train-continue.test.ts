/** `sharelora train --adapter DIR`: going on training an adapter (continual fine-tuning). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const DATA = fileURLToPath(
  new URL('../../../examples/experiments/tiny/addition-train.jsonl', import.meta.url),
);
const tmp = mkdtempSync(join(tmpdir(), 'train-continue-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const base = ['--model', join(tmp, 'model'), '--data', DATA, '--format', 'prompt-completion', '--json'];
function train(args: string[]) {
  const r = runCli(['train', ...base, ...args]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('train --adapter', () => {
  beforeAll(() => {
    expect(runCli(['init', '--arch', 'llama', '--preset', 'tiny', '--out', join(tmp, 'model')]).status).toBe(
      0,
    );
  });

  it('loads the adapter as it was saved and trains it further', () => {
    const first = train([
      '--method',
      'share-a',
      '--rank',
      '4',
      '--alpha',
      '8',
      '--steps',
      '12',
      '--lr',
      '0.01',
      '--out',
      join(tmp, 'first'),
    ]);
    // Zero steps: the continued adapter untouched, scored on the same validation split (same seed).
    const loaded = train(['--adapter', join(tmp, 'first'), '--steps', '0', '--out', join(tmp, 'loaded')]);
    expect(loaded.adapter).toMatchObject({ method: 'share-a', r: 4, alpha: 8 });
    expect(loaded.report.params.trainable).toBe(first.report.params.trainable);
    expect(loaded.bestValLoss).toBeCloseTo(first.evals.at(-1).valLoss, 5);
    const more = train([
      '--adapter',
      join(tmp, 'first'),
      '--steps',
      '12',
      '--lr',
      '0.01',
      '--out',
      join(tmp, 'more'),
    ]);
    expect(more.bestValLoss).toBeLessThan(first.evals.at(-1).valLoss);
  });

  it("refuses settings that are the adapter's own, and a missing adapter", () => {
    const r = runCli([
      'train',
      ...base,
      '--adapter',
      join(tmp, 'first'),
      '--rank',
      '8',
      '--out',
      join(tmp, 'x'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--rank does not go with --adapter (the adapter's own settings apply)");
    const missing = runCli(['train', ...base, '--adapter', join(tmp, 'nope'), '--out', join(tmp, 'y')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/nope.*adapter_config\.json/);
  });
});
