/**
 * Scale-out on an existing scheduler: every cell is independent, so a grid is one array job whose
 * task i runs `sharelora experiment run FILE --cells i`. These build the job files; submitting is
 * the caller's (sbatch, kubectl). The tasks share the experiment's output folder, which must be on
 * storage every node sees.
 */
import { stringify } from 'yaml';

/** POSIX shell quoting: one word, whatever it holds. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Slurm's --array value for these cell indices: ranges where they run on ("0-3,7"), then `%K`
 * when at most K may run at once.
 */
export function slurmArray(indices: readonly number[], maxParallel?: number): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : `${sorted[i]}`);
    i = j + 1;
  }
  return `${parts.join(',')}${maxParallel ? `%${maxParallel}` : ''}`;
}

/** What slurmScript writes: the job, its cells, and the usual #SBATCH resources. */
export interface SlurmOptions {
  jobName: string;
  /** The cells' indices: the array's task ids. */
  indices: readonly number[];
  /** How `sharelora` is started on the nodes, as words (e.g. [node, /path/to/bin.js]). */
  command: readonly string[];
  /** The experiment file (absolute: the nodes see the same path). */
  file: string;
  /** Where the tasks' logs go (`%A_%a.log`: job and task id). */
  logDir: string;
  partition?: string;
  gpusPerTask?: number;
  cpusPerTask?: number;
  /** Memory per node, in Slurm's syntax (e.g. 16G). */
  mem?: string;
  /** Time limit per task, in Slurm's syntax (e.g. 2:00:00). */
  time?: string;
  /** Most tasks running at once. */
  maxParallel?: number;
  /** More `#SBATCH` options, each as written on sbatch's command line. */
  extra?: readonly string[];
  /** More `experiment run` arguments after the cell (e.g. `--defer-shards`). */
  runArgs?: readonly string[];
  /**
   * Evaluation shards per cell: task t then runs shard t % shards of cell ⌊t / shards⌋
   * (`--eval-shard`), and `indices` are those task ids.
   */
  shards?: number;
}

/**
 * An sbatch script: one array task per cell, each running that cell, or with `shards` one task per
 * evaluation shard of a cell.
 */
export function slurmScript(o: SlurmOptions): string {
  const directives = [
    `--job-name=${o.jobName}`,
    `--array=${slurmArray(o.indices, o.maxParallel)}`,
    `--output=${o.logDir}/%A_%a.log`,
    ...(o.partition ? [`--partition=${o.partition}`] : []),
    ...(o.gpusPerTask ? [`--gpus-per-task=${o.gpusPerTask}`] : []),
    ...(o.cpusPerTask ? [`--cpus-per-task=${o.cpusPerTask}`] : []),
    ...(o.mem ? [`--mem=${o.mem}`] : []),
    ...(o.time ? [`--time=${o.time}`] : []),
    ...(o.extra ?? []),
  ];
  const run = `exec ${o.command.map(shellQuote).join(' ')} experiment run ${shellQuote(o.file)}`;
  const more = (o.runArgs ?? []).map((a) => ` ${shellQuote(a)}`).join('');
  const body = o.shards
    ? [
        `# Written by sharelora experiment submit: task i runs evaluation shard i % ${o.shards} of cell i / ${o.shards}.`,
        'set -euo pipefail',
        `cell=$((SLURM_ARRAY_TASK_ID / ${o.shards}))`,
        `shard=$((SLURM_ARRAY_TASK_ID % ${o.shards}))`,
        `${run} --cells "$cell" --eval-shard "$shard"${more}`,
      ]
    : [
        '# Written by sharelora experiment submit: task i runs cell i of the experiment.',
        'set -euo pipefail',
        `${run} --cells "$SLURM_ARRAY_TASK_ID"${more}`,
      ];
  return ['#!/bin/bash', ...directives.map((d) => `#SBATCH ${d}`), ...body, ''].join('\n');
}

/** What k8sIndexedJob writes: the Job, its image, its cells and its shared volume. */
export interface IndexedJobOptions {
  /** The Job's name (made DNS-safe). */
  name: string;
  /** Number of cells: the Job's completions; pod i runs cell i. */
  cells: number;
  /** A container image with node and sharelora (`sharelora` on its PATH). */
  image: string;
  /** The experiment file as the pods see it. */
  file: string;
  /** Most pods running at once (default: all). */
  parallelism?: number;
  /** GPUs per pod (`nvidia.com/gpu`). */
  gpus?: number;
  /** A PersistentVolumeClaim holding the experiment and its output, mounted at `mountPath`. */
  volumeClaim?: string;
  mountPath?: string;
  /** Retries of one cell's pod (a resumed cell continues from its checkpoint); default 1. */
  retriesPerCell?: number;
}

/** A DNS-1123 label: lower case letters, digits and '-', at most 63 characters. */
export function dnsLabel(name: string): string {
  const label = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || 'sharelora';
}

/**
 * A Kubernetes Indexed Job (batch/v1) doing what the Slurm array does: pod i runs cell i
 * (`JOB_COMPLETION_INDEX`), failures are retried per cell, not per Job.
 */
export function k8sIndexedJob(o: IndexedJobOptions): Record<string, unknown> {
  const name = dnsLabel(`sharelora-${o.name}`);
  const container: Record<string, unknown> = {
    name: 'cell',
    image: o.image,
    command: ['sh', '-c', 'exec sharelora experiment run "$0" --cells "$JOB_COMPLETION_INDEX"', o.file],
    ...(o.gpus ? { resources: { limits: { 'nvidia.com/gpu': o.gpus } } } : {}),
    ...(o.volumeClaim
      ? { volumeMounts: [{ name: 'experiment', mountPath: o.mountPath ?? '/experiment' }] }
      : {}),
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      labels: { 'app.kubernetes.io/name': 'sharelora', 'sharelora.dev/experiment': dnsLabel(o.name) },
    },
    spec: {
      completionMode: 'Indexed',
      completions: o.cells,
      parallelism: o.parallelism ?? o.cells,
      backoffLimitPerIndex: o.retriesPerCell ?? 1,
      template: {
        metadata: { labels: { 'app.kubernetes.io/name': 'sharelora' } },
        spec: {
          restartPolicy: 'Never',
          containers: [container],
          ...(o.volumeClaim
            ? { volumes: [{ name: 'experiment', persistentVolumeClaim: { claimName: o.volumeClaim } }] }
            : {}),
        },
      },
    },
  };
}

/** {@link k8sIndexedJob} as the YAML manifest `kubectl apply -f` takes. */
export function k8sIndexedJobYaml(o: IndexedJobOptions): string {
  return `# Written by sharelora experiment submit --emit k8s: pod i runs cell i of the experiment.\n${stringify(k8sIndexedJob(o))}`;
}
