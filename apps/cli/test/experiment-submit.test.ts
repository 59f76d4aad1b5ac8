/**
 * `sharelora experiment submit`: the tiny grid through a real Slurm cluster (the one-node cluster
 * scripts/slurm-local.sh starts; CI starts it as root) must give the report a local run gives; the
 * Kubernetes manifest it writes (its schema is checked in @sharelora/experiment's tests).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { copyGrid, reportWithoutTiming } from './experiment-grid.js';
import { runCli } from './run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'experiment-submit-'));
const DATA =
  process.env.SHARELORA_DATA ?? resolve(fileURLToPath(new URL('../../../../shared/data', import.meta.url)));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const sinfo = spawnSync('sinfo', ['-h', '-o', '%T'], { encoding: 'utf8', timeout: 10_000 });
const haveSlurm = sinfo.status === 0 && /idle|mixed|allocated/.test(sinfo.stdout);
if (!haveSlurm)
  console.warn(
    'experiment-submit.test: no Slurm cluster here; start one with: sudo bash scripts/slurm-local.sh start',
  );

describe('sharelora experiment submit', () => {
  it.runIf(process.env.CI === 'true')('CI has the local Slurm cluster', () => {
    expect(haveSlurm, 'bash scripts/slurm-local.sh start (as root) did not leave a cluster up').toBe(true);
  });

  it.runIf(haveSlurm)('--slurm runs the grid as an array job to the report a local run gives', () => {
    const local = copyGrid(root, 'local');
    expect(runCli(['experiment', 'run', local]).status).toBe(0);
    const file = copyGrid(root, 'slurm');
    const r = runCli(['experiment', 'submit', file, '--slurm', '--wait', '--time', '10:00']);
    expect(r.status, r.stderr).toBe(0);
    const job = /submitted job (\d+): 4 array tasks/.exec(r.stdout)?.[1];
    expect(job, r.stdout).toBeDefined();
    const slurmDir = join(file.replace(/\.yaml$/, '-runs'), 'slurm');
    expect(
      readdirSync(slurmDir)
        .filter((f) => f.endsWith('.log'))
        .sort(),
    ).toEqual([0, 1, 2, 3].map((i) => `${job}_${i}.log`));
    // Task 2's log is cell 2's run.
    expect(readFileSync(join(slurmDir, `${job}_2.log`), 'utf8')).toMatch(
      /\[1\/1\] tiny-llama\/addition\/share-a\/seed-0/,
    );
    expect(reportWithoutTiming(file)).toEqual(reportWithoutTiming(local));
    const again = runCli(['experiment', 'submit', file, '--slurm']);
    expect(again.stdout).toContain('all 4 selected cells complete; nothing to submit');
  });

  it('a sharded evaluation: shard tasks and a merge give the unsharded scores; Slurm runs them as dependent jobs', () => {
    const sharded = (name: string, shards?: number) =>
      copyGrid(root, name, (y) =>
        y
          .replace('  share-a: { method: share-a, rank: 4, alpha: 8 }\n', '')
          .replace('steps: 40', 'steps: 4')
          .replace('seeds: [0, 1]', 'seeds: [0]')
          .concat(
            `evaluations:\n  - { task: gsm8k, data: ${join(DATA, 'gsm8k')}, limit: 6, shots: 1, max-new-tokens: 4` +
              `${shards ? `, shards: ${shards}` : ''} }\n`,
          ),
      );
    const evals = (file: string) => {
      const report = reportWithoutTiming(file) as { rows: Array<{ metrics: Record<string, unknown> }> };
      return report.rows.map((r) => Object.entries(r.metrics).filter(([k]) => k.startsWith('gsm8k.')));
    };
    const whole = sharded('whole');
    expect(runCli(['experiment', 'run', whole]).status).toBe(0);

    // What the Slurm jobs do, by hand: train with the shards deferred, each shard, then the merge.
    const byHand = sharded('by-hand', 3);
    const deferred = runCli(['experiment', 'run', byHand, '--defer-shards']);
    expect(deferred.status, deferred.stderr).toBe(0);
    expect(deferred.stderr).toContain('evaluation shards pending');
    for (const k of [2, 0, 1])
      expect(runCli(['experiment', 'run', byHand, '--cells', '0', '--eval-shard', String(k)]).status).toBe(0);
    const shardFiles = readdirSync(join(byHand.replace(/\.yaml$/, '-runs'), 'cells'), {
      recursive: true,
    }).filter((f) => /shard-\d-of-3\.json$/.test(String(f)));
    expect(shardFiles).toHaveLength(3);
    const merged = runCli(['experiment', 'run', byHand]);
    expect(merged.status, merged.stderr).toBe(0);
    expect(evals(byHand)).toEqual(evals(whole));
    expect(evals(whole)[0].length).toBeGreaterThan(0);

    if (!haveSlurm) return;
    const file = sharded('slurm-sharded', 2);
    const r = runCli(['experiment', 'submit', file, '--slurm', '--wait', '--time', '10:00']);
    expect(r.status, r.stderr).toBe(0);
    // Training (1 task), then the shards (2 tasks), then the merge (1 task).
    expect(r.stdout.match(/submitted job \d+: (\d+) array tasks?/g)).toEqual([
      expect.stringMatching(/: 1 array task$/),
      expect.stringMatching(/: 2 array tasks$/),
      expect.stringMatching(/: 1 array task$/),
    ]);
    expect(evals(file)).toEqual(evals(whole));
  });

  it('--slurm --dry-run writes the script for the cells not complete', () => {
    const file = copyGrid(root, 'dry');
    expect(runCli(['experiment', 'run', file, '--cells', '1']).status).toBe(0);
    const r = runCli([
      'experiment',
      'submit',
      file,
      '--slurm',
      '--dry-run',
      '--partition',
      'gpu',
      '--max-parallel',
      '2',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const script = readFileSync(
      join(file.replace(/\.yaml$/, '-runs'), 'slurm', 'tiny-addition.sbatch'),
      'utf8',
    );
    expect(script).toContain('#SBATCH --array=0,2-3%2\n');
    expect(script).toContain('#SBATCH --partition=gpu\n');
    expect(script).toMatch(/experiment run \S+experiment\.yaml --cells "\$SLURM_ARRAY_TASK_ID"\n$/);
    // The models are built before the tasks start, so that they do not race to build them.
    expect(existsSync(join(file.replace(/\.yaml$/, '-runs'), 'models', 'tiny-llama', 'config.json'))).toBe(
      true,
    );
  });

  it('--emit k8s writes an Indexed Job over every cell', () => {
    const file = copyGrid(root, 'k8s');
    const missing = runCli(['experiment', 'submit', file, '--emit', 'k8s']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--emit k8s needs --image');
    const r = runCli([
      'experiment',
      'submit',
      file,
      '--emit',
      'k8s',
      '--image',
      'example/sharelora:0.1',
      '--pvc',
      'exp',
      '--mount',
      root,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const yaml = readFileSync(
      join(file.replace(/\.yaml$/, '-runs'), 'k8s', 'tiny-addition-job.yaml'),
      'utf8',
    );
    expect(yaml).toContain('completionMode: Indexed');
    expect(yaml).toContain('completions: 4');
    expect(yaml).toContain('claimName: exp');
    expect(yaml).toContain(file);
    expect(r.stdout).toContain('kubectl apply -f');
  });

  it('refuses a submit without a scheduler, or with both', () => {
    const file = copyGrid(root, 'usage');
    expect(runCli(['experiment', 'submit', file]).stderr).toContain('give one of --slurm and --emit k8s');
    expect(runCli(['experiment', 'submit', file, '--slurm', '--emit', 'k8s']).status).toBe(2);
  });
});
