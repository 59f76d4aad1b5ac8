/**
 * Scoring text with a causal LM, as multiple-choice evaluation needs it: log-likelihoods of
 * continuations given contexts (lm-evaluation-harness's `loglikelihood`), per-position log-probs and
 * logits, and next-token log-probs of candidate answers (QLoRA's letter-logit MMLU).
 *
 * Requests are sorted by length and batched with right padding: under causal attention, padding after
 * a sequence cannot change its logits, so no mask is needed and each row scores as it would alone.
 */
import { crossEntropy, logSoftmax, noGrad, ShareloraError, type Tensor, tensor, tidy } from '@sharelora/core';
import { keepPositions, logitChunks } from '../arch/common.js';
import type { CausalLM } from '../arch/types.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/**
 * Options of the scoring functions ({@link loglikelihoodTokens}, {@link nextTokenLogprobs}, ...):
 * batching and the longest input.
 */
export interface ScoreOptions {
  /** Sequences per forward (default 8). */
  batchSize?: number;
  /**
   * Longest input; longer ones lose their oldest tokens (default: the config's
   * max_position_embeddings / n_positions).
   */
  maxLength?: number;
}

/**
 * A text pair for {@link loglikelihood}: how likely `continuation` is right after `context` (an
 * answer after its question, say).
 */
export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

/**
 * A token-id pair for {@link loglikelihoodTokens}: the ids of the context and of the continuation
 * scored after it.
 */
export interface TokenRequest {
  /** Non-empty: the first continuation token is predicted from its last position. */
  context: readonly number[];
  continuation: readonly number[];
}

/**
 * The score of one request of {@link loglikelihood} or {@link loglikelihoodTokens}, as
 * lm-evaluation-harness reports it: the summed log-probability (natural log) and whether greedy
 * decoding would produce the continuation.
 */
export interface LoglikelihoodResult {
  /** Sum over the continuation's tokens of log p(token | everything before it). */
  logprob: number;
  /** Whether every continuation token is the argmax at its position (greedy decoding would produce it). */
  isGreedy: boolean;
  /** Continuation length in tokens. */
  tokens: number;
}

const ids2d = (rows: readonly (readonly number[])[], width: number, pad: number): Tensor =>
  tensor(
    Int32Array.from(rows.flatMap((r) => [...r, ...new Array<number>(width - r.length).fill(pad)])),
    [rows.length, width],
    'i32',
  );

function positive(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1)
    throw new ShareloraError('BAD_ARGUMENT', `${name} must be a positive integer, got ${v}`);
  return v;
}

function checkOptions(model: CausalLM, opts: ScoreOptions): { batchSize: number; maxLength: number } {
  return {
    batchSize: positive('batchSize', opts.batchSize ?? 8),
    maxLength: positive('maxLength', opts.maxLength ?? model.config.maxPositions),
  };
}

/** Runs `fn` on batches of items taken longest first; results come back in the items' order. */
async function batched<I, R>(
  items: readonly I[],
  length: (item: I) => number,
  batchSize: number,
  fn: (batch: I[]) => Promise<R[]>,
): Promise<R[]> {
  const order = items.map((_, i) => i).sort((a, b) => length(items[b]) - length(items[a]) || a - b);
  const out = new Array<R>(items.length);
  for (let s = 0; s < order.length; s += batchSize) {
    const idx = order.slice(s, s + batchSize);
    const res = await fn(idx.map((i) => items[i]));
    idx.forEach((i, k) => {
      out[i] = res[k];
    });
  }
  return out;
}

/**
 * One forward over rows right-padded to T, then `perChunk` on the logits [rows, V] of the flat
 * positions b·T + t, a chunk at a time (each chunk's logits fit one storage binding, so any number
 * of positions works); the chunks' results are read back and joined in order.
 */
async function mapLogits(
  model: CausalLM,
  rows: readonly (readonly number[])[],
  T: number,
  positions: readonly number[],
  perChunk: (logits: Tensor, start: number, end: number) => Tensor,
): Promise<Float32Array> {
  const hidden = noGrad(() => tidy(() => model.hiddenStates(ids2d(rows, T, 0))));
  try {
    const parts: Float32Array[] = [];
    for (const [a, b] of logitChunks(positions.length, model.config.vocabSize)) {
      const out = noGrad(() =>
        tidy(() => perChunk(model.projectLogits(keepPositions(hidden, positions.slice(a, b))), a, b)),
      );
      try {
        parts.push((await out.data()) as Float32Array);
      } finally {
        out.dispose();
      }
    }
    if (parts.length === 1) return parts[0];
    const joined = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    return joined;
  } finally {
    hidden.dispose();
  }
}

/**
 * One forward over right-padded rows; returns the log-softmax over the vocabulary at the given
 * (row, position) pairs, [picks.length, V] row-major. Only those rows are projected and read back.
 */
