/** `sharelora experiment run`: each cell trained and evaluated in child processes, its record kept as it goes. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatBytes } from '@sharelora/core';
import { shutdown } from '@sharelora/core/node';
import {
  type Cell,
  type CellRecord,
  cellDir,
  type DatasetSpec,
  type EvaluationSpec,
  type ModelRecipe,
  modelDir,
  numericLeaves,
  readCellRecord,
  type TrainingSpec,
  trainFigures,
  trainOptions,
  writeCellRecord,
  writeJsonAtomic,
} from '@sharelora/experiment';
import { numberFlag, parseFlags } from '../args.js';
import { UsageError } from '../cli-error.js';
import { clock } from '../progress.js';
import { plural } from '../units.js';
import {
  type ConfigEstimate,
  estimateFromConfig,
  hasWeights,
  measuredMatmulRate,
} from './experiment-estimate.js';
import { checkInputs, type Loaded, loadExperiment, pickCells, SELF } from './experiment-file.js';
import { experimentHelp } from './experiment-help.js';

interface ChildResult {
  code: number;
  stdout: string;
  /** The last lines it wrote to stderr (the error of a failed step). */
  stderrTail: string;
}

/** The child process running now, for passing on Ctrl-C / SIGTERM. */
let current: ReturnType<typeof spawn> | null = null;
let stopping: NodeJS.Signals | null = null;

/** Runs `sharelora ARGS` in a child process; its stderr (progress, messages) is passed through. */
function runChild(args: string[], quiet: boolean): Promise<ChildResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [SELF, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr = (stderr + s).slice(-8000);
      if (!quiet) process.stderr.write(s);
    });
    child.on('error', fail);
    child.on('close', (code, signal) => {
      current = null;
      const tail = stderr
        .split('\n')
        .filter((line) => line.trim())
        .slice(-6)
        .join('\n');
      done({ code: code ?? (signal ? 128 : 1), stdout, stderrTail: tail });
    });
  });
}

/** The model directory of a recipe, built (init / import) into OUTPUT/models/<name> the first time. */
/**
 * The model directory of a recipe, built (init / import) into ROOT/models/<name> the first time.
 * It is built beside its final place and renamed there, so scheduler tasks that start together
 * cannot see or leave a half-written model: the first rename wins, the others discard theirs.
 */
export async function materializeModel(
  l: Loaded,
  name: string,
  recipe: ModelRecipe,
  root: string,
  quiet: boolean,
) {
  if (recipe.path) return resolve(l.dir, recipe.path);
  const out = modelDir(root, name);
  const exists = () =>
    stat(join(out, 'config.json')).then(
      () => true,
      () => false,
    );
  if (await exists()) return out;
  const tmp = `${out}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let args: string[];
  if (recipe.init) {
    const { arch, preset, seed } = recipe.init;
    args = ['init', '--arch', arch, '--preset', preset, '--seed', String(seed), '--out', tmp];
  } else {
    const imp = recipe.import as NonNullable<ModelRecipe['import']>;
    args = ['import', resolve(l.dir, imp.file), '--out', tmp];
    if (imp.from) args.push('--from', imp.from);
    if (imp.tokenizer) args.push('--tokenizer', resolve(l.dir, imp.tokenizer));
  }
  try {
    const r = await runChild(args, quiet);
    if (r.code !== 0) throw new UsageError(`models.${name}: sharelora ${args[0]} failed:\n${r.stderrTail}`);
    await rename(tmp, out).catch(async (e) => {
      if (!(await exists())) throw e;
    });
    return out;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `sharelora eval` arguments of evaluation `i` for a trained cell. */
function evalArgs(l: Loaded, cell: Cell, i: number, model: string, trained: string, out: string): string[] {
  const { task, data, shards: _, ...flags } = cell.settings.evaluations[i];
  const args = ['eval', '--task', task, '--data', resolve(l.dir, data), '--out', out];
  if (cell.settings.method.method === 'full') args.push('--model', trained);
  else args.push('--model', model, '--adapter', trained);
  for (const [k, v] of Object.entries(flags)) {
    if (v === false) continue;
    args.push(`--${k}`);
    if (v !== true) args.push(String(v));
  }
  return args;
}

/** Report names of the evaluations: the task, numbered when a task appears twice. */
function evalNames(evaluations: readonly EvaluationSpec[]): string[] {
  return evaluations.map((e, i) =>
    evaluations.filter((x) => x.task === e.task).length > 1 ? `${e.task}#${i + 1}` : e.task,
  );
}

