/**
 * Progress looks the same in every command: outside a terminal as plain lines (eval's scoring as
 * train's steps), and on a real pseudo-terminal (util-linux `script`) as a live bar redrawn in place
 * that is cleared before the results are printed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from './run-cli.js';

let tmp = '';
const at = (...p: string[]) => join(tmp, ...p);

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-progress-'));
  expect(runCli(['init', '--arch', 'gpt2', '--preset', 'tiny', '--out', at('gpt2')]).status).toBe(0);
  const texts = Array.from({ length: 24 }, (_, i) => JSON.stringify({ text: `story ${i}: the cat sat.` }));
  await writeFile(at('texts.jsonl'), texts.join('\n'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const lossEval = (out: string) => [
  'eval',
  ...['--task', 'loss', '--model', at('gpt2'), '--data', at('texts.jsonl'), '--format', 'text'],
  ...['--out', at(out)],
];

describe('progress', () => {
  it("eval's plain lines look like train's: label, bar, count and unit, rate, ETA", () => {
    process.env.SHARELORA_PROGRESS_SECONDS = '0';
    try {
      const r = runCli(lossEval('plain.json'));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.includes('\r') || r.stderr.includes('\u001b')).toBe(false);
      expect(r.stderr).toMatch(/^load \S+ \[=+ *\] [0-9.]+ (bytes|KiB|MiB)\/[0-9.]+ (bytes|KiB|MiB) {2}/m);
      expect(r.stderr).toMatch(
        /^loss score \[=+\] 24\/24 examples {2}[0-9.]+ (examples\/s|s\/example) {2}ETA 0s$/m,
      );
    } finally {
      delete process.env.SHARELORA_PROGRESS_SECONDS;
    }
  });

  it('on a terminal the bar is redrawn in place and cleared before the results', () => {
    const command = [process.execPath, BIN, ...lossEval('tty.json')].map((a) => `'${a}'`).join(' ');
    // script gives the command a pseudo-terminal for stdin, stdout and stderr; -e passes its status on.
    const r = spawnSync('script', ['-qefc', command, '/dev/null'], {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    expect(r.status, r.stdout).toBe(0);
    const ESC = '\u001b';
    const out = r.stdout;
    // Redrawn: the bar's text follows a carriage return or cursor move, never a newline of its own.
    expect(out).toMatch(new RegExp(`(\\r|${ESC}\\[\\d*G)loss score \\[[= ]+\\] \\d+/24 examples`));
    expect(out).not.toMatch(/\nloss score \[/);
    // Cleared before the results: the line is erased, then the summary table starts on it.
    expect(out).toContain(`${ESC}[2Ktask `);
  });
});
