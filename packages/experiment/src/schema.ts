/**
 * The experiment file: named models, datasets and methods, shared training settings, evaluations
 * and seeds, in YAML or JSON. Validated with zod; every error names the key it is about
 * (`datasets.sst2.format: ...`), and keys no experiment has are refused rather than ignored.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** Names of models, datasets and methods become folder names and report rows. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const name = z
  .string()
  .regex(NAME, 'use letters, digits, ".", "_" and "-" (starting with a letter or digit)');
const nonEmpty = z.string().min(1, 'must not be empty');
const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);

/** Where a model comes from: an existing directory, or a recipe that writes one once per experiment. */
const modelRecipe = z
  .strictObject({
    /** A Hugging Face model directory (relative to the experiment file). */
    path: nonEmpty.optional(),
    /** `sharelora init`: a randomly initialised preset. */
    init: z
      .strictObject({
        arch: z.enum(['gpt2', 'roberta', 'llama']),
        preset: z.enum(['tiny', 'small']),
        seed: z.number().int().nonnegative().default(0),
      })
      .optional(),
    /** `sharelora import`: a GGUF or llama2.c checkpoint (and its tokenizer). */
    import: z
      .strictObject({
        file: nonEmpty,
        from: z.enum(['gguf', 'llama2c']).optional(),
        tokenizer: nonEmpty.optional(),
      })
      .optional(),
  })
  .refine((m) => [m.path, m.init, m.import].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of "path", "init" and "import"',
  });

const targets = z.union([nonEmpty, z.array(nonEmpty).min(1)]);

/** `sharelora train` options every cell shares, by their long flag names. */
const training = z.strictObject({
  steps: z.number().int().nonnegative().optional(),
  epochs: z.number().positive().optional(),
  'batch-size': positiveInt.optional(),
  'grad-accum': positiveInt.optional(),
  lr: z.number().positive().optional(),
  schedule: z.enum(['constant', 'linear', 'cosine']).optional(),
  'warmup-steps': z.number().int().nonnegative().optional(),
  'warmup-ratio': fraction.optional(),
  'weight-decay': z.number().nonnegative().optional(),
  'max-grad-norm': z.number().nonnegative().optional(),
  'eval-every': positiveInt.optional(),
  'save-every': positiveInt.optional(),
  'max-length': positiveInt.optional(),
  'train-on-source': z.boolean().optional(),
  targets: targets.optional(),
  quantize: z.enum(['nf4', 'fp4', 'int8']).optional(),
});

/** One `sharelora eval` run after training: its task, data, and any other eval flags by long name. */
const evaluation = z
  .object({
    task: nonEmpty,
    data: nonEmpty,
    /** Split into this many `eval --shard I/N` runs (Slurm tasks of their own), merged with eval-merge. */
    shards: positiveInt.optional(),
  })
  .catchall(z.union([z.string(), z.number(), z.boolean()]));

/** A training file and how `sharelora train` reads it. */
const dataset = z.strictObject({
  /** The training file (relative to the experiment file). */
  train: nonEmpty,
  /** A `sharelora train --format` name. */
  format: nonEmpty,
  /** A labelled held-out file scored after training (`--eval-data`): the report's held-out loss. */
  eval: nonEmpty.optional(),
  /** Validation split of the training file: a fraction or a count (`--validation`). */
  validation: z.number().min(0).optional(),
  labels: z.array(nonEmpty).min(1).optional(),
  /** Training settings for this dataset only, over the shared ones (papers set epochs and lr per task). */
  training: training.partial().optional(),
  /** Evaluations run after training on this dataset only (in grid cells), after the shared ones. */
  evaluations: z.array(evaluation).optional(),
});

/** An adapter method and its hyper-parameters (`--method`, `--rank`, `--alpha`, ...). */
const method = z.strictObject({
  method: z.enum(['lora', 'share-a', 'share-b', 'share-ab', 'share-qkv', 'full']),
  rank: positiveInt.optional(),
  alpha: z.number().positive().optional(),
  dropout: fraction.optional(),
  targets: targets.optional(),
  /** Peak learning rate for this method (overrides the shared one). */
  lr: z.number().positive().optional(),
});

