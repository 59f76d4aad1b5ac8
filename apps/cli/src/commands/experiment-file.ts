/** The experiment file as the `sharelora experiment` subcommands load it. */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Cell,
  type DatasetSpec,
  type EvaluationSpec,
  type Experiment,
  ExperimentError,
  expandCells,
  parseExperiment,
  selectCells,
} from '@sharelora/experiment';
import { UsageError } from '../cli-error.js';
import { evalFlagsProblem } from './eval-options.js';

/** This CLI, for the child processes a run starts. */
export const SELF = fileURLToPath(import.meta.url);

export interface Loaded {
  file: string;
  dir: string;
  exp: Experiment;
  output: string;
  cells: Cell[];
}

export async function loadExperiment(positionals: readonly string[], command: string): Promise<Loaded> {
  if (positionals.length !== 1)
    throw new UsageError(
      `sharelora experiment ${command} takes one experiment FILE, got ${positionals.length ? positionals.length : 'none'}`,
    );
  const fileArg = positionals[0];
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
  checkEvaluations(exp, fileArg);
  const dir = dirname(file);
  const output = resolve(dir, exp.output ?? `${basename(file, extname(file))}-runs`);
  return { file, dir, exp, output, cells: expandCells(exp) };
}

/**
 * Every evaluation names a task and flags `sharelora eval` accepts for it, checked when the file is
 * loaded rather than when the first cell's training is done.
 */
function checkEvaluations(exp: Experiment, fileArg: string): void {
  const lists: [string, readonly EvaluationSpec[]][] = [
    ['evaluations', exp.evaluations],
    ...Object.entries(exp.datasets).map(([name, d]): [string, readonly EvaluationSpec[]] => [
      `datasets.${name}.evaluations`,
      d.evaluations ?? [],
    ]),
  ];
  for (const [key, list] of lists)
    for (const [i, { task, data: _, shards: __, ...flags }] of list.entries()) {
      const problem = evalFlagsProblem(task, flags);
      if (problem) throw new UsageError(`${fileArg}: ${key}[${i}].${problem}`);
    }
}

/** Every file the selected cells read exists, checked before anything runs. */
export async function checkInputs(l: Loaded, cells: readonly Cell[]): Promise<void> {
  const paths = new Map<string, string>();
  for (const c of cells) {
    const { model, evaluations } = c.settings;
    if (model.path) paths.set(`models.${c.model}.path`, model.path);
    if (model.import) paths.set(`models.${c.model}.import.file`, model.import.file);
    const datasets = c.settings.sequence ?? [{ name: c.dataset, dataset: c.settings.dataset as DatasetSpec }];
    for (const { name, dataset } of datasets) {
      paths.set(`datasets.${name}.train`, dataset.train);
      if (dataset.eval) paths.set(`datasets.${name}.eval`, dataset.eval);
    }
    const shared = l.exp.evaluations.length;
    for (const [i, e] of evaluations.entries())
      paths.set(
        i < shared ? `evaluations[${i}].data` : `datasets.${c.dataset}.evaluations[${i - shared}].data`,
        e.data,
      );
  }
  for (const [key, path] of paths) {
    await stat(resolve(l.dir, path)).catch(() => {
      throw new UsageError(`${basename(l.file)}: ${key}: ${resolve(l.dir, path)} does not exist`);
    });
  }
}

/** The cells a --cells flag picks (all without one); a bad pick is a usage error. */
export function pickCells(l: Loaded, flag: string | undefined): Cell[] {
  if (flag === undefined) return l.cells;
  try {
    return selectCells(
      l.cells,
      flag
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  } catch (e) {
    throw new UsageError(`--cells: ${(e as Error).message}`);
  }
}
