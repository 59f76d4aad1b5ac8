import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  dnsLabel,
  k8sIndexedJob,
  k8sIndexedJobYaml,
  shellQuote,
  slurmArray,
  slurmScript,
} from '../src/index.js';

describe('Slurm array jobs', () => {
  it('compress cell indices into ranges, with the parallel limit', () => {
    expect(slurmArray([0, 1, 2, 3])).toBe('0-3');
    expect(slurmArray([5, 0, 2, 3, 1, 9, 10])).toBe('0-3,5,9-10');
    expect(slurmArray([4], 2)).toBe('4%2');
  });

  it('quote words so that bash reads them back unchanged', () => {
    const words = ['plain', "it's", 'two words', '$HOME', 'a"b', '`x`', '*', ''];
    const r = spawnSync('bash', ['-c', `printf '%s\\n' ${words.map(shellQuote).join(' ')}`], {
      encoding: 'utf8',
    });
    expect(r.stdout.split('\n').slice(0, -1)).toEqual(words);
  });

  it('write one task per cell, running that cell', () => {
    const script = slurmScript({
      jobName: 'sharelora-grid',
      indices: [0, 1, 3],
      command: ['/usr/bin/node', '/opt/my tools/bin.js'],
      file: '/shared/exp.yaml',
      logDir: '/shared/exp-runs/slurm',
      partition: 'gpu',
      gpusPerTask: 1,
      time: '2:00:00',
      maxParallel: 2,
      extra: ['--account=lab'],
    });
    expect(script.split('\n')).toEqual([
      '#!/bin/bash',
      '#SBATCH --job-name=sharelora-grid',
      '#SBATCH --array=0-1,3%2',
      '#SBATCH --output=/shared/exp-runs/slurm/%A_%a.log',
      '#SBATCH --partition=gpu',
      '#SBATCH --gpus-per-task=1',
      '#SBATCH --time=2:00:00',
      '#SBATCH --account=lab',
      '# Written by sharelora experiment submit: task i runs cell i of the experiment.',
      'set -euo pipefail',
      `exec /usr/bin/node '/opt/my tools/bin.js' experiment run /shared/exp.yaml --cells "$SLURM_ARRAY_TASK_ID"`,
      '',
    ]);
    expect(spawnSync('bash', ['-n'], { input: script }).status).toBe(0);
  });
});

describe('Kubernetes Indexed Jobs', () => {
  const options = {
    name: 'Paper_Grid',
    cells: 24,
    image: 'ghcr.io/example/sharelora:0.1',
    file: '/experiment/grid.yaml',
    parallelism: 4,
    gpus: 1,
    volumeClaim: 'experiments',
    mountPath: '/experiment',
  };

  it('validate against the batch/v1 Job schema', () => {
    const manifest = k8sIndexedJob(options);
    expect(() => new Job(manifest as ConstructorParameters<typeof Job>[0]).validate()).not.toThrow();
    // The check is real: a wrong type is refused.
    const broken = structuredClone(manifest) as { spec: { completions: unknown } };
    broken.spec.completions = 'twenty-four';
    expect(() => new Job(broken as ConstructorParameters<typeof Job>[0]).validate()).toThrow(/completions/);
  });

  it('run cell i in pod i, from the shared volume', () => {
    const job = parse(k8sIndexedJobYaml(options));
    expect(job.metadata.name).toBe('sharelora-paper-grid');
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 24, parallelism: 4 });
    const pod = job.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.volumes).toEqual([
      { name: 'experiment', persistentVolumeClaim: { claimName: 'experiments' } },
    ]);
    const [c] = pod.containers;
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.volumeMounts).toEqual([{ name: 'experiment', mountPath: '/experiment' }]);
    // What the container's shell runs for pod 7, with a `sharelora` on PATH that echoes its arguments.
    const bin = mkdtempSync(join(tmpdir(), 'stub-bin-'));
    writeFileSync(join(bin, 'sharelora'), '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
    const r = spawnSync(c.command[0], c.command.slice(1), {
      encoding: 'utf8',
      env: { JOB_COMPLETION_INDEX: '7', PATH: `${bin}:/usr/bin:/bin` },
    });
    rmSync(bin, { recursive: true, force: true });
    expect(r.stdout.trim()).toBe('experiment run /experiment/grid.yaml --cells 7');
  });

  it('names are DNS labels', () => {
    expect(dnsLabel('My Grid/v2')).toBe('my-grid-v2');
    expect(dnsLabel('x'.repeat(80))).toHaveLength(63);
    expect(dnsLabel('--')).toBe('sharelora');
  });
});
