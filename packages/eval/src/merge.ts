/**
 * Merging shards. A shard is an ordinary result file of a run with `shard: {index, count}`; the merge
 * checks that the files are the complete set of one run (same model, adapter, task and settings,
 * every shard index once, every selected document once), orders the samples by document and
 * recomputes the metrics from them, which gives exactly what the unsharded run writes.
 */
import { ResultsMergeError } from './errors.js';
import { type EvalResult, readResult } from './results.js';
import type { SampleFieldKind } from './tasks/definition.js';
import { EVAL_TASK_DEFINITIONS, taskDefinition } from './tasks/registry.js';

function hasKind(v: unknown, kind: SampleFieldKind): boolean {
  if (kind === 'integer') return Number.isInteger(v);
  if (kind === 'array') return Array.isArray(v);
  if (kind === 'object') return v !== null && typeof v === 'object' && !Array.isArray(v);
  return typeof v === kind;
}

function taskOf(result: EvalResult) {
  const t = taskDefinition(result.task);
  if (!t)
    throw new ResultsMergeError(
      `unknown task "${result.task}" (known: ${EVAL_TASK_DEFINITIONS.flatMap((d) => d.names).join(', ')})`,
    );
  return t;
}

/** Checks that every sample has the fields the task's metrics read (`name` labels the result). */
function checkSamples(result: EvalResult, name: string): void {
  const { sampleFields } = taskOf(result);
  for (const [i, sample] of result.samples.entries()) {
    for (const [field, kind] of sampleFields) {
      if (!hasKind(sample[field], kind)) {
        throw new ResultsMergeError(
          `${name}: samples[${i}] (document ${sample.doc}) has no ${kind} "${field}", which ${result.task} results carry`,
        );
      }
    }
  }
}

/** Recomputes a result's metrics from its samples. */
export function recomputeMetrics(result: EvalResult, name = 'result'): unknown {
  const { metrics } = taskOf(result);
  checkSamples(result, name);
  try {
    return metrics(result.samples, result.settings);
  } catch (e) {
    // Fields nested deeper than checkSamples looks, or settings a hand-edited file lacks.
    if (e instanceof TypeError)
      throw new ResultsMergeError(
        `${name}: cannot recompute ${result.task} metrics (${e.message}); is it a file sharelora eval wrote?`,
      );
    throw e;
  }
}

/** JSON with sorted keys, so that settings compare by content, not key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v as object)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}

/** Recombines the shards of one run (`names` label them in error messages, e.g. file paths). */
export function mergeResults(
  results: EvalResult[],
  names: string[] = results.map((_, i) => `result ${i}`),
): EvalResult {
  if (results.length === 0) throw new ResultsMergeError('nothing to merge');
  const first = results[0];
  const base = canonical({ ...first.settings, shard: null });
  for (const [i, r] of results.entries()) {
    for (const key of ['model', 'adapter', 'task'] as const) {
      if (r[key] !== first[key]) {
        throw new ResultsMergeError(
          `${names[i]} has ${key} ${JSON.stringify(r[key])}, ${names[0]} has ${JSON.stringify(first[key])}`,
        );
      }
    }
    if (canonical({ ...r.settings, shard: null }) !== base) {
      throw new ResultsMergeError(`${names[i]} was run with different settings than ${names[0]}`);
    }
  }
  const unsharded = results.filter((r) => r.settings.shard === null);
  if (unsharded.length > 0 && results.length > 1) {
    throw new ResultsMergeError(`${names[results.indexOf(unsharded[0])]} is a complete run, not a shard`);
  }
  if (unsharded.length === 0) {
    const count = first.settings.shard?.count as number;
    const seen = new Map<number, string>();
    for (const [i, r] of results.entries()) {
      const shard = r.settings.shard as { index: number; count: number };
      if (shard.count !== count)
        throw new ResultsMergeError(`${names[i]} is shard ${shard.index}/${shard.count}, expected /${count}`);
      const other = seen.get(shard.index);
      if (other !== undefined)
        throw new ResultsMergeError(`${names[i]} and ${other} are both shard ${shard.index}/${count}`);
      seen.set(shard.index, names[i]);
    }
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
    if (missing.length > 0)
      throw new ResultsMergeError(`missing shard(s) ${missing.map((i) => `${i}/${count}`).join(', ')}`);
  }
  for (const [i, r] of results.entries()) checkSamples(r, names[i]);
  const samples = results.flatMap((r) => r.samples).sort((a, b) => a.doc - b.doc);
  for (let i = 1; i < samples.length; i++) {
    if (samples[i].doc === samples[i - 1].doc)
      throw new ResultsMergeError(`document ${samples[i].doc} appears in more than one shard`);
  }
  if (samples.length !== first.settings.documents) {
    throw new ResultsMergeError(
      `the shards hold ${samples.length} documents, the run selected ${first.settings.documents}`,
    );
  }
  const merged: EvalResult = {
    model: first.model,
    adapter: first.adapter,
    task: first.task,
    settings: { ...first.settings, shard: null },
    metrics: {},
    samples,
  };
  merged.metrics = recomputeMetrics(
    merged,
    names.length === 1 ? names[0] : `the merge of ${names.join(', ')}`,
  );
  return merged;
}

/** Reads shard files and merges them (see mergeResults). */
export async function mergeResultFiles(files: string[]): Promise<EvalResult> {
  const results = await Promise.all(files.map((f) => readResult(f)));
  return mergeResults(results, files);
}