const nonEmptyRecord = <T extends z.ZodType>(value: T, what: string) =>
  z.record(name, value).refine((r) => Object.keys(r).length > 0, { message: `name at least one ${what}` });

/** The zod schema of an experiment file (after YAML/JSON parsing). */
export const experimentSchema = z
  .strictObject({
    /** Names the experiment (reports and job names). */
    name,
    description: z.string().optional(),
    /** Output folder, relative to the experiment file (default: `<file name>-runs` beside it). */
    output: nonEmpty.optional(),
    models: nonEmptyRecord(modelRecipe, 'model'),
    datasets: nonEmptyRecord(dataset, 'dataset'),
    methods: nonEmptyRecord(method, 'method'),
    training: training.default({}),
    evaluations: z.array(evaluation).default([]),
    seeds: z
      .array(z.number().int().nonnegative())
      .min(1)
      .refine((s) => new Set(s).size === s.length, { message: 'seeds repeat' })
      .default([0]),
    /** Datasets of the grid (default: all of them); [] runs the sequences only. */
    grid: z.array(name).optional(),
    /**
     * Continual learning: named orders of datasets. One adapter is trained on each in turn (a stage
     * goes on from the last one's adapter), and after every stage it is scored on every dataset of the
     * sequence: the forgetting table.
     */
    sequences: z.record(name, z.array(name).min(2, 'a sequence has at least two datasets')).default({}),
  })
  .superRefine((exp, ctx) => {
    const known = (d: string) => Object.hasOwn(exp.datasets, d);
    for (const [i, d] of (exp.grid ?? []).entries())
      if (!known(d)) ctx.addIssue({ code: 'custom', path: ['grid', i], message: `no dataset "${d}"` });
    for (const [seq, list] of Object.entries(exp.sequences))
      for (const [i, d] of list.entries()) {
        if (!known(d))
          ctx.addIssue({ code: 'custom', path: ['sequences', seq, i], message: `no dataset "${d}"` });
        else if (!exp.datasets[d].eval)
          ctx.addIssue({
            code: 'custom',
            path: ['sequences', seq, i],
            message: `dataset "${d}" needs an eval file: every stage is scored on it`,
          });
      }
  });

/** A validated experiment file, defaults filled in. */
export type Experiment = z.infer<typeof experimentSchema>;
/** Where a model comes from: `path`, `init` or `import`. */
export type ModelRecipe = Experiment['models'][string];
/** A training file, its format, and an optional held-out file. */
export type DatasetSpec = Experiment['datasets'][string];
/** An adapter method with its rank, alpha and overrides. */
export type MethodSpec = Experiment['methods'][string];
/** Train options shared by every cell, by long flag name. */
export type TrainingSpec = Experiment['training'];
/** One `sharelora eval` run after training. */
export type EvaluationSpec = Experiment['evaluations'][number];

/** A malformed experiment file: `issues` name each bad key as a dotted path. */
export class ExperimentError extends Error {
  constructor(
    readonly file: string,
    readonly issues: string[],
  ) {
    super(`${file}: ${issues.length === 1 ? issues[0] : `\n  ${issues.join('\n  ')}`}`);
    this.name = 'ExperimentError';
  }
}

function keyPath(path: readonly PropertyKey[]): string {
  return path
    .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
    .join('.')
    .replace(/\.\[/g, '[');
}

/** Parses and validates an experiment file's text (YAML, of which JSON is a subset). */
export function parseExperiment(text: string, file: string): Experiment {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ExperimentError(file, [`not valid YAML or JSON: ${(e as Error).message}`]);
  }
  const parsed = experimentSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ExperimentError(
      file,
      parsed.error.issues.map((i) => {
        // Typos in training settings are the common case: say which keys there are.
        const hint =
          i.code === 'unrecognized_keys' && keyPath(i.path) === 'training'
            ? ` (training keys are train's long flag names: ${Object.keys(training.shape).join(', ')})`
            : '';
        return i.path.length ? `${keyPath(i.path)}: ${i.message}${hint}` : i.message;
      }),
    );
  }
  return parsed.data;
}
