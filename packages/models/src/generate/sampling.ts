/**
 * Choosing the next token from one row of logits, on the CPU in float64: greedy, or temperature
 * scaling, then top-k, then top-p (nucleus) filtering, then a draw from the seeded generator.
 */
import { type Rng, ShareloraError } from '@sharelora/core';

/**
 * How the next token is picked from one row of logits: greedy at temperature 0, else a seeded draw
 * after temperature, top-k and top-p filtering ({@link sampleToken}). {@link checkSampling} rejects
 * values that cannot be honoured.
 */
export interface SamplingOptions {
  /** Softmax temperature; 0 (the default) picks the most likely token (greedy). */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 or undefined keeps all. */
  topK?: number;
  /**
   * Nucleus sampling: keep the most likely tokens until their probability (after top-k) reaches topP;
   * the token that crosses it is kept, and always at least one. 1 or undefined keeps all.
   */
  topP?: number;
}

/** Throws on options that cannot be honoured (a negative temperature, top-p outside (0, 1], ...). */
export function checkSampling(opts: SamplingOptions): void {
  const { temperature = 0, topK = 0, topP = 1 } = opts;
  const bad = (what: string) => {
    throw new ShareloraError('BAD_ARGUMENT', what);
  };
  if (!Number.isFinite(temperature) || temperature < 0) bad(`temperature must be >= 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) bad(`topK must be a non-negative integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) bad(`topP must be in (0, 1], got ${topP}`);
}

/** Index of the largest value; the first one on ties, as torch.argmax. NaN entries are never chosen. */
export function argmax(values: ArrayLike<number>): number {
  let best = -1;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    if (values[i] > bestValue || (best < 0 && values[i] === bestValue)) {
      best = i;
      bestValue = values[i];
    }
  }
  if (best < 0)
    throw new ShareloraError('BAD_LOGITS', 'every logit is NaN: the model produced no usable scores');
  return best;
}

/**
 * The filtered next-token distribution {@link samplingDistribution} returns: what
 * {@link sampleToken} draws from.
 */
export interface TokenDistribution {
  /** Token ids kept by the filters, most likely first. */
  ids: number[];
  /** Their probabilities, renormalised to sum to 1. */
  probs: Float64Array;
}

/** The distribution sampling draws from (temperature > 0): the kept tokens and their probabilities. */
export function samplingDistribution(logits: ArrayLike<number>, opts: SamplingOptions): TokenDistribution {
  checkSampling(opts);
  const temperature = opts.temperature ?? 0;
  if (temperature === 0)
    throw new ShareloraError('BAD_ARGUMENT', 'temperature 0 is greedy decoding: use argmax');
  const order: number[] = [];
  for (let i = 0; i < logits.length; i++)
    if (!Number.isNaN(logits[i]) && logits[i] > Number.NEGATIVE_INFINITY) order.push(i);
  if (order.length === 0)
    throw new ShareloraError('BAD_LOGITS', 'every logit is NaN or -inf: nothing to sample');
  // Most likely first; equal logits keep id order so the result does not depend on the sort.
  order.sort((a, b) => logits[b] - logits[a] || a - b);
  const topK = opts.topK ?? 0;
  const kept = topK > 0 ? order.slice(0, topK) : order;
  const top = logits[kept[0]] / temperature;
  const probs = new Float64Array(kept.length);
  let total = 0;
  for (let i = 0; i < kept.length; i++) {
    probs[i] = Math.exp(logits[kept[i]] / temperature - top);
    total += probs[i];
  }
  let n = kept.length;
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let mass = 0;
    n = 0;
    while (n < kept.length && mass < topP) mass += probs[n++] / total;
  }
  const out = probs.slice(0, n);
  const keptTotal = out.reduce((s, p) => s + p, 0);
  for (let i = 0; i < n; i++) out[i] /= keptTotal;
  return { ids: kept.slice(0, n), probs: out };
}

/** The next token: argmax at temperature 0, else one draw from samplingDistribution with `rng`. */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  if ((opts.temperature ?? 0) === 0) return argmax(logits);
  const { ids, probs } = samplingDistribution(logits, opts);
  const u = rng.uniform();
  let cum = 0;
  for (let i = 0; i < ids.length; i++) {
    cum += probs[i];
    if (u < cum) return ids[i];
  }
  // Rounding can leave the cumulative sum a hair under u.
  return ids[ids.length - 1];
}
