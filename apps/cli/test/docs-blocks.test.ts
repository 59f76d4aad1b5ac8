/**
 * The guides' shell blocks run as written. Every ```sh block of the README and docs/*.md runs, guide
 * by guide in the order below, in one scratch folder: `pnpm sharelora` and a bare `sharelora` are
 * this build's CLI, `../shared/data` is the shared data folder, `/tmp/` is inside the scratch folder,
 * and `scripts/` and `examples/` are the repository's. A block that cannot run here (a checkpoint
 * the machine does not have, minutes of benchmarking, the set-up CI itself does) is preceded by
 * `<!-- not run: REASON -->`; nothing else is skipped, so a new block runs unless it says why not.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');
const have = existsSync(join(DATA, 'stories260K/stories260K.bin')) || process.env.CI === 'true';

/** Guides in the order their blocks build on each other (evaluation scores training's adapter). */
const ORDER = [
  'README.md',
  'docs/getting-started.md',
  'docs/quickstart.md',
  'docs/training.md',
  'docs/evaluation.md',
  'docs/models.md',
  'docs/sharelora.md',
  'docs/quantized-fine-tuning.md',
  'docs/experiments.md',
  'docs/benchmarks.md',
];

interface Block {
  file: string;
  line: number;
  body: string;
  /** Why it is not run, from the `<!-- not run: ... -->` line before it. */
  notRun?: string;
}

function blocks(file: string): Block[] {
  const lines = readFileSync(join(repoRoot, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(sh|bash|shell)\s*$/.test(lines[i])) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    const marker = /^<!-- not run: (.+?) -->$/.exec(lines[before] ?? '');
    out.push({ file, line: i + 1, body: lines.slice(i + 1, end).join('\n'), notRun: marker?.[1] });
    i = end;
  }
  return out;
}

const scratch = mkdtempSync(join(tmpdir(), 'sharelora-docs-blocks-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A block as the scratch folder runs it. */
function script(body: string): string {
  const text = body
    .replaceAll('pnpm sharelora', 'sharelora')
    .replaceAll('../shared/data', DATA)
    .replace(/(^|[\s'"=])\/tmp\//g, `$1${scratch}/tmp/`);
  return `set -euo pipefail\nsharelora() { ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"; }\n${text}\n`;
}

describe.runIf(have)('the guides’ shell blocks', () => {
  const all = ORDER.flatMap(blocks);

  it('every guide is listed, and every block either runs or says why not', () => {
    const guides = readdirSync(join(repoRoot, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`);
    const unlisted = guides.filter((g) => !ORDER.includes(g) && blocks(g).length > 0);
    expect(unlisted, 'add these guides to ORDER').toEqual([]);
    expect(all.filter((b) => !b.notRun).length).toBeGreaterThan(10);
  });

  it('run as written', () => {
    mkdirSync(join(scratch, 'tmp'), { recursive: true });
    for (const dir of ['scripts', 'examples']) symlinkSync(join(repoRoot, dir), join(scratch, dir));
    for (const b of all) {
      if (b.notRun) continue;
      const r = spawnSync('bash', ['-c', script(b.body)], {
        cwd: scratch,
        encoding: 'utf8',
        timeout: 600_000,
        env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      });
      expect(r.status, `${b.file}:${b.line}\n${b.body}\n--- stderr:\n${r.stderr.slice(-3000)}`).toBe(0);
    }
  }, 1_800_000);
});
