/**
 * Beam search on any CausalLM, scored as transformers' `num_beams` search scores it.
 *
 * Each prompt keeps up to `numBeams` running sequences (beams), scored by their summed
 * log-probability. A step extends every beam by every token: log_softmax of the model's f32 logits,
 * taken in float64 on the CPU, added to the beam's score. The best 2·numBeams of these candidates
 * (more with several EOS ids) are read best first: one ending in an EOS id, if it ranks among the
 * first numBeams, becomes a finished hypothesis scored sum / length^lengthPenalty (the length counts
 * the new tokens, its EOS included); the others become the next beams until numBeams are taken. A
 * prompt's search ends when it has numBeams hypotheses and either `earlyStopping` is set or its best
 * running beam, normalised by its current length, does not beat the worst of them; or when it has
 * generated maxNewTokens (or reached the model's context), where its running beams join the
 * hypotheses. The best hypothesis is the result.
 *
 * The beams of several prompts run as the rows of one forward with a KV cache; after each step the
 * cache is rebuilt from the rows of the beams kept ({@link KVCache.reorder}), so no step recomputes
 * earlier positions. Prompts of different lengths are left-padded with an attention mask and position
 * ids that count only real tokens, as generateTokens does.
 */
import { ShareloraError } from '@sharelora/core';
import { positionIdsFromAttentionMask } from '../arch/common.js';
import { type CausalLM, KVCache } from '../arch/types.js';
import { fitContext, nextLogits, warnToConsole } from './step.js';

/** Options of {@link beamSearch}. */
export interface BeamSearchOptions {
  /** Beams kept per prompt, and hypotheses collected before a prompt may stop (an integer >= 1). */
  numBeams: number;
  /** Most tokens generated per prompt, an EOS included (default 128). */
  maxNewTokens?: number;
  /**
   * Exponent of the length a finished sequence's summed log-probability is divided by (default 1):
   * above 0 favours longer sequences, below 0 shorter ones, 0 ranks by the plain sum.
   */
  lengthPenalty?: number;
  /**
   * Stop a prompt as soon as it has numBeams finished hypotheses (default false: only once its
   * running beams can no longer beat the worst of them, judged at their current length).
   */
  earlyStopping?: boolean;
  /**
   * Never produce an n-gram of this size twice in a sequence, counting the prompt: a token that would
   * complete an n-gram already present gets log-probability -Infinity (default 0: off).
   */
  noRepeatNgramSize?: number;
  /** Tokens that end a sequence, not included in its output (default: the model config's eos_token_id). */
  eosIds?: readonly number[];
  /** Token fed at left padding (default: the first EOS id, else 0). */
  padId?: number;
  /** Keep keys/values between steps (default true); false recomputes every beam's whole sequence each step. */
  useCache?: boolean;
  /** Prompts searched together, their beams the rows of one forward (default max(1, ⌊64 / numBeams⌋)). */
  batchSize?: number;
  /**
   * Warnings (default: console.warn). Prompts cut to fit the context give one per call, with the
   * number of prompts cut.
   */
  onWarning?: (message: string, promptsCut?: number) => void;
}

/** One prompt's result of {@link beamSearch}: its best finished hypothesis. */
export interface BeamSearchResult {
  /** Generated ids; the EOS that ended the sequence is not included. */
  tokens: number[];
  /** `eos`: the sequence ended with an EOS id; `length`: it ran to maxNewTokens or the model's context. */
  finishReason: 'eos' | 'length';
  /**
   * Summed float64 log-probability of the generated tokens (its EOS included) divided by their
   * count (the EOS included) raised to lengthPenalty; 0 when nothing was generated.
   */
  score: number;
}

/** A finished sequence. */
interface Hypothesis {
  tokens: number[];
  score: number;
  eos: boolean;
}

/** The best `size` finished sequences of one prompt, best first. */
class Hypotheses {
  readonly list: Hypothesis[] = [];

  constructor(private readonly size: number) {}

  get full(): boolean {
    return this.list.length >= this.size;
  }

  /** Score of the worst kept hypothesis (+Infinity while there is none). */
  get worst(): number {
    return this.list.length ? this.list[this.list.length - 1].score : Number.POSITIVE_INFINITY;
  }

  /** Keeps `h` while there is room or when it beats the worst, which it then replaces. */
  add(h: Hypothesis): void {
    if (this.full && !(h.score > this.worst)) return;
    let at = this.list.length;
    while (at > 0 && !(this.list[at - 1].score >= h.score)) at--;
    this.list.splice(at, 0, h);
    if (this.list.length > this.size) this.list.pop();
  }
}

/** A running sequence: its new tokens and their summed log-probability. */
interface Beam {
  tokens: number[];
  score: number;
}

/** One prompt's search. */
interface Search {
  /** Position in the caller's prompt list. */
  index: number;
  prompt: readonly number[];
  /** Tokens it may generate: maxNewTokens, or fewer where the context ends. */
  budget: number;
  beams: Beam[];
  hyps: Hypotheses;
  result: BeamSearchResult | null;
}

