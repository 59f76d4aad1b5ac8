/**
 * `sharelora experiment` on the shipped tiny grid (examples/experiments/tiny): a full run and its
 * report; the same grid killed (SIGKILL, the whole process group) in the middle of a cell's training
 * and run again, which must give the same report; a failing cell beside good ones; cell selection;
 * a dry run; and a malformed file.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyGrid, reportWithoutTiming } from './experiment-grid.js';
import { BIN, runCli } from './run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'experiment-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const output = (file: string) => file.replace(/\.yaml$/, '-runs');

/** Whether a process has exited (a zombie counts as exited). */
function gone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

const cellRecords = (file: string) =>
  readdirSync(join(output(file), 'cells')).map((id) =>
    JSON.parse(readFileSync(join(output(file), 'cells', id, 'cell.json'), 'utf8')),
  );

describe('sharelora experiment', () => {
  const whole = copyGrid(root, 'whole');
  let uninterrupted: unknown;

  it('runs every cell and reports mean ± std per method', () => {
    const r = runCli(['experiment', 'run', whole]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('4 cells complete');
    const records = cellRecords(whole);
    expect(records.map((c) => c.status)).toEqual(['complete', 'complete', 'complete', 'complete']);
    for (const c of records) {
      expect(c.versions.node).toBe(process.version);
      expect(c.train.steps).toBe(40);
      // The held-out loss is train's own --eval-data figure, recorded as train printed it.
      const doc = JSON.parse(readFileSync(join(output(whole), 'cells', c.id, 'train-result.json'), 'utf8'));
      expect(c.train.heldOutLoss).toBe(doc.evalData.loss);
    }
    uninterrupted = reportWithoutTiming(whole);
    const md = readFileSync(join(output(whole), 'report', 'report.md'), 'utf8');
    expect(md).toMatch(/\| tiny-llama \| lora \| 2\/2 \| \d\.\d+ ± \d/);
    expect(md).toMatch(/\| tiny-llama \| share-a \| 2\/2 \|/);
    // The mean in the table is the mean of the two seeds' records.
    const lora = records.filter((c) => c.method === 'lora').map((c) => c.train.heldOutLoss);
    const row = (
      uninterrupted as { rows: Array<{ method: string; metrics: Record<string, { mean: number }> }> }
    ).rows[0];
    expect(row.method).toBe('lora');
    expect(row.metrics['held-out loss'].mean).toBeCloseTo((lora[0] + lora[1]) / 2, 12);
    const html = readFileSync(join(output(whole), 'report', 'report.html'), 'utf8');
    expect(html).toContain('<td>tiny-llama</td><td>lora</td><td>2/2</td>');
    // Two charts: held-out loss against trainable parameters, and the loss curves.
    expect(html.match(/<svg/g)?.length).toBeGreaterThanOrEqual(2);
    expect(html).toContain('held-out loss against trainable parameters');
    const curves = (uninterrupted as { curves: Array<{ method: string; points: unknown[] }> }).curves;
    expect(curves.map((c) => [c.method, c.points.length])).toEqual([
      ['lora', 40],
      ['share-a', 40],
    ]);
    const csv = readFileSync(join(output(whole), 'report', 'report.csv'), 'utf8');
    expect(csv.split('\n')[0]).toMatch(/^dataset,model,method,cells,complete,failed,held-out loss_mean/);
  });

  it('skips complete cells on a second run', () => {
    const r = runCli(['experiment', 'run', whole]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.match(/complete, skipped/g)).toHaveLength(4);
    expect(cellRecords(whole).every((c) => c.attempts === 1)).toBe(true);
  });

  it('killed in the middle of a cell, resumes to the same report', async () => {
    const file = copyGrid(root, 'killed');
    const cells = join(output(file), 'cells');
    // Its own process group, so that SIGKILL takes the runner and the training child at once.
    const child = spawn(process.execPath, [BIN, 'experiment', 'run', file], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    const exited = new Promise((done) => child.on('exit', done));
    // Wait for the second cell's first checkpoint: one cell done, one half trained.
    const deadline = Date.now() + 120_000;
    let killedIn: string | undefined;
    while (!killedIn && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      if (!existsSync(cells)) continue;
      for (const id of readdirSync(cells)) {
        const train = join(cells, id, 'train');
        if (
          existsSync(train) &&
          readdirSync(train).some((f) => /^checkpoint-\d+$/.test(f)) &&
          !existsSync(join(cells, id, 'train-result.json')) &&
          readdirSync(cells).length === 2
        )
          killedIn = id;
      }
    }
    expect(killedIn, 'no cell reached a checkpoint').toBeDefined();
    process.kill(-(child.pid as number), 'SIGKILL');
    await exited;
    // The training child got the SIGKILL too; wait until it has gone (its lock is then stale).
    const lock = JSON.parse(
      readFileSync(join(cells, killedIn as string, 'train', '.sharelora.lock'), 'utf8'),
    );
    while (Date.now() < deadline && gone(lock.pid) === false) await new Promise((r) => setTimeout(r, 20));
    const record = JSON.parse(readFileSync(join(cells, killedIn as string, 'cell.json'), 'utf8'));
    expect(record.status).toBe('running');

    const r = runCli(['experiment', 'run', file]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/complete, skipped/);
    expect(r.stderr).toMatch(/resuming \(attempt 2\)/);
    const resumed = JSON.parse(readFileSync(join(cells, killedIn as string, 'cell.json'), 'utf8'));
    expect(resumed.attempts).toBe(2);
    const doc = JSON.parse(readFileSync(join(cells, killedIn as string, 'train-result.json'), 'utf8'));
    expect(doc.resumedFrom).toBeGreaterThan(0);
    expect(reportWithoutTiming(file)).toEqual(uninterrupted);
  });

  it('records a failing cell and runs the others', () => {
    const file = copyGrid(root, 'failing', (y) =>
      y.replace(
        'share-a: { method: share-a, rank: 4, alpha: 8 }',
        'share-a: { method: share-a, rank: 4, alpha: 8, targets: [nonexistent_proj] }',
      ),
    );
    const r = runCli(['experiment', 'run', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('2 cells complete, 2 failed');
    const failed = cellRecords(file).filter((c) => c.status === 'failed');
    expect(failed.map((c) => c.method)).toEqual(['share-a', 'share-a']);
    expect(failed[0].error).toMatch(/sharelora train exited with 2: .*nonexistent_proj/s);
    const report = runCli(['experiment', 'report', file]);
    expect(report.stdout).toContain('| tiny-llama | share-a | 0/2 (2 failed) |');
    expect(report.stdout).toMatch(
      /## Failed cells\n\n- tiny-llama\/addition\/share-a\/seed-0 \([0-9a-f]{12}\): sharelora train exited/,
    );
  });

  it('runs only the cells asked for, by index or name', () => {
    const file = copyGrid(root, 'selected');
    const r = runCli(['experiment', 'run', file, '--cells', '3,tiny-llama/addition/lora/seed-0', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).cells.map((c: { name: string }) => c.name)).toEqual([
      'tiny-llama/addition/share-a/seed-1',
      'tiny-llama/addition/lora/seed-0',
    ]);
    expect(readdirSync(join(output(file), 'cells'))).toHaveLength(2);
    const report = JSON.parse(runCli(['experiment', 'report', file, '--json']).stdout);
    expect(report.pending).toEqual(['tiny-llama/addition/lora/seed-1', 'tiny-llama/addition/share-a/seed-0']);
    const bad = runCli(['experiment', 'run', file, '--cells', '7']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--cells: no cell "7"');
  });

  it('--dry-run lists the cells with estimates and writes nothing', () => {
    const file = copyGrid(root, 'dry');
    const r = runCli(['experiment', 'run', file, '--dry-run', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.cells).toHaveLength(4);
    for (const c of doc.cells) {
      expect(c.status).toBe('not run');
      expect(c.seconds).toBeGreaterThan(0);
      expect(c.peakBytes).toBeGreaterThan(0);
    }
    expect(existsSync(output(file))).toBe(false);
  });

  it('a sequence trains one adapter on each dataset in turn and reports the forgetting table', () => {
    const file = join(dirname(copyGrid(root, 'continual')), 'continual.yaml');
    const r = runCli(['experiment', 'run', file]);
    expect(r.status, r.stderr).toBe(0);
    const runs = file.replace(/\.yaml$/, '-runs');
    const records = readdirSync(join(runs, 'cells')).map((id) =>
      JSON.parse(readFileSync(join(runs, 'cells', id, 'cell.json'), 'utf8')),
    );
    expect(
      records.map((c) => [c.method, c.stages.map((s: { dataset: string }) => s.dataset)]).sort(),
    ).toEqual([
      ['lora', ['addition', 'subtraction']],
      ['share-a', ['addition', 'subtraction']],
    ]);
    for (const c of records) {
      const dir = join(runs, 'cells', c.id);
      // Stage 2 went on from stage 1's adapter, with its settings.
      const config = JSON.parse(readFileSync(join(dir, 'stage-2-subtraction-config.json'), 'utf8'));
      expect(config.adapter).toBe(join(dir, 'stage-1-addition'));
      expect(config.method).toBeUndefined();
      // Two code paths agree: eval --task loss after stage 1 and train's own --eval-data score.
      const stage1 = JSON.parse(readFileSync(join(dir, 'stage-1-addition-result.json'), 'utf8'));
      expect(c.stages[0].heldOut.addition).toBeCloseTo(stage1.evalData.loss, 5);
      const stage2 = JSON.parse(readFileSync(join(dir, 'stage-2-subtraction-result.json'), 'utf8'));
      expect(c.stages[1].heldOut.subtraction).toBeCloseTo(stage2.evalData.loss, 5);
      expect(stage2.adapter.method).toBe(c.method);
    }
    const report = JSON.parse(runCli(['experiment', 'report', file, '--json']).stdout);
    expect(report.rows).toEqual([]);
    const lora = report.continual.find((t: { method: string }) => t.method === 'lora');
    const rec = records.find((c) => c.method === 'lora');
    expect(lora.forgetting.addition.mean).toBeCloseTo(
      rec.stages[1].heldOut.addition - rec.stages[0].heldOut.addition,
      12,
    );
    expect(runCli(['experiment', 'report', file]).stdout).toContain(
      '## Continual: add-then-subtract (tiny-llama, lora, 1/1 seeds)',
    );
  });

  it('a malformed file is a usage error naming the key', () => {
    const file = copyGrid(root, 'malformed', (y) =>
      y.replace('batch-size: 8', 'batch_size: 8').replace('rank: 4', 'rank: 0'),
    );
    const r = runCli(['experiment', 'run', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/methods\.lora\.rank: /);
    expect(r.stderr).toMatch(/training: Unrecognized key: "batch_size" \(training keys are/);
    const missing = copyGrid(root, 'missing-data', (y) =>
      y.replace('train: addition-train.jsonl', 'train: nope.jsonl'),
    );
    const m = runCli(['experiment', 'run', missing]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/datasets\.addition\.train: .*nope\.jsonl does not exist/);
  });

  it("an evaluation's task and flags are checked as eval reads them, before any training", () => {
    const cases: [string, RegExp][] = [
      ['{ task: squad, data: x }', /evaluations\[0\]\.task: unknown task "squad" \(one of gsm8k, /],
      ['{ task: gsm8k, data: x, samples: 4 }', /evaluations\[0\]\.samples: not an option of task gsm8k \(/],
      [
        '{ task: loss, data: x, format: text, max-length: -3 }',
        /evaluations\[0\]\.max-length: --max-length must be a positive integer, got "-3"/,
      ],
      [
        '{ task: mmlu, data: x, mmlu-scoring: vibes }',
        /evaluations\[0\]\.mmlu-scoring: --mmlu-scoring must be one of loglikelihood, letter-logits/,
      ],
    ];
    for (const [evaluation, pattern] of cases) {
      const file = copyGrid(root, 'bad-eval', (y) => `${y}evaluations:\n  - ${evaluation}\n`);
      const r = runCli(['experiment', 'run', file]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(existsSync(join(dirname(file), 'experiment-runs')), 'nothing ran').toBe(false);
    }
    const fine = copyGrid(
      root,
      'good-eval',
      (y) =>
        `${y}evaluations:\n  - { task: loss, data: addition-test.jsonl, format: prompt-completion, limit: 4 }\n`,
    );
    const d = runCli(['experiment', 'run', fine, '--dry-run']);
    expect(d.status, d.stderr).toBe(0);
  });
});
