/** What every harness shares: document selection (limit, shard), batching and progress reporting. */
import { EvalConfigError, EvalModelError } from './errors.js';
import type { EvalModel } from './model.js';

/** Shard `index` of `count` evaluates the selected documents whose position i has i % count === index. */
export interface Shard {
  index: number;
  count: number;
}

/**
 * Progress of a harness, reported through {@link RunOptions.onProgress} after every batch: `done`
 * of `total` items of the current stage.
 */
export interface Progress {
  /** The task being evaluated, as result files name it (e.g. gsm8k, mmlu, glue-sst2). */
  task: string;
  /** What is being done: "generate", "loglikelihood", "next-token", "execute" or "classify". */
  stage: string;
  done: number;
  total: number;
}

/**
 * Options every harness takes ({@link evaluateGsm8k}, {@link evaluateMmlu}, ...): which documents
 * (limit, shard), batching, progress and what to record. Each task's options extend them.
 */
export interface RunOptions {
  /** Evaluate only the first `limit` documents (per subject / category for MMLU and MMLU-Pro, as lm-eval does). */
  limit?: number;
  /** Evaluate one shard of the (limited) documents; merge the shards' files with mergeResults. */
  shard?: Shard;
  /** Requests per model call (default 8). */
  batchSize?: number;
  /** Called after every batch of model calls. */
  onProgress?: (progress: Progress) => void;
  /** Recorded as `adapter` in the result (the harness itself never sees adapters). */
  adapter?: string | null;
}

/** Parses the CLI form "I/N" (0 ≤ I < N). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new EvalConfigError(`--shard must look like I/N (e.g. 0/4), got "${text}"`);
  const shard = { index: Number(m[1]), count: Number(m[2]) };
  validateShard(shard);
  return shard;
}

export function validateShard(shard: Shard): void {
  if (!Number.isInteger(shard.count) || shard.count < 1) {
    throw new EvalConfigError(`shard count must be a positive integer, got ${shard.count}`);
  }
  if (!Number.isInteger(shard.index) || shard.index < 0 || shard.index >= shard.count) {
    throw new EvalConfigError(`shard index must be in 0..${shard.count - 1}, got ${shard.index}`);
  }
}

export function validateLimit(limit: number | undefined): number | null {
  if (limit === undefined) return null;
  if (!Number.isInteger(limit) || limit < 1)
    throw new EvalConfigError(`limit must be a positive integer, got ${limit}`);
  return limit;
}

/** Keeps the positions of `positions` that belong to the shard (all of them without one). */
export function applyShard<T>(items: T[], shard: Shard | undefined): T[] {
  if (!shard) return items;
  validateShard(shard);
  return items.filter((_, i) => i % shard.count === shard.index);
}

/** First `limit` documents of each group, in document order (lm-eval applies --limit per subtask). */
export function limitPerGroup(groups: string[], limit: number | null): number[] {
  const seen = new Map<string, number>();
  const out: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const n = seen.get(groups[i]) ?? 0;
    if (limit === null || n < limit) out.push(i);
    seen.set(groups[i], n + 1);
  }
  return out;
}

export function firstN(count: number, limit: number | null): number[] {
  return Array.from({ length: limit === null ? count : Math.min(count, limit) }, (_, i) => i);
}

/**
 * Runs `requests` through `call` in batches of `batchSize`, checking that each call returns one result
 * per request, and reports progress after every batch.
 */
export async function batched<Q, R>(
  requests: Q[],
  call: (batch: Q[]) => Promise<R[]>,
  opts: { batchSize: number; report: (done: number, total: number) => void; what: string },
): Promise<R[]> {
  const out: R[] = [];
  opts.report(0, requests.length);
  for (let start = 0; start < requests.length; start += opts.batchSize) {
    const batch = requests.slice(start, start + opts.batchSize);
    const results = await call(batch);
    if (!Array.isArray(results) || results.length !== batch.length) {
      throw new EvalModelError(
        `${opts.what} returned ${Array.isArray(results) ? results.length : 'no array of'} results for ${batch.length} requests`,
      );
    }
    out.push(...results);
    opts.report(out.length, requests.length);
  }
  return out;
}

export function batchSizeOf(opts: RunOptions): number {
  const b = opts.batchSize ?? 8;
  if (!Number.isInteger(b) || b < 1)
    throw new EvalConfigError(`batchSize must be a positive integer, got ${b}`);
  return b;
}

export function reporter(
  task: string,
  stage: string,
  opts: RunOptions,
): (done: number, total: number) => void {
  return (done, total) => opts.onProgress?.({ task, stage, done, total });
}

/**
 * Seed of one generation request, a hash of (run seed, document, sample number): the same document
 * gets the same seed whichever shard or batch it lands in.
 */
export function requestSeed(seed: number, doc: number, sample = 0): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [doc, sample]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Cuts `text` at the earliest occurrence of any stop string (lm-eval's `until`). */
export function truncateAtStop(text: string, stops: readonly string[]): string {
  let cut = text.length;
  for (const s of stops) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i !== -1 && i < cut) cut = i;
  }
  return text.slice(0, cut);
}

/** Mean and lm-eval's standard error of the mean (sample standard deviation / √n). */
export function meanWithStderr(values: number[]): { mean: number; stderr: number } {
  const n = values.length;
  if (n === 0) return { mean: 0, stderr: 0 };
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  if (n < 2) return { mean, stderr: 0 };
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return { mean, stderr: Math.sqrt(ss / (n - 1)) / Math.sqrt(n) };
}

/** How {@link generateForDocs} generates: stops, length, temperature and seed, and beam search's width. */
export interface GenerationSettings {
  stop: string[];
  maxNewTokens: number;
  temperature: number;
  seed: number;
  /** Beams of a beam search (greedy decoding only); absent or 1: no beam search. */
  numBeams?: number;
}

/** One continuation per item, generated in batches; each request is seeded by its document and sample. */
export function generateForDocs(
  model: EvalModel,
  task: string,
  items: { prompt: string; doc: number; sample?: number }[],
  gen: GenerationSettings,
  options: RunOptions,
): Promise<string[]> {
  const { stop, maxNewTokens, temperature, numBeams } = gen;
  return batched(
    items.map(({ prompt, doc, sample }) => ({
      prompt,
      stop,
      maxNewTokens,
      temperature,
      seed: requestSeed(gen.seed, doc, sample),
      ...(numBeams !== undefined && numBeams > 1 ? { numBeams } : {}),
    })),
    (batch) => model.generate(batch),
    {
      batchSize: batchSizeOf(options),
      report: reporter(task, 'generate', options),
      what: `${model.name}.generate`,
    },
  );
}