/** x / n^p, the length-normalised score. */
const normalised = (sum: number, length: number, penalty: number): number => sum / length ** penalty;

/**
 * Row `r` of `logits` [R, V] as float64 log-probabilities (NaN logits count as -Infinity), written
 * to `out` at `at`.
 */
function logSoftmaxRow(logits: Float32Array, r: number, V: number, out: Float64Array, at: number): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let v = 0; v < V; v++) {
    const x = logits[r * V + v];
    if (x > max) max = x;
  }
  if (max === Number.NEGATIVE_INFINITY || max === Number.POSITIVE_INFINITY)
    throw new ShareloraError(
      'BAD_LOGITS',
      `next-token logits are all NaN/-Infinity or contain +Infinity: the model produced no usable scores`,
    );
  let total = 0;
  for (let v = 0; v < V; v++) {
    const x = logits[r * V + v];
    if (x > Number.NEGATIVE_INFINITY) total += Math.exp(x - max);
  }
  const lse = max + Math.log(total);
  for (let v = 0; v < V; v++) {
    const x = logits[r * V + v];
    out[at + v] = x > Number.NEGATIVE_INFINITY ? x - lse : Number.NEGATIVE_INFINITY;
  }
}

/** Tokens that would repeat an n-gram of `seq` if appended to it. */
function bannedByNgrams(seq: readonly number[], n: number): number[] {
  if (n <= 0 || seq.length < n - 1) return [];
  const banned: number[] = [];
  const from = seq.length - (n - 1);
  for (let i = 0; i + n - 1 < seq.length; i++) {
    let same = true;
    for (let j = 0; j < n - 1 && same; j++) same = seq[i + j] === seq[from + j];
    if (same) banned.push(seq[i + n - 1]);
  }
  return banned;
}

/**
 * Indices of the `k` largest entries of `scores`, best first; equal scores keep index order. A
 * bounded heap whose root is the worst kept entry: O(N log k).
 */
