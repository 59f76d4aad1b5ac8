/**
 * An experiment's cells: the cross product models × datasets × methods × seeds, in the order the
 * file names them. Each cell has a stable id, a hash of everything that decides its result, so a
 * cell keeps its id (and its finished output) when others are added to the file, and gets a new one
 * when any of its own settings change.
 */
import { createHash } from 'node:crypto';
import type {
  DatasetSpec,
  EvaluationSpec,
  Experiment,
  MethodSpec,
  ModelRecipe,
  TrainingSpec,
} from './schema.js';

/** One stage of a continual sequence: a dataset by name. */
export interface SequenceStage {
  name: string;
  dataset: DatasetSpec;
}

/** Everything that decides a cell's result. */
export interface CellSettings {
  model: ModelRecipe;
  /** A grid cell's dataset. */
  dataset?: DatasetSpec;
  /** A sequence cell's datasets, in training order. */
  sequence?: SequenceStage[];
  method: MethodSpec;
  training: TrainingSpec;
  evaluations: EvaluationSpec[];
  seed: number;
}

export interface Cell {
  /** Position in the experiment's cell list (a scheduler's array index). */
  index: number;
  /** Hash of the settings: the cell's folder name. */
  id: string;
  /** model/dataset/method/seed, for people. */
  name: string;
  /** A grid cell trains on one dataset; a sequence cell on several in turn (continual learning). */
  kind: 'grid' | 'sequence';
  model: string;
  /** The dataset's name, or the sequence's. */
  dataset: string;
  method: string;
  seed: number;
  settings: CellSettings;
}

/** JSON with object keys sorted at every level, so equal settings always hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The first 12 hex digits of the SHA-256 of the settings' canonical JSON. */
export function cellId(settings: CellSettings): string {
  return createHash('sha256').update(canonicalJson(settings)).digest('hex').slice(0, 12);
}

/**
 * The grid's cells (models × grid datasets × methods × seeds), then the sequences' (models ×
 * sequences × methods × seeds), in file order.
 */
export function expandCells(exp: Experiment): Cell[] {
  const cells: Cell[] = [];
  const grid = exp.grid ?? Object.keys(exp.datasets);
  const units: Array<[Cell['kind'], string, Pick<CellSettings, 'dataset' | 'sequence'>]> = [
    ...grid.map((d): [Cell['kind'], string, Pick<CellSettings, 'dataset'>] => [
      'grid',
      d,
      { dataset: exp.datasets[d] },
    ]),
    ...Object.entries(exp.sequences).map(
      ([s, list]): [Cell['kind'], string, Pick<CellSettings, 'sequence'>] => [
        'sequence',
        s,
        { sequence: list.map((d) => ({ name: d, dataset: exp.datasets[d] })) },
      ],
    ),
  ];
  for (const [kind, unit, data] of units)
    for (const [model, recipe] of Object.entries(exp.models))
      for (const [method, spec] of Object.entries(exp.methods))
        for (const seed of exp.seeds) {
          const settings: CellSettings = {
            model: recipe,
            ...data,
            method: spec,
            training: exp.training,
            // A grid cell also runs its dataset's own evaluations (a GLUE task's dev set).
            evaluations: [...exp.evaluations, ...(data.dataset?.evaluations ?? [])],
            seed,
          };
          cells.push({
            index: cells.length,
            id: cellId(settings),
            name: `${model}/${unit}/${method}/seed-${seed}`,
            kind,
            model,
            dataset: unit,
            method,
            seed,
            settings,
          });
        }
  return cells;
}

/**
 * The cells a `--cells` list picks: ids, names, or array indices (as a scheduler passes them),
 * in list order; anything that matches no cell is an error naming it.
 */
export function selectCells(cells: readonly Cell[], picks: readonly string[]): Cell[] {
  return picks.map((p) => {
    const hit =
      cells.find((c) => c.id === p || c.name === p) ?? (/^\d+$/.test(p) ? cells[Number(p)] : undefined);
    if (!hit) throw new Error(`no cell "${p}" (give an id, a name, or an index below ${cells.length})`);
    return hit;
  });
}

/**
 * A cell's `sharelora train` options for one dataset (its own, or a sequence stage's) by long flag
 * name (the --config file it runs with): the shared training settings, the dataset's own over them,
 * the method's (its targets and lr win), the dataset's reading settings and the seed. Paths (model, data, eval data, output) are the runner's to add.
 */
export function trainOptions(settings: CellSettings, dataset: DatasetSpec): Record<string, unknown> {
  const { method } = settings;
  const training = { ...settings.training, ...dataset.training };
  const options: Record<string, unknown> = {
    ...training,
    method: method.method,
    rank: method.rank,
    alpha: method.alpha,
    dropout: method.dropout,
    targets: method.targets ?? training.targets,
    lr: method.lr ?? training.lr,
    format: dataset.format,
    validation: dataset.validation,
    labels: dataset.labels,
    seed: settings.seed,
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}
