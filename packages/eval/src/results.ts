/**
 * Result files: one JSON document per run, holding everything needed to audit a score and to
 * recompute it (every sample's prompt, output, target and verdict), so shards can be merged by
 * recomputing metrics from their samples.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@sharelora/core/node';
import { EvalDataError } from './errors.js';
import type { Shard } from './run.js';

/**
 * The `settings` of a result file: what decides which documents were evaluated and how, so that
 * shards can be checked for agreement and merged ({@link mergeResults}). Each task adds its own
 * keys (shots, scoring, seed, ...).
 */
export interface ResultSettings {
  /** The --limit in force (null: none); part of the document selection, so shards must agree on it. */
  limit: number | null;
  /** This file's shard, or null for a complete run (and for merged shards). */
  shard: Shard | null;
  /** Documents selected by the limit, over all shards. */
  documents: number;
  [key: string]: unknown;
}

/** One evaluated document; `doc` is its position in the task's document order. */
export interface ResultSample {
  doc: number;
  [key: string]: unknown;
}

/**
 * A result file: one run of one task on one model, with every evaluated sample and the metrics
 * computed from them. `S` is the task's sample type, `M` its metrics type. {@link writeResult}
 * writes it; {@link readResult} reads and checks it.
 */
export interface EvalResult<S extends ResultSample = ResultSample, M = unknown> {
  model: string;
  /** The adapter evaluated on top of the model ({@link RunOptions.adapter}), or null. */
  adapter: string | null;
  /** Task name, e.g. gsm8k-cot, mmlu-pro, glue-rte. */
  task: string;
  settings: ResultSettings;
  metrics: M;
  /** Every evaluated document, in document order. */
  samples: S[];
}

/** Writes a result as pretty-printed JSON, atomically (temporary file + rename; no temporary file is left on failure). */
export async function writeResult(file: string, result: EvalResult): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(result, null, 2)}\n`);
}

/** Reads and shape-checks a result file. */
export async function readResult(file: string): Promise<EvalResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new EvalDataError(
      file,
      null,
      (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(e),
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new EvalDataError(file, null, `not valid JSON (${(e as Error).message})`);
  }
  return checkResult(value, file);
}

/**
 * Checks that a parsed JSON value has the shape of an {@link EvalResult} (model, adapter, task,
 * settings, and samples each with an integer `doc`) and returns it typed; `file` is named in the
 * error. The metrics and the task-specific sample fields are not checked. Throws an
 * {@link EvalDataError} otherwise.
 */
export function checkResult(value: unknown, file: string): EvalResult {
  const bad = (what: string): never => {
    throw new EvalDataError(file, null, `not a sharelora result file: ${what}`);
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) bad('expected a JSON object');
  const r = value as Record<string, unknown>;
  if (typeof r.model !== 'string') bad('"model" must be a string');
  if (r.adapter !== null && typeof r.adapter !== 'string') bad('"adapter" must be a string or null');
  if (typeof r.task !== 'string') bad('"task" must be a string');
  const s = r.settings as Record<string, unknown> | null;
  if (s === null || typeof s !== 'object') bad('"settings" must be an object');
  if (!Number.isInteger(s?.documents)) bad('"settings.documents" must be an integer');
  if (s?.limit !== null && !Number.isInteger(s?.limit)) bad('"settings.limit" must be an integer or null');
  const shard = s?.shard as Shard | null;
  if (
    shard !== null &&
    !(typeof shard === 'object' && Number.isInteger(shard.index) && Number.isInteger(shard.count))
  ) {
    bad('"settings.shard" must be null or {index, count}');
  }
  if (!Array.isArray(r.samples)) bad('"samples" must be an array');
  for (const [i, sample] of (r.samples as unknown[]).entries()) {
    if (sample === null || typeof sample !== 'object' || !Number.isInteger((sample as ResultSample).doc)) {
      bad(`samples[${i}] has no integer "doc"`);
    }
  }
  return value as EvalResult;
}