async function logSoftmaxAt(
  model: CausalLM,
  rows: readonly (readonly number[])[],
  picks: ReadonlyArray<readonly [row: number, pos: number]>,
): Promise<{ data: Float32Array; V: number }> {
  const T = Math.max(...rows.map((r) => r.length));
  const positions = picks.map(([r, p]) => r * T + p);
  const data = await mapLogits(model, rows, T, positions, (logits) => logSoftmax(logits));
  return { data, V: model.config.vocabSize };
}

/** Token-level loglikelihood: continuation tokens scored after their context, batched. */
export async function loglikelihoodTokens(
  model: CausalLM,
  requests: readonly TokenRequest[],
  opts: ScoreOptions = {},
): Promise<LoglikelihoodResult[]> {
  const { batchSize, maxLength } = checkOptions(model, opts);
  const inputs = requests.map((r, i) => {
    if (r.context.length === 0)
      throw new ShareloraError('BAD_ARGUMENT', `request ${i}: the context has no tokens`);
    if (r.continuation.length > maxLength) {
      throw new ShareloraError(
        'SEQUENCE_TOO_LONG',
        `request ${i}: a continuation of ${r.continuation.length} tokens exceeds maxLength ${maxLength}`,
      );
    }
    // The last maxLength + 1 tokens: the input is all but the last, which is only a target.
    const whole = [...r.context, ...r.continuation].slice(-(maxLength + 1));
    return { input: whole.slice(0, -1), targets: r.continuation };
  });
  // Requests with the same input share one row (MMLU's four one-token answers after one prompt are
  // one forward, not four); each row reads the union of its requests' positions once.
  const rowOf = new Map<string, number>();
  const rows: Array<{ input: number[]; members: number[] }> = [];
  for (const [i, { input }] of inputs.entries()) {
    const key = input.join(',');
    let r = rowOf.get(key);
    if (r === undefined) {
      r = rows.length;
      rowOf.set(key, r);
      rows.push({ input, members: [] });
    }
    rows[r].members.push(i);
  }
  const perRow = await batched(
    rows,
    (x) => x.input.length,
    batchSize,
    async (batch) => {
      // Per batch row: its distinct positions in order, and where each lands among the picks.
      const picks: Array<[number, number]> = [];
      const pickAt = batch.map(({ input, members }, row) => {
        const at = new Map<number, number>();
        for (const i of members) {
          const n = inputs[i].targets.length;
          for (let p = input.length - n; p < input.length; p++) {
            if (!at.has(p)) {
              at.set(p, picks.length);
              picks.push([row, p]);
            }
          }
        }
        return at;
      });
      const { data, V } =
        picks.length > 0
          ? await logSoftmaxAt(
              model,
              batch.map((b) => b.input),
              picks,
            )
          : { data: null, V: 0 };
      return batch.map(({ input, members }, row) =>
        members.map((i): LoglikelihoodResult => {
          const { targets } = inputs[i];
          let logprob = 0;
          let isGreedy = true;
          targets.forEach((t, k) => {
            const at = pickAt[row].get(input.length - targets.length + k) as number;
            const lp = (data as Float32Array).subarray(at * V, (at + 1) * V);
            logprob += lp[t];
            // Strictly greater elsewhere, or equal at a lower id (argmax returns the first maximum).
            for (let v = 0; v < V && isGreedy; v++)
              if (lp[v] > lp[t] || (lp[v] === lp[t] && v < t)) isGreedy = false;
          });
          return { logprob, isGreedy, tokens: targets.length };
        }),
      );
    },
  );
  const out = new Array<LoglikelihoodResult>(inputs.length);
  rows.forEach(({ members }, r) => {
    members.forEach((i, k) => {
      out[i] = perRow[r][k];
    });
  });
  return out;
}

/**
 * Options of the scoring functions that take text ({@link loglikelihood},
 * {@link candidateLogprobs}): those of {@link ScoreOptions} plus how to encode.
 */
export interface TextScoreOptions extends ScoreOptions {
  /**
   * Encode with the tokenizer's special tokens (BOS). {@link loglikelihood}'s default is false,
   * lm-evaluation-harness's default for Hugging Face models (set true where a model needs BOS, as its
   * add_bos_token=True does); {@link candidateLogprobs}' default is true, the tokenizer's default.
   */
  addSpecialTokens?: boolean;
}

/**
 * Log-likelihood of each continuation given its context, tokenised as lm-evaluation-harness does:
 * trailing spaces of the context move to the continuation, context and context + continuation are
 * encoded, and the continuation is the tail of the second beyond the first's length. An empty
 * context is replaced by one BOS token (EOS when the tokenizer has no BOS).
 */
