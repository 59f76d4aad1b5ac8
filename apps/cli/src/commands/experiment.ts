import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '@sharelora/core';
import {
  buildReport,
  type Cell,
  type CellRecord,
  cellDir,
  type Experiment,
  ExperimentError,
  expandCells,
  type ModelRecipe,
  modelDir,
  numericLeaves,
  parseExperiment,
  readCellRecord,
  readCellRecords,
  reportCsv,
  reportDir,
  reportMarkdown,
  selectCells,
  trainFigures,
  trainOptions,
  writeCellRecord,
  writeJsonAtomic,
} from '@sharelora/experiment';
import { parseFlags } from '../args.js';
import { UsageError } from '../cli-error.js';
import { plural } from '../units.js';

export const experimentHelp = `Usage: sharelora experiment run FILE [--cells LIST] [--dry-run] [--json]
       sharelora experiment report FILE [--json]

Runs a declared study: every cell of FILE's grid (models × datasets × methods × seeds) is trained
with 'sharelora train' and evaluated with 'sharelora eval', each in its own folder, and reported as
paper-style tables (mean ± standard deviation over seeds beside trainable parameters, optimizer
bytes, peak memory and time).

FILE (YAML or JSON; paths relative to it):
  name: my-study
  output: runs                 # default: <FILE name>-runs beside FILE
  models:                      # each: path: DIR | init: {arch, preset, seed} | import: {file, from, tokenizer}
    tiny: { init: { arch: llama, preset: tiny } }
  datasets:                    # train's --data, --format, --eval-data (eval), --validation, --labels
    add: { train: add.jsonl, format: prompt-completion, eval: add-test.jsonl }
  methods:                     # method, rank, alpha, dropout, targets, lr
    lora: { method: lora, rank: 8, alpha: 16 }
    share-a: { method: share-a, rank: 8, alpha: 16 }
  training: { steps: 200, batch-size: 8, lr: 0.001 }   # train's options by long flag name
  evaluations:                 # optional 'sharelora eval' runs per cell: task, data, other eval flags
    - { task: gsm8k, data: test.jsonl, limit: 50 }
  seeds: [0, 1, 2]

Each cell has a stable id (a hash of its settings) and writes OUTPUT/cells/<id>/: cell.json (its
settings, state, versions, timings and figures), train/ (train's output) and eval-*.json. Models
built by init or import go to OUTPUT/models/<name>/ once.

run:
  Runs the cells in order, each in child processes. A complete cell is skipped; an interrupted one
  resumes from its last training checkpoint (set save-every); a failing one is recorded as failed
  with its error and the others go on. Ctrl-C or SIGTERM stops after the running step's checkpoint.
  --cells LIST   only these cells: ids, names (model/dataset/method/seed-N) or 0-based indices,
                 comma-separated (a scheduler's array index works as is)
  --dry-run      list the cells and their state, and estimate each one's time and peak memory from
                 a 2-step probe per model and method (in a temporary folder; nothing is written)
  --json         print one JSON document on stdout

report:
  Writes OUTPUT/report/report.md, report.csv and report.json from the cells' records and prints the
  Markdown (or, with --json, the JSON). Cells still running or not run are listed as pending.

Exit codes: 0 done (run: every selected cell complete), 1 a cell failed, 2 bad usage or a bad FILE.
  -h, --help     show this help`;

/** This CLI, for the child processes a run starts. */
const SELF = fileURLToPath(import.meta.url);

interface Loaded {
  file: string;
  dir: string;
  exp: Experiment;
  output: string;
  cells: Cell[];
}

