/** `sharelora experiment submit`: the grid as a Slurm array job or a Kubernetes Indexed Job. */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { k8sIndexedJobYaml, readCellRecords, slurmScript } from '@sharelora/experiment';
import { intFlag, parseFlags } from '../args.js';
import { UsageError } from '../cli-error.js';
import { plural } from '../units.js';
import { checkInputs, loadExperiment, pickCells, SELF } from './experiment-file.js';
import { experimentHelp } from './experiment-help.js';
import { materializeModel } from './experiment-run.js';

/** sbatch's output and exit status; a missing sbatch is a usage error that says what to do. */
function sbatch(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('sbatch', args, { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new UsageError(
      'sbatch not found: submit from a Slurm login node (or write the script only with --dry-run)',
    );
  if (r.error) throw r.error;
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export async function experimentSubmit(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'experiment submit',
    argv,
    {
      slurm: { type: 'boolean' },
      emit: { type: 'string' },
      cells: { type: 'string' },
      partition: { type: 'string' },
      'gpus-per-task': { type: 'string' },
      'cpus-per-task': { type: 'string' },
      mem: { type: 'string' },
      time: { type: 'string' },
      'max-parallel': { type: 'string' },
      'sbatch-arg': { type: 'string', multiple: true },
      command: { type: 'string' },
      wait: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      image: { type: 'string' },
      pvc: { type: 'string' },
      mount: { type: 'string' },
    },
    { allowPositionals: true },
  );
  if (values.help) {
    console.log(experimentHelp);
    return 0;
  }
  if (Boolean(values.slurm) === (values.emit !== undefined))
    throw new UsageError('sharelora experiment submit: give one of --slurm and --emit k8s');
  if (values.emit !== undefined && values.emit !== 'k8s')
    throw new UsageError(`--emit must be k8s, got "${values.emit}"`);
  const l = await loadExperiment(positionals, 'submit');
  const maxParallel = values['max-parallel'] ? intFlag('max-parallel', values['max-parallel'], 1) : undefined;

  if (values.emit === 'k8s') {
    if (!values.image)
      throw new UsageError('--emit k8s needs --image: a container image with node and sharelora on its PATH');
    if (values.cells)
      throw new UsageError('--emit k8s runs every cell (complete ones finish at once); drop --cells');
    const file = join(l.output, 'k8s', `${l.exp.name}-job.yaml`);
    await mkdir(join(l.output, 'k8s'), { recursive: true });
    await writeFile(
      file,
      k8sIndexedJobYaml({
        name: l.exp.name,
        cells: l.cells.length,
        image: values.image,
        file: l.file,
        parallelism: maxParallel,
        gpus: values['gpus-per-task'] ? intFlag('gpus-per-task', values['gpus-per-task'], 1) : undefined,
        volumeClaim: values.pvc,
        mountPath: values.mount,
      }),
    );
    console.log(`wrote ${file}: an Indexed Job of ${plural(l.cells.length, 'pod')}, pod i runs cell i`);
    console.log(`submit it with: kubectl apply -f ${file}`);
    if (!values.pvc)
      console.error(
        'note: the pods must see the experiment and its output at the same paths (give --pvc NAME --mount PATH)',
      );
    return 0;
  }

  const selected = pickCells(l, values.cells);
  await checkInputs(l, selected);
  const records = await readCellRecords(l.output, selected);
  const pending = selected.filter((c) => records.get(c.id)?.status !== 'complete');
  if (!pending.length) {
    console.log(`${l.exp.name}: all ${plural(selected.length, 'selected cell')} complete; nothing to submit`);
    return 0;
  }
  // Tasks that start together would all build the same model: build it here, once.
  for (const name of new Set(pending.map((c) => c.model)))
    await materializeModel(l, name, l.exp.models[name], l.output, false);
  const logDir = join(l.output, 'slurm');
  await mkdir(logDir, { recursive: true });
  const common = {
    command: values.command ? values.command.split(' ').filter(Boolean) : [process.execPath, SELF],
    file: l.file,
    logDir,
    partition: values.partition,
    gpusPerTask: values['gpus-per-task'] ? intFlag('gpus-per-task', values['gpus-per-task'], 1) : undefined,
    cpusPerTask: values['cpus-per-task'] ? intFlag('cpus-per-task', values['cpus-per-task'], 1) : undefined,
    mem: values.mem,
    time: values.time,
    maxParallel,
    extra: values['sbatch-arg'],
  };
  // Sharded evaluations: the cells train (job 1), then every shard is a task of its own (job 2,
  // after job 1), then each cell merges its shards (job 3, after job 2; it retries what failed).
  const shards = Math.max(1, ...pending.flatMap((c) => c.settings.evaluations.map((e) => e.shards ?? 1)));
  const jobs: Array<{ script: string; tasks: number; after?: 'afterany' }> = [];
  const write = async (suffix: string, o: Omit<Parameters<typeof slurmScript>[0], keyof typeof common>) => {
    const script = join(logDir, `${l.exp.name}${suffix}.sbatch`);
    await writeFile(script, slurmScript({ ...common, ...o }), { mode: 0o755 });
    return script;
  };
  const cellIndices = pending.map((c) => c.index);
  if (shards === 1) {
    jobs.push({
      script: await write('', { jobName: `sharelora-${l.exp.name}`, indices: cellIndices }),
      tasks: pending.length,
    });
  } else {
    const shardTasks = pending.flatMap((c) => Array.from({ length: shards }, (_, k) => c.index * shards + k));
    jobs.push(
      {
        script: await write('', {
          jobName: `sharelora-${l.exp.name}`,
          indices: cellIndices,
          runArgs: ['--defer-shards'],
        }),
        tasks: pending.length,
      },
      {
        script: await write('-shards', {
          jobName: `sharelora-${l.exp.name}-shards`,
          indices: shardTasks,
          shards,
        }),
        tasks: shardTasks.length,
        // afterany: a cell that failed to train fails alone; its shard tasks skip it.
        after: 'afterany',
      },
      {
        script: await write('-merge', { jobName: `sharelora-${l.exp.name}-merge`, indices: cellIndices }),
        tasks: pending.length,
        after: 'afterany',
      },
    );
  }
  if (values['dry-run']) {
    for (const j of jobs)
      console.log(
        `wrote ${j.script} (${plural(j.tasks, 'array task')}${j.after ? `, to run ${j.after} the job before` : ''})`,
      );
    console.log(
      jobs.length === 1
        ? `submit it with: sbatch ${jobs[0].script}`
        : 'submit them in order, each with --dependency=<after>:<the previous job id>',
    );
    return 0;
  }
  let jobId = '';
  let r = { status: 0, stdout: '', stderr: '' };
  for (const [i, j] of jobs.entries()) {
    const last = i === jobs.length - 1;
    r = sbatch([
      '--parsable',
      ...(j.after ? [`--dependency=${j.after}:${jobId}`] : []),
      ...(values.wait && last ? ['--wait'] : []),
      j.script,
    ]);
    jobId = r.stdout.trim().split(';')[0];
    if (!jobId) {
      console.error(r.stderr.trim());
      throw new UsageError(`sbatch refused ${j.script}`);
    }
    console.log(`submitted job ${jobId}: ${plural(j.tasks, 'array task')}, logs in ${logDir}`);
  }
  if (values.wait) {
    console.log(
      r.status === 0
        ? `job ${jobId} finished`
        : `job ${jobId} finished with failed tasks (sbatch exit ${r.status})`,
    );
    return r.status === 0 ? 0 : 1;
  }
  return 0;
}