export async function loglikelihood(
  model: CausalLM,
  tokenizer: Tokenizer,
  requests: readonly LoglikelihoodRequest[],
  opts: TextScoreOptions = {},
): Promise<LoglikelihoodResult[]> {
  const addSpecialTokens = opts.addSpecialTokens ?? false;
  const prefix =
    tokenizer.bosId ?? tokenizer.eosIds[0] ?? model.config.bosTokenId ?? model.config.eosTokenIds[0];
  const tokenRequests = requests.map(({ context, continuation }, i): TokenRequest => {
    const spaces = context.length - context.trimEnd().length;
    const ctx = context.slice(0, context.length - spaces);
    const cont = context.slice(context.length - spaces) + continuation;
    const ctxIds = tokenizer.encode(ctx, { addSpecialTokens });
    if (ctxIds.length > 0) {
      const whole = tokenizer.encode(ctx + cont, { addSpecialTokens });
      return { context: ctxIds, continuation: whole.slice(ctxIds.length) };
    }
    if (prefix === undefined || prefix === null) {
      throw new ShareloraError(
        'BAD_ARGUMENT',
        `request ${i}: empty context and the tokenizer has no BOS/EOS to start from`,
      );
    }
    return { context: [prefix], continuation: tokenizer.encode(cont, { addSpecialTokens: false }) };
  });
  return loglikelihoodTokens(model, tokenRequests, opts);
}

/**
 * log p(seq[t] | seq[<t]) for t = 1..n-1 of each sequence (n-1 values each), computed on the GPU
 * (only those numbers are read back). Sequences must fit in the model's positions.
 */
export async function positionLogprobs(
  model: CausalLM,
  sequences: readonly (readonly number[])[],
  opts: Pick<ScoreOptions, 'batchSize'> = {},
): Promise<number[][]> {
  const batchSize = positive('batchSize', opts.batchSize ?? 8);
  return batched(
    sequences,
    (s) => s.length,
    batchSize,
    async (batch) => {
      const T = Math.max(...batch.map((s) => s.length));
      if (T < 2) return batch.map(() => []);
      // Position t of a row is scored against its token t+1.
      const positions: number[] = [];
      const targets: number[] = [];
      batch.forEach((s, b) => {
        for (let t = 0; t + 1 < s.length; t++) {
          positions.push(b * T + t);
          targets.push(s[t + 1]);
        }
      });
      const losses = await mapLogits(model, batch, T, positions, (logits, a, b) =>
        crossEntropy(logits, tensor(Int32Array.from(targets.slice(a, b)), [b - a], 'i32'), {
          reduction: 'none',
        }),
      );
      let at = 0;
      return batch.map((s) => {
        const n = Math.max(s.length - 1, 0);
        at += n;
        return Array.from(losses.subarray(at - n, at), (l) => -l);
      });
    },
  );
}

/** The logits of every position of one sequence, [T, V] row-major (T·V floats are read back). */
export async function positionLogits(model: CausalLM, sequence: readonly number[]): Promise<Float32Array> {
  if (sequence.length === 0)
    throw new ShareloraError('BAD_ARGUMENT', 'positionLogits: the sequence has no tokens');
  const T = sequence.length;
  return mapLogits(
    model,
    [sequence],
    T,
    Array.from({ length: T }, (_, t) => t),
    (logits) => logits,
  );
}

/** Log-softmax of the next-token logits after each context: one Float32Array of V values per context. */
export async function nextTokenLogprobs(
  model: CausalLM,
  contexts: readonly (readonly number[])[],
  opts: ScoreOptions = {},
): Promise<Float32Array[]> {
  const { batchSize, maxLength } = checkOptions(model, opts);
  const inputs = contexts.map((c, i) => {
    if (c.length === 0) throw new ShareloraError('BAD_ARGUMENT', `context ${i} has no tokens`);
    return c.slice(-maxLength);
  });
  return batched(
    inputs,
    (c) => c.length,
    batchSize,
    async (batch) => {
      const { data, V } = await logSoftmaxAt(
        model,
        batch,
        batch.map((c, row) => [row, c.length - 1] as const),
      );
      return batch.map((_, k) => data.slice(k * V, (k + 1) * V));
    },
  );
}

/**
 * Next-token log-probs of candidate answers after each context (QLoRA's MMLU: the logits of " A".."D"
 * at the answer position). Each candidate stands for the first token of its encoding without special
 * tokens; contexts are encoded with them (default true, the tokenizer's default). Returns, per
 * context, one log-prob (over the whole vocabulary) per candidate.
 */
export async function candidateLogprobs(
  model: CausalLM,
  tokenizer: Tokenizer,
  contexts: readonly string[],
  candidates: readonly string[],
  opts: TextScoreOptions = {},
): Promise<number[][]> {
  const ids = candidates.map((c) => {
    const enc = tokenizer.encode(c, { addSpecialTokens: false });
    if (enc.length === 0)
      throw new ShareloraError('BAD_ARGUMENT', `candidate ${JSON.stringify(c)} encodes to no tokens`);
    return enc[0];
  });
  const rows = await nextTokenLogprobs(
    model,
    contexts.map((c) => tokenizer.encode(c, { addSpecialTokens: opts.addSpecialTokens ?? true })),
    opts,
  );
  return rows.map((row) => ids.map((id) => row[id]));
}