async function loadExperiment(fileArg: string | undefined, command: string): Promise<Loaded> {
  if (!fileArg) throw new UsageError(`sharelora experiment ${command}: give the experiment FILE`);
  const file = resolve(fileArg);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `${fileArg}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  let exp: Experiment;
  try {
    exp = parseExperiment(text, fileArg);
  } catch (e) {
    if (e instanceof ExperimentError) throw new UsageError(e.message);
    throw e;
  }
  const dir = dirname(file);
  const output = resolve(dir, exp.output ?? `${basename(file, extname(file))}-runs`);
  return { file, dir, exp, output, cells: expandCells(exp) };
}

/** Every file the selected cells read exists, checked before anything runs. */
async function checkInputs(l: Loaded, cells: readonly Cell[]): Promise<void> {
  const paths = new Map<string, string>();
  for (const c of cells) {
    const { model, dataset, evaluations } = c.settings;
    if (model.path) paths.set(`models.${c.model}.path`, model.path);
    if (model.import) paths.set(`models.${c.model}.import.file`, model.import.file);
    paths.set(`datasets.${c.dataset}.train`, dataset.train);
    if (dataset.eval) paths.set(`datasets.${c.dataset}.eval`, dataset.eval);
    evaluations.forEach((e, i) => paths.set(`evaluations[${i}].data`, e.data));
  }
  for (const [key, path] of paths) {
    await stat(resolve(l.dir, path)).catch(() => {
      throw new UsageError(`${basename(l.file)}: ${key}: ${resolve(l.dir, path)} does not exist`);
    });
  }
}

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
        .filter((line) => line.trim() && !/^Warning: .* artificially reduced/.test(line))
        .slice(-6)
        .join('\n');
      done({ code: code ?? (signal ? 128 : 1), stdout, stderrTail: tail });
    });
  });
}

/** The model directory of a recipe, built (init / import) into OUTPUT/models/<name> the first time. */
async function materializeModel(l: Loaded, name: string, recipe: ModelRecipe, root: string, quiet: boolean) {
  if (recipe.path) return resolve(l.dir, recipe.path);
  const out = modelDir(root, name);
  if (
    await stat(join(out, 'config.json')).then(
      () => true,
      () => false,
    )
  )
    return out;
  let args: string[];
  if (recipe.init) {
    const { arch, preset, seed } = recipe.init;
    args = ['init', '--arch', arch, '--preset', preset, '--seed', String(seed), '--out', out];
  } else {
    const imp = recipe.import as NonNullable<ModelRecipe['import']>;
    args = ['import', resolve(l.dir, imp.file), '--out', out];
    if (imp.from) args.push('--from', imp.from);
    if (imp.tokenizer) args.push('--tokenizer', resolve(l.dir, imp.tokenizer));
  }
  const r = await runChild(args, quiet);
  if (r.code !== 0) throw new UsageError(`models.${name}: sharelora ${args[0]} failed:\n${r.stderrTail}`);
  return out;
}

/** `sharelora eval` arguments of evaluation `i` for a trained cell. */
function evalArgs(l: Loaded, cell: Cell, i: number, model: string, out: string): string[] {
  const { task, data, ...flags } = cell.settings.evaluations[i];
  const trained = join(cellDir(l.output, cell), 'train');
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
function evalNames(exp: Experiment): string[] {
  return exp.evaluations.map((e, i) =>
    exp.evaluations.filter((x) => x.task === e.task).length > 1 ? `${e.task}#${i + 1}` : e.task,
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

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The `sharelora train --config` settings of a cell (every path absolute). */
function trainConfig(l: Loaded, cell: Cell, model: string, out: string): Record<string, unknown> {
  const { dataset } = cell.settings;
  return {
    ...trainOptions(cell.settings),
    model,
    data: resolve(l.dir, dataset.train),
    ...(dataset.eval ? { 'eval-data': resolve(l.dir, dataset.eval) } : {}),
    out,
    json: true,
  };
}

/**
 * Trains and evaluates one cell, recording its state in cell.json as it goes. Each finished part
 * leaves a file (train-result.json, eval-*.json) that a later run reuses; an interrupted training
 * resumes from its checkpoint. Returns with the cell still 'running' when a stop signal came.
 */
async function runCell(l: Loaded, cell: Cell, model: string): Promise<CellRecord> {
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

  const resultFile = join(dir, 'train-result.json');
  let doc = await readJson(resultFile);
  if (!doc) {
    const configFile = join(dir, 'train-config.json');
    await writeJsonAtomic(configFile, { ...trainConfig(l, cell, model, join(dir, 'train')), resume: true });
    const r = await runChild(['train', '--config', configFile], false);
    if (stopping) return record;
    if (r.code !== 0) return finish('failed', `sharelora train exited with ${r.code}: ${r.stderrTail}`);
    doc = JSON.parse(r.stdout) as Record<string, unknown>;
    await writeJsonAtomic(resultFile, doc);
  }
  record.train = trainFigures(doc);

  const names = evalNames(l.exp);
  record.evals = {};
  for (let i = 0; i < settings.evaluations.length; i++) {
    const out = join(dir, `eval-${i + 1}-${settings.evaluations[i].task}.json`);
    let result = await readJson(out);
    if (!result) {
      const r = await runChild(evalArgs(l, cell, i, model, out), false);
      if (stopping) return record;
      if (r.code !== 0)
        return finish('failed', `sharelora eval (${names[i]}) exited with ${r.code}: ${r.stderrTail}`);
      result = await readJson(out);
      if (!result) return finish('failed', `sharelora eval (${names[i]}) wrote no readable ${out}`);
    }
    record.evals[names[i]] = numericLeaves(result.metrics);
  }
  return finish('complete');
}

function headline(r: CellRecord): string {
  if (r.status === 'failed') return `failed: ${(r.error ?? '').split('\n')[0]}`;
  const t = r.train;
  const loss = t?.heldOutLoss ?? t?.bestValLoss ?? t?.trainLoss;
  return `complete in ${(r.seconds ?? 0).toFixed(1)} s${loss != null ? `, loss ${loss.toFixed(4)} ${t?.lossUnit}` : ''}`;
}

/** Time and peak memory of each selected cell, extrapolated from a 2-step probe per model and method. */
async function dryRun(l: Loaded, cells: readonly Cell[], json: boolean): Promise<number> {
  const tmp = await mkdtemp(join(tmpdir(), 'sharelora-dry-run-'));
  try {
    const probes = new Map<string, { seconds: number; peakBytes: number } | { error: string }>();
    const rows = [];
    for (const cell of cells) {
      const key = JSON.stringify([cell.model, cell.dataset, cell.method]);
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
        const config = trainConfig(l, cell, model, join(tmp, `probe-${probes.size}`));
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
          const t = cell.settings.training;
          const examples = Number(
            (doc.dataReport as { train?: { examples?: number } })?.train?.examples ?? 0,
          );
          const perStep = (t['batch-size'] ?? 8) * (t['grad-accum'] ?? 1);
          const steps = t.steps ?? Math.ceil((examples * (t.epochs ?? 1)) / perStep);
          probes.set(key, {
            seconds: wall + (Math.max(steps - 2, 0) * f.msPerStep) / 1000,
            peakBytes: f.peakBytes,
          });
        }
      }
      const probe = probes.get(key) as { seconds: number; peakBytes: number } | { error: string };
      const status = (await readCellRecord(l.output, cell))?.status ?? 'not run';
      rows.push({ index: cell.index, id: cell.id, name: cell.name, status, ...probe });
    }
    if (json) console.log(JSON.stringify({ experiment: l.exp.name, output: l.output, cells: rows }, null, 2));
    else {
      console.log(`${l.exp.name}: ${plural(cells.length, 'cell')} → ${l.output}`);
      for (const r of rows) {
        const est =
          'error' in r
            ? `probe failed: ${r.error}`
            : `~${r.seconds.toFixed(0)} s, peak ${formatBytes(r.peakBytes)}`;
        console.log(
          `  ${String(r.index).padStart(3)}  ${r.id}  ${r.name.padEnd(40)} ${r.status.padEnd(9)} ${est}`,
        );
      }
      if (l.exp.evaluations.length) console.log('(estimates cover training; evaluations come on top)');
    }
    return 0;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'experiment run',
    argv,
    { cells: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
    { allowPositionals: true },
  );
  if (values.help) {
    console.log(experimentHelp);
    return 0;
  }
  if (positionals.length > 1)
    throw new UsageError(`sharelora experiment run takes one FILE, got ${positionals.length}`);
  const l = await loadExperiment(positionals[0], 'run');
  let selected = l.cells;
  if (values.cells !== undefined) {
    try {
      selected = selectCells(
        l.cells,
        values.cells
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      );
    } catch (e) {
      throw new UsageError(`--cells: ${(e as Error).message}`);
    }
  }
  await checkInputs(l, selected);
  if (values['dry-run']) return dryRun(l, selected, Boolean(values.json));

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
      if (prev?.status === 'complete') {
        process.stderr.write(`${tag}: complete, skipped\n`);
        results.push(prev);
        continue;
      }
      process.stderr.write(`${tag}: ${prev ? `resuming (attempt ${prev.attempts + 1})` : 'starting'}\n`);
      const rec = await runCell(l, cell, models.get(cell.model) as string);
      if (stopping) {
        process.stderr.write(`${tag}: stopped by ${stopping}; run again to resume\n`);
        return stopping === 'SIGINT' ? 130 : 143;
      }
      process.stderr.write(`${tag}: ${headline(rec)}\n`);
      results.push(rec);
    }
    const failed = results.filter((r) => r.status === 'failed');
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
        `${l.exp.name}: ${plural(results.length - failed.length, 'cell')} complete` +
          `${failed.length ? `, ${failed.length} failed` : ''}; 'sharelora experiment report ${positionals[0]}' writes the tables`,
      );
    return failed.length ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}

async function report(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'experiment report',
    argv,
    { json: { type: 'boolean' } },
    { allowPositionals: true },
  );
  if (values.help) {
    console.log(experimentHelp);
    return 0;
  }
  if (positionals.length > 1)
    throw new UsageError(`sharelora experiment report takes one FILE, got ${positionals.length}`);
  const l = await loadExperiment(positionals[0], 'report');
  const r = buildReport(l.exp.name, l.cells, await readCellRecords(l.output, l.cells));
  const dir = reportDir(l.output);
  const md = reportMarkdown(r);
  await writeJsonAtomic(join(dir, 'report.json'), r);
  await writeFile(join(dir, 'report.md'), md);
  await writeFile(join(dir, 'report.csv'), reportCsv(r));
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    process.stdout.write(md);
    console.error(`wrote ${join(dir, 'report.md')}, report.csv and report.json`);
  }
  return 0;
}

export async function experiment(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return run(rest);
  if (sub === 'report') return report(rest);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    console.log(experimentHelp);
    return sub ? 0 : 2;
  }
  throw new UsageError(`sharelora experiment: unknown subcommand "${sub}" (run, report)`);
}