function topIndices(scores: Float64Array, k: number): number[] {
  k = Math.min(k, scores.length);
  if (k <= 0) return [];
  // a ranks below b: a lower score, or an equal score at a later index.
  const below = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  const heap: number[] = [];
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && below(heap[l], heap[m])) m = l;
      if (r < heap.length && below(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let i = 0; i < scores.length; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0; ) {
        const p = (c - 1) >> 1;
        if (!below(heap[c], heap[p])) break;
        [heap[c], heap[p]] = [heap[p], heap[c]];
        c = p;
      }
    } else if (below(heap[0], i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap.sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
}

/** Throws BAD_ARGUMENT for beam-search options that cannot be honoured. */
export function checkBeamOptions(opts: BeamSearchOptions): void {
  const bad = (what: string) => {
    throw new ShareloraError('BAD_ARGUMENT', what);
  };
  const { numBeams, maxNewTokens = 128, lengthPenalty = 1, noRepeatNgramSize = 0 } = opts;
  if (!Number.isInteger(numBeams) || numBeams < 1) bad(`numBeams must be an integer >= 1, got ${numBeams}`);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
    bad(`maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!Number.isFinite(lengthPenalty)) bad(`lengthPenalty must be a finite number, got ${lengthPenalty}`);
  if (!Number.isInteger(noRepeatNgramSize) || noRepeatNgramSize < 0)
    bad(`noRepeatNgramSize must be a non-negative integer, got ${noRepeatNgramSize}`);
  if (opts.batchSize !== undefined && (!Number.isInteger(opts.batchSize) || opts.batchSize < 1))
    bad(`batchSize must be an integer >= 1, got ${opts.batchSize}`);
}

/**
 * Beam search from token-id prompts: one {@link BeamSearchResult} per prompt, its best finished
 * hypothesis (see the module comment for the scoring). With numBeams 1 and no EOS it is greedy
 * decoding; with an EOS it may differ, as a beam keeps running past an EOS candidate that did not
 * end the search.
 */
export async function beamSearch(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: BeamSearchOptions,
): Promise<BeamSearchResult[]> {
  checkBeamOptions(opts);
  const K = opts.numBeams;
  const maxNew = opts.maxNewTokens ?? 128;
  if (prompts.length === 0) return [];
  prompts.forEach((p, i) => {
    if (p.length === 0)
      throw new ShareloraError(
        'BAD_ARGUMENT',
        `prompt ${i} encodes to no tokens: generation needs at least one`,
      );
  });
  const { config } = model;
  const limit = config.maxPositions;
  prompts = fitContext(prompts, limit, maxNew, opts.onWarning ?? warnToConsole);
  const eos = new Set(opts.eosIds ?? config.eosTokenIds);
  const batch = opts.batchSize ?? Math.max(1, Math.floor(64 / K));
  const searches: Search[] = prompts.map((prompt, index) => ({
    index,
    prompt,
    // A row may generate until prompt + new tokens fill the context, and always at least one token.
    budget: maxNew === 0 ? 0 : Math.min(maxNew, Math.max(1, limit - prompt.length)),
    beams: [{ tokens: [], score: 0 }],
    hyps: new Hypotheses(K),
    result: null,
  }));
  for (const s of searches) {
    if (s.budget === 0) s.result = { tokens: [], finishReason: 'length', score: 0 };
  }
  const pending = searches.filter((s) => !s.result);
  for (let i = 0; i < pending.length; i += batch) {
    await searchGroup(model, pending.slice(i, i + batch), eos, opts);
  }
  return searches.map((s) => s.result as BeamSearchResult);
}

/** Runs the searches of `group` together until each has its result. */
async function searchGroup(
  model: CausalLM,
  group: Search[],
  eos: ReadonlySet<number>,
  opts: BeamSearchOptions,
): Promise<void> {
  const K = opts.numBeams;
  const penalty = opts.lengthPenalty ?? 1;
  const ngram = opts.noRepeatNgramSize ?? 0;
  const pad = opts.padId ?? [...eos][0] ?? 0;
  // Candidates read per step: enough that numBeams of them do not end in an EOS.
  const candidates = Math.max(2, 1 + eos.size) * K;
  const S0 = Math.max(...group.map((s) => s.prompt.length));
  const padded = group.some((s) => s.prompt.length < S0);
  const padOf = (s: Search) => S0 - s.prompt.length;
  /** A row's whole input: left padding, prompt, new tokens. */
  const fullRow = (s: Search, b: Beam) => [
    ...new Array<number>(padOf(s)).fill(pad),
    ...s.prompt,
    ...b.tokens,
  ];
  /** A row's attention mask over its whole input. */
  const maskRow = (s: Search, generated: number) => [
    ...new Array<number>(padOf(s)).fill(0),
    ...new Array<number>(s.prompt.length + generated).fill(1),
  ];
  const cache = (opts.useCache ?? true) ? new KVCache() : undefined;
  try {
    // Rows of the next forward: the running searches' beams in order.
    let running = group;
    let input = group.map((s) => fullRow(s, s.beams[0]));
    let mask: number[][] | null = padded ? group.map((s) => maskRow(s, 0)) : null;
    let positions = mask ? positionIdsFromAttentionMask(mask) : null;
    for (let generated = 1; running.length > 0; generated++) {
      const logits = await nextLogits(model, input, mask, positions, cache);
      const V = logits.length / input.length;
      const parents: number[] = [];
      let row = 0;
      for (const s of running) {
        const first = row;
        const n = s.beams.length;
        row += n;
        const scores = new Float64Array(n * V);
        for (const [j, b] of s.beams.entries()) {
          logSoftmaxRow(logits, first + j, V, scores, j * V);
          if (ngram > 0) {
            for (const id of bannedByNgrams([...s.prompt, ...b.tokens], ngram))
              if (id >= 0 && id < V) scores[j * V + id] = Number.NEGATIVE_INFINITY;
          }
          for (let v = 0; v < V; v++) scores[j * V + v] += b.score;
        }
        const next: Beam[] = [];
        const from: number[] = [];
        for (const [rank, c] of topIndices(scores, candidates).entries()) {
          const j = Math.floor(c / V);
          const id = c - j * V;
          const parent = s.beams[j];
          if (eos.has(id)) {
            // As transformers: an EOS below the first numBeams candidates is not a hypothesis.
            if (rank < K)
              s.hyps.add({
                tokens: parent.tokens,
                score: normalised(scores[c], generated, penalty),
                eos: true,
              });
          } else {
            next.push({ tokens: [...parent.tokens, id], score: scores[c] });
            from.push(first + j);
            if (next.length >= K) break;
          }
        }
        s.beams = next;
        const stop =
          next.length === 0 ||
          (s.hyps.full &&
            (opts.earlyStopping || normalised(next[0].score, generated, penalty) <= s.hyps.worst));
        if (!stop && generated >= s.budget) {
          for (const b of next)
            s.hyps.add({ tokens: b.tokens, score: normalised(b.score, generated, penalty), eos: false });
        }
        if (stop || generated >= s.budget) {
          const best = s.hyps.list[0];
          s.result = { tokens: best.tokens, finishReason: best.eos ? 'eos' : 'length', score: best.score };
        } else {
          parents.push(...from);
        }
      }
      running = running.filter((s) => !s.result);
      if (running.length === 0) break;
      if (cache) {
        cache.reorder(parents);
        input = running.flatMap((s) => s.beams.map((b) => [b.tokens[b.tokens.length - 1]]));
        // Every row has its whole mask; a row's new position is its count of real tokens before it.
        mask = padded ? running.flatMap((s) => s.beams.map(() => maskRow(s, generated))) : null;
        positions = padded
          ? running.flatMap((s) => s.beams.map(() => [s.prompt.length + generated - 1]))
          : null;
      } else {
        input = running.flatMap((s) => s.beams.map((b) => fullRow(s, b)));
        mask = padded ? running.flatMap((s) => s.beams.map(() => maskRow(s, generated))) : null;
        positions = mask ? positionIdsFromAttentionMask(mask) : null;
      }
    }
  } finally {
    cache?.dispose();
  }
}