/** sharelora, node and platform, recorded with each cell. */
function versions(): Record<string, string> {
  // The built file lives in dist/, next to the package's package.json.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return { sharelora: pkg.version, node: process.version, platform: `${process.platform}-${process.arch}` };
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The `sharelora train --config` settings of a cell on one dataset (every path absolute). */
function trainConfig(
  l: Loaded,
  cell: Cell,
  dataset: DatasetSpec,
  model: string,
  out: string,
): Record<string, unknown> {
  return {
    ...trainOptions(cell.settings, dataset),
    model,
    data: resolve(l.dir, dataset.train),
    ...(dataset.eval ? { 'eval-data': resolve(l.dir, dataset.eval) } : {}),
    out,
    json: true,
  };
}

/**
 * Which part of a cell's sharded evaluations a run does: all of them (a local run), none
 * (`deferShards`: a Slurm task that leaves them to shard tasks), or one shard of each (`shard`: a
 * shard task, on a cell trained already). A run that finds every shard written merges them.
 */
interface ShardMode {
  shard?: number;
  deferShards?: boolean;
}

/**
 * Trains and evaluates one cell, recording its state in cell.json as it goes. Each finished part
 * leaves a file (train-result.json, eval-*.json) that a later run reuses; an interrupted training
 * resumes from its checkpoint. Returns with the cell still 'running' when a stop signal came, or
 * when evaluation shards are left to other runs.
 */
async function runCell(l: Loaded, cell: Cell, model: string, mode: ShardMode = {}): Promise<CellRecord> {
  const dir = cellDir(l.output, cell);
  const prev = await readCellRecord(l.output, cell);
  const t0 = Date.now();
  const { id, name, index, dataset, method, seed, settings } = cell;
  const record: CellRecord = {
    id,
    name,
    index,
    model: cell.model,
    dataset,
    method,
    seed,
    settings,
    status: 'running',
    attempts: (prev?.attempts ?? 0) + 1,
    started: new Date().toISOString(),
    versions: versions(),
  };
  await writeCellRecord(l.output, record);
  const finish = async (status: 'complete' | 'failed', error?: string) => {
    Object.assign(record, {
      status,
      error,
      finished: new Date().toISOString(),
      seconds: (Date.now() - t0) / 1000,
    });
    await writeCellRecord(l.output, record);
    return record;
  };

  /**
   * One training run into dir/<part> (resumable; its --json document kept in <part>-result.json),
   * going on from `adapter` when given. A string is the failure's message.
   */
  const trainPart = async (part: string, dataset: DatasetSpec, adapter?: string) => {
    const resultFile = join(dir, `${part}-result.json`);
    const done = await readJson(resultFile);
    if (done) return done;
    if (mode.shard !== undefined)
      return `not trained yet: an --eval-shard run needs the cell trained first (run it with --cells ${cell.id})`;
    const configFile = join(dir, `${part}-config.json`);
    const config = trainConfig(l, cell, dataset, model, join(dir, part));
    if (adapter) {
      // Going on from an adapter: its own method, rank, alpha, targets and dropout apply.
      for (const k of ['method', 'rank', 'alpha', 'targets', 'dropout']) delete config[k];
      config.adapter = adapter;
    }
    await writeJsonAtomic(configFile, { ...config, resume: true });
    const r = await runChild(['train', '--config', configFile], false);
    if (stopping) return null;
    if (r.code !== 0) return `sharelora train exited with ${r.code}: ${r.stderrTail}`;
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    await writeJsonAtomic(resultFile, doc);
    return doc;
  };

  let trained = join(dir, 'train');
  if (settings.dataset) {
    const doc = await trainPart('train', settings.dataset);
    if (doc === null) return record;
    if (typeof doc === 'string') return finish('failed', doc);
    record.train = trainFigures(doc);
  } else {
    // A sequence: each stage goes on from the last one's adapter; after each, every dataset's held-out loss.
    const stages = settings.sequence ?? [];
    record.stages = [];
    for (const [i, stage] of stages.entries()) {
      const part = `stage-${i + 1}-${stage.name}`;
      const doc = await trainPart(part, stage.dataset, i ? trained : undefined);
      if (doc === null) return record;
      if (typeof doc === 'string') return finish('failed', `stage ${i + 1} (${stage.name}): ${doc}`);
      trained = join(dir, part);
      const heldOut: Record<string, number> = {};
      for (const t of stages) {
        const out = join(dir, `${part}-loss-${t.name}.json`);
        let result = await readJson(out);
        if (!result) {
          const args = ['eval', '--task', 'loss', '--model', model, '--adapter', trained, '--out', out];
          args.push('--data', resolve(l.dir, t.dataset.eval as string), '--format', t.dataset.format);
          const r = await runChild(args, false);
          if (stopping) return record;
          if (r.code !== 0)
            return finish(
              'failed',
              `stage ${i + 1}: loss on ${t.name} exited with ${r.code}: ${r.stderrTail}`,
            );
          result = await readJson(out);
        }
        heldOut[t.name] = Number((result?.metrics as { loss?: number } | undefined)?.loss);
      }
      record.stages.push({ dataset: stage.name, train: trainFigures(doc), heldOut });
      record.train = trainFigures(doc);
    }
  }

  const names = evalNames(settings.evaluations);
  record.evals = {};
  let shardsPending = false;
  for (let i = 0; i < settings.evaluations.length; i++) {
    const out = join(dir, `eval-${i + 1}-${settings.evaluations[i].task}.json`);
    const shards = settings.evaluations[i].shards ?? 1;
    let result = await readJson(out);
    if (!result && shards > 1) {
      // Each shard is a file of its own (written atomically); once all are there, eval-merge writes
      // the evaluation's file.
      const files = Array.from({ length: shards }, (_, k) =>
        out.replace(/\.json$/, `.shard-${k}-of-${shards}.json`),
      );
      let written = 0;
      for (const [k, file] of files.entries()) {
        if (await exists(file)) {
          written++;
          continue;
        }
        if (mode.deferShards || (mode.shard !== undefined && mode.shard !== k)) continue;
        const r = await runChild(
          [...evalArgs(l, cell, i, model, trained, file), '--shard', `${k}/${shards}`],
          false,
        );
        if (stopping) return record;
        if (r.code !== 0)
          return finish(
            'failed',
            `sharelora eval (${names[i]}, shard ${k}/${shards}) exited with ${r.code}: ${r.stderrTail}`,
          );
        written++;
      }
      if (mode.shard !== undefined || written < shards) {
        shardsPending = true;
        continue;
      }
      const r = await runChild(['eval-merge', '--out', out, ...files], true);
      if (stopping) return record;
      if (r.code !== 0)
        return finish('failed', `sharelora eval-merge (${names[i]}) exited with ${r.code}: ${r.stderrTail}`);
    } else if (!result) {
      // A shard task runs shards only.
      if (mode.shard !== undefined) continue;
      const r = await runChild(evalArgs(l, cell, i, model, trained, out), false);
      if (stopping) return record;
      if (r.code !== 0)
        return finish('failed', `sharelora eval (${names[i]}) exited with ${r.code}: ${r.stderrTail}`);
    }
    result ??= await readJson(out);
    if (!result) return finish('failed', `sharelora eval (${names[i]}) wrote no readable ${out}`);
    record.evals[names[i]] = numericLeaves(result.metrics);
  }
  // A shard task, or a run that left shards to others: the cell completes when a run merges them.
  if (shardsPending || mode.shard !== undefined) return record;
  return finish('complete');
}

function headline(r: CellRecord): string {
  if (r.status === 'failed') return `failed: ${(r.error ?? '').split('\n')[0]}`;
  if (r.status === 'running') return 'evaluation shards pending (a run after the shard tasks merges them)';
  const t = r.train;
  const loss = t?.heldOutLoss ?? t?.bestValLoss ?? t?.trainLoss;
  return `complete in ${(r.seconds ?? 0).toFixed(1)} s${loss != null ? `, loss ${loss.toFixed(4)} ${t?.lossUnit}` : ''}`;
}

type Estimate =
  | { seconds: number; peakBytes: number; basis: 'probe' }
  | (ConfigEstimate & { basis: 'config'; gflops: number })
  | { error: string; basis?: 'config' };

/**
 * Time and peak memory of each selected cell, extrapolated from a 2-step probe per model and
 * method, or, for a model directory with no weights, from its config.json alone.
 */
async function dryRun(l: Loaded, cells: readonly Cell[], json: boolean): Promise<number> {
  const tmp = await mkdtemp(join(tmpdir(), 'sharelora-dry-run-'));
  let gflops: number | undefined;
  try {
    const probes = new Map<string, Estimate>();
    const rows = [];
    for (const cell of cells) {
      const key = JSON.stringify([cell.model, cell.dataset, cell.method]);
      const stages = cell.settings.sequence ?? [];
      const dataset = cell.settings.dataset ?? stages[0].dataset;
      const weightless = async () =>
        cell.settings.model.path !== undefined &&
        !(await hasWeights(resolve(l.dir, cell.settings.model.path)));
      if (!probes.has(key) && (await weightless())) {
        // Only a config.json: estimated from the step's arithmetic, no run.
        gflops ??= await measuredMatmulRate();
        const rate = gflops;
        const dir = resolve(l.dir, cell.settings.model.path as string);
        probes.set(
          key,
          await estimateFromConfig(
            dir,
            trainOptions(cell.settings, dataset),
            Math.max(stages.length, 1),
            rate,
          )
            .then((e) => ({ ...e, basis: 'config' as const, gflops: rate }))
            .catch((e: Error) => ({ error: e.message, basis: 'config' as const })),
        );
      }
      if (!probes.has(key)) {
        process.stderr.write(`probing ${cell.model}/${cell.dataset}/${cell.method}...\n`);
        const existing = modelDir(l.output, cell.model);
        const haveModel = await stat(join(existing, 'config.json')).then(
          () => true,
          () => false,
        );
        const model =
          cell.settings.model.path || !haveModel
            ? await materializeModel(l, cell.model, cell.settings.model, tmp, true)
            : existing;
        // A sequence is probed on its first dataset, and its stages counted alike.
        const config = trainConfig(l, cell, dataset, model, join(tmp, `probe-${probes.size}`));
        const configFile = join(tmp, `probe-${probes.size}.json`);
        await writeFile(
          configFile,
          JSON.stringify({ ...config, steps: 2, 'save-every': 1000, 'eval-every': undefined }),
        );
        const t0 = Date.now();
        const r = await runChild(['train', '--config', configFile], true);
        const wall = (Date.now() - t0) / 1000;
        if (r.code !== 0) probes.set(key, { error: r.stderrTail.split('\n').at(-1) ?? `exit ${r.code}` });
        else {
          const doc = JSON.parse(r.stdout) as Record<string, unknown>;
          const f = trainFigures(doc);
          const t = trainOptions(cell.settings, dataset) as TrainingSpec;
          const examples = Number(
            (doc.dataReport as { train?: { examples?: number } })?.train?.examples ?? 0,
          );
          const perStep = (t['batch-size'] ?? 8) * (t['grad-accum'] ?? 1);
          const steps = t.steps ?? Math.ceil((examples * (t.epochs ?? 1)) / perStep);
          probes.set(key, {
            seconds: Math.max(stages.length, 1) * (wall + (Math.max(steps - 2, 0) * f.msPerStep) / 1000),
            peakBytes: f.peakBytes,
            basis: 'probe',
          });
        }
      }
      const probe = probes.get(key) as Estimate;
      const status = (await readCellRecord(l.output, cell))?.status ?? 'not run';
      rows.push({ index: cell.index, id: cell.id, name: cell.name, status, ...probe });
    }
    if (json) console.log(JSON.stringify({ experiment: l.exp.name, output: l.output, cells: rows }, null, 2));
    else {
      console.log(`${l.exp.name}: ${plural(cells.length, 'cell')} → ${l.output}`);
      for (const r of rows) {
        const est =
          'error' in r
            ? `${r.basis === 'config' ? 'no estimate' : 'probe failed'}: ${r.error}`
            : `~${clock(r.seconds)}, peak ${formatBytes(r.peakBytes)}${r.basis === 'config' ? ' (from config.json)' : ''}`;
        console.log(
          `  ${String(r.index).padStart(3)}  ${r.id}  ${r.name.padEnd(40)} ${r.status.padEnd(9)} ${est}`,
        );
      }
      if (gflops !== undefined)
        console.log(
          `(from config.json: the step's FLOPs at this device's measured matmul rate, ${gflops.toFixed(1)} GFLOP/s; ` +
            'a lower bound, since a step also normalises, copies and waits)',
        );
      if (cells.some((c) => c.settings.evaluations.length))
        console.log('(estimates cover training; evaluations come on top)');
    }
    return 0;
  } finally {
    if (gflops !== undefined) shutdown();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `sharelora experiment run`. */
export async function experimentRun(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'experiment run',
    argv,
    {
      cells: { type: 'string' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      'eval-shard': { type: 'string' },
      'defer-shards': { type: 'boolean' },
    },
    { allowPositionals: true },
  );
  if (values.help) {
    console.log(experimentHelp);
    return 0;
  }
  const l = await loadExperiment(positionals, 'run');
  const selected = pickCells(l, values.cells);
  // A dry run needs no data: a model with only its config.json is estimated from that alone, and
  // a probe that misses an input says so in its row.
  if (values['dry-run']) return dryRun(l, selected, Boolean(values.json));
  await checkInputs(l, selected);
  const mode: ShardMode = {
    shard: numberFlag(
      'eval-shard',
      values['eval-shard'],
      (n) => Number.isInteger(n) && n >= 0,
      'an integer >= 0',
    ),
    deferShards: values['defer-shards'],
  };
  if (mode.shard !== undefined && mode.deferShards)
    throw new UsageError('--eval-shard runs one shard; --defer-shards runs none: give one');

  const onSignal = (sig: NodeJS.Signals) => {
    stopping = sig;
    current?.kill(sig);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    await writeJsonAtomic(join(l.output, 'experiment.json'), {
      name: l.exp.name,
      file: l.file,
      cells: l.cells.map(({ index, id, name }) => ({ index, id, name })),
    });
    const models = new Map<string, string>();
    for (const c of selected)
      if (!models.has(c.model))
        models.set(c.model, await materializeModel(l, c.model, c.settings.model, l.output, false));
    const results: CellRecord[] = [];
    for (const [i, cell] of selected.entries()) {
      const prev = await readCellRecord(l.output, cell);
      const tag = `[${i + 1}/${selected.length}] ${cell.name} (${cell.id})`;
      if (prev?.status === 'complete' || (prev?.status === 'failed' && mode.shard !== undefined)) {
        // A shard task leaves a failed cell alone: the run that retries it evaluates it whole.
        process.stderr.write(`${tag}: ${prev.status}, skipped\n`);
        results.push(prev);
        continue;
      }
      process.stderr.write(`${tag}: ${prev ? `resuming (attempt ${prev.attempts + 1})` : 'starting'}\n`);
      const rec = await runCell(l, cell, models.get(cell.model) as string, mode);
      if (stopping) {
        process.stderr.write(`${tag}: stopped by ${stopping}; run again to resume\n`);
        return stopping === 'SIGINT' ? 130 : 143;
      }
      process.stderr.write(`${tag}: ${headline(rec)}\n`);
      results.push(rec);
    }
    const failed = results.filter((r) => r.status === 'failed');
    const complete = results.filter((r) => r.status === 'complete');
    const waiting = results.length - complete.length - failed.length;
    if (values.json)
      console.log(
        JSON.stringify({
          experiment: l.exp.name,
          output: l.output,
          cells: results.map(({ id, name, status, error }) => ({ id, name, status, error })),
        }),
      );
    else
      console.log(
        `${l.exp.name}: ${plural(complete.length, 'cell')} complete` +
          `${failed.length ? `, ${failed.length} failed` : ''}` +
          `${waiting ? `, ${waiting} waiting for evaluation shards` : ''}` +
          `; 'sharelora experiment report ${positionals[0]}' writes the tables`,
      );
    return failed.length ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
