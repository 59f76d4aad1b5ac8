/**
 * Autoregressive generation on any CausalLM with a KV cache: the prompts are prefilled in one forward,
 * then each step feeds one token per row. Prompts of different lengths are left-padded, with an
 * attention mask and position ids counting only real tokens, so each row generates what it would
 * alone. Each step reads the last position's logits [B, V] back to the CPU and picks tokens there
 * (sampling.ts): simple and exact, at the cost of one small readback per step. With numBeams > 1
 * the prompts go to beam search instead (beam-search.ts).
 */
import { Rng, ShareloraError } from '@sharelora/core';
import { positionIdsFromAttentionMask } from '../arch/common.js';
import type { LlamaForCausalLM } from '../arch/llama.js';
import { type CausalLM, KVCache } from '../arch/types.js';
import { decodeTokens } from '../decode/decode-tokens.js';
import { decoderUnsupported } from '../decode/llama-decoder.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { type BeamSearchOptions, type BeamSearchResult, beamSearch } from './beam-search.js';
import { checkSampling, type SamplingOptions, sampleToken } from './sampling.js';
import { fitContext, nextLogits, warnToConsole } from './step.js';

/**
 * Why a row stopped: `eos`, it produced an end-of-sequence id (not included in its tokens); `stop`,
 * `onToken` returned true or, for {@link generate}, a stop string appeared; `length`, it reached
 * maxNewTokens or the model's context.
 */
export type FinishReason = 'eos' | 'stop' | 'length';

/**
 * Options of {@link generateTokens}: sampling, length, end tokens, the engine and per-token
 * callbacks.
 */
export interface GenerateTokensOptions extends SamplingOptions {
  /** Most tokens generated per row (default 128). */
  maxNewTokens?: number;
  /** Seeds sampling (default 0); row i draws from its own stream, Rng(seed).fork(`row ${i}`). */
  seed?: number;
  /** Tokens that end a row, not included in its output (default: the model config's eos_token_id). */
  eosIds?: readonly number[];
  /** Token fed at left padding and to rows that have finished (default: the first EOS id, else 0). */
  padId?: number;
  /** Keep keys/values between steps (default true); false recomputes the whole sequence every step. */
  useCache?: boolean;
  /**
   * 'decoder': the single-token decode step (LLaMA; see decode/llama-decoder.ts), tokens chosen on
   * the GPU; 'forward': the model's forward with a growing cache, tokens chosen on the CPU; 'auto'
   * (default): the decoder where the model and options allow (no onLogits, useCache not false).
   * Sampled (temperature > 0) tokens differ between the two: each draws its own random numbers.
   */
  engine?: 'auto' | 'decoder' | 'forward';
  /**
   * Sequences the decoder runs together; further prompts take the slots of finished ones (default
   * 32). With numBeams > 1: prompts searched together (default as {@link BeamSearchOptions.batchSize}).
   */
  batchSize?: number;
  /**
   * Beams per prompt (default 1). Above 1 runs {@link beamSearch}, which needs temperature 0, the
   * forward engine and no onLogits; 1 is greedy decoding or sampling as the other options say.
   */
  numBeams?: number;
  /** Beam search only (numBeams > 1): see {@link BeamSearchOptions.lengthPenalty} (default 1). */
  lengthPenalty?: number;
  /** Beam search only (numBeams > 1): see {@link BeamSearchOptions.earlyStopping} (default false). */
  earlyStopping?: boolean;
  /** Beam search only (numBeams > 1): see {@link BeamSearchOptions.noRepeatNgramSize} (default 0). */
  noRepeatNgramSize?: number;
  /** Each step's next-token logits, [B, V] row-major, before a token is picked (inspection, scoring). */
  onLogits?: (step: number, logits: Float32Array) => void;
  /**
   * Called with each token a row generates; returning true finishes the row (reason 'stop'). With
   * beam search the tokens are final only once the search ends: it is then called with each token
   * of a row's result in order, and returning true cuts the row after that token.
   */
  onToken?: (row: number, id: number) => boolean | undefined;
  /**
   * Warnings (default: console.warn). Prompts cut to fit the context give one per call, with the
   * number of prompts cut.
   */
  onWarning?: (message: string, promptsCut?: number) => void;
}

/** One row's result of {@link generateTokens}. */
export interface TokenGeneration {
  /** Generated ids; the EOS that ended a row is not included. */
  tokens: number[];
  finishReason: FinishReason;
  /**
   * Beam search only: the result's length-normalised log-probability ({@link BeamSearchResult.score},
   * of the whole hypothesis even when onToken cut it).
   */
  score?: number;
}

/** Generates from token-id prompts (one row each, batched together). */
export async function generateTokens(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateTokensOptions = {},
): Promise<TokenGeneration[]> {
  checkSampling(opts);
  const maxNew = opts.maxNewTokens ?? 128;
  if (!Number.isInteger(maxNew) || maxNew < 0)
    throw new ShareloraError('BAD_ARGUMENT', `maxNewTokens must be a non-negative integer, got ${maxNew}`);
  const B = prompts.length;
  if (B === 0) return [];
  prompts.forEach((p, i) => {
    if (p.length === 0)
      throw new ShareloraError(
        'BAD_ARGUMENT',
        `prompt ${i} encodes to no tokens: generation needs at least one`,
      );
  });
  const numBeams = opts.numBeams ?? 1;
  if (!Number.isInteger(numBeams) || numBeams < 1)
    throw new ShareloraError('BAD_ARGUMENT', `numBeams must be an integer >= 1, got ${numBeams}`);
  if (numBeams > 1) return beamTokens(model, prompts, opts);
  if (opts.noRepeatNgramSize || (opts.lengthPenalty ?? 1) !== 1 || opts.earlyStopping)
    throw new ShareloraError(
      'BAD_ARGUMENT',
      'lengthPenalty, earlyStopping and noRepeatNgramSize apply to beam search only: set numBeams > 1',
    );
  const { config } = model;
  prompts = fitContext(prompts, config.maxPositions, maxNew, opts.onWarning ?? warnToConsole);
  const eos = new Set(opts.eosIds ?? config.eosTokenIds);
  const engine = opts.engine ?? 'auto';
  if (engine !== 'forward') {
    const why =
      opts.onLogits || opts.useCache === false
        ? 'onLogits and useCache: false need the forward path'
        : decoderUnsupported(model);
    if (!why) {
      const { temperature = 0, topK = 0, topP = 1, seed = 0 } = opts;
      // The decoder gives every row the same budget: the room the longest prompt leaves in the context.
      const room = config.maxPositions - Math.max(...prompts.map((p) => p.length));
      return decodeTokens(model as LlamaForCausalLM, prompts, {
        maxNewTokens: Math.max(0, Math.min(maxNew, room)),
        temperature,
        topK,
        topP,
        seed,
        eosIds: eos,
        batch: opts.batchSize,
        onToken: opts.onToken,
      });
    }
    if (engine === 'decoder')
      throw new ShareloraError('BAD_ARGUMENT', `the decoder cannot run this model: ${why}`);
  }
  const pad = opts.padId ?? [...eos][0] ?? 0;
  const S0 = Math.max(...prompts.map((p) => p.length));
  // Every row stops at the context length its architecture declares: GPT-2's position table ends
  // there, and RoPE models were not trained past it (nor should the KV cache grow without bound).
  // Prompts were fitted to it above.
  const limit = config.maxPositions;
  const padded = prompts.some((p) => p.length < S0);
  const seqs = prompts.map((p) => [...new Array<number>(S0 - p.length).fill(pad), ...p]);
  const mask = prompts.map((p) => [
    ...new Array<number>(S0 - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  const out: TokenGeneration[] = prompts.map(() => ({ tokens: [], finishReason: 'length' }));
  const active = prompts.map(() => maxNew > 0);
  const rngs = prompts.map((_, i) => new Rng(opts.seed ?? 0).fork(`row ${i}`));
  const cache = (opts.useCache ?? true) ? new KVCache() : undefined;
  try {
    let input: number[][] = seqs;
    let positions: number[][] | null = padded ? positionIdsFromAttentionMask(mask) : null;
    for (let step = 0; active.some(Boolean); step++) {
      const logits = await nextLogits(model, input, padded ? mask : null, positions, cache);
      opts.onLogits?.(step, logits);
      const V = logits.length / B;
      const next = new Array<number>(B).fill(pad);
      for (let b = 0; b < B; b++) {
        if (!active[b]) continue;
        const id = sampleToken(logits.subarray(b * V, (b + 1) * V), opts, rngs[b]);
        if (eos.has(id)) {
          out[b].finishReason = 'eos';
          active[b] = false;
          continue;
        }
        out[b].tokens.push(id);
        next[b] = id;
        if (opts.onToken?.(b, id)) {
          out[b].finishReason = 'stop';
          active[b] = false;
        } else if (out[b].tokens.length >= maxNew || prompts[b].length + out[b].tokens.length >= limit) {
          active[b] = false;
        }
      }
      if (!active.some(Boolean)) break;
      for (const [b, s] of seqs.entries()) s.push(next[b]);
      for (const m of mask) m.push(1);
      if (cache) {
        input = next.map((id) => [id]);
        // A row's next position is its count of real tokens before the new one.
        if (padded) positions = mask.map((m) => [m.reduce((n, x) => n + x, 0) - 1]);
      } else {
        input = seqs;
        if (padded) positions = positionIdsFromAttentionMask(mask);
      }
    }
  } finally {
    cache?.dispose();
  }
  return out;
}

/** generateTokens with numBeams > 1: checks the options beam search cannot honour, then runs it. */
async function beamTokens(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateTokensOptions,
): Promise<TokenGeneration[]> {
  const numBeams = opts.numBeams as number;
  const bad = (what: string) => {
    throw new ShareloraError('BAD_ARGUMENT', `numBeams ${numBeams} (beam search) ${what}`);
  };
  if ((opts.temperature ?? 0) !== 0)
    bad(`needs temperature 0, got ${opts.temperature}: beam search does not sample`);
  if (opts.engine === 'decoder') bad(`runs on the forward engine, not engine 'decoder'`);
  if (opts.onLogits) bad('cannot report per-step logits: onLogits is not available');
  const results = await beamSearch(model, prompts, {
    numBeams,
    maxNewTokens: opts.maxNewTokens,
    lengthPenalty: opts.lengthPenalty,
    earlyStopping: opts.earlyStopping,
    noRepeatNgramSize: opts.noRepeatNgramSize,
    eosIds: opts.eosIds,
    padId: opts.padId,
    useCache: opts.useCache,
    batchSize: opts.batchSize,
    onWarning: opts.onWarning,
  });
  return results.map((r, row) => {
    const out: TokenGeneration = { tokens: [], finishReason: r.finishReason, score: r.score };
    for (const id of r.tokens) {
      out.tokens.push(id);
      if (opts.onToken?.(row, id)) {
        out.finishReason = 'stop';
        break;
      }
    }
    return out;
  });
}

/**
 * Options of {@link generate}: those of {@link GenerateTokensOptions} (its `onToken` is used
 * internally), plus stop strings and text streaming.
 */
export interface GenerateOptions extends Omit<GenerateTokensOptions, 'onToken'> {
  /** Finish a row when its text contains one of these; the text is cut before it. */
  stop?: readonly string[];
  /** Encode prompts with the tokenizer's special tokens, e.g. BOS (default true). */
  addSpecialTokens?: boolean;
  /** Streaming: each row's new text as it becomes final (never part of a stop string). */
  onText?: (row: number, text: string) => void;
}

/** One prompt's result of {@link generate}: the generated tokens and their text. */
export interface Generation extends TokenGeneration {
  /** The continuation, decoded after the prompt (so a leading space is kept) without special tokens. */
  text: string;
  /** Tokens the prompt encoded to (before any cut to fit the context). */
  promptTokens: number;
}

/** Length of the longest end of `text` that begins some stop string (held back while streaming). */
function pendingStop(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > held; k--) {
      if (text.endsWith(s.slice(0, k))) {
        held = k;
        break;
      }
    }
  }
  return held;
}

/** Per-row text state: streaming decoder, stop strings, what was handed to onText. */
class RowText {
  text = '';
  private emitted = 0;
  private readonly decoder;

  constructor(
    tokenizer: Tokenizer,
    prompt: readonly number[],
    private readonly stops: readonly string[],
    private readonly emit: (text: string) => void,
  ) {
    this.decoder = tokenizer.streamDecoder({ context: prompt });
  }

  /** Adds decoded text; returns true when a stop string appeared (the text is then cut before it). */
  add(piece: string, final: boolean): boolean {
    if (!piece && !final) return false;
    const before = this.text.length;
    this.text += piece;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.text.indexOf(s, Math.max(0, before - s.length + 1));
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) this.text = this.text.slice(0, cut);
    const safe = cut >= 0 || final ? this.text.length : this.text.length - pendingStop(this.text, this.stops);
    if (safe > this.emitted) {
      this.emit(this.text.slice(this.emitted, safe));
      this.emitted = safe;
    }
    return cut >= 0;
  }

  push(id: number): boolean {
    return this.add(this.decoder.push(id), false);
  }

  /** Emits what the decoder held back; true if that completed a stop string. */
  finish(): boolean {
    return this.add(this.decoder.flush(), true);
  }
}

/**
 * Generates continuations of text prompts, batched. EOS is the union of the model config's and the
 * tokenizer's EOS ids unless `eosIds` is given; padding uses the tokenizer's pad token when it has one.
 */
export async function generate(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompts: readonly string[],
  opts: GenerateOptions = {},
): Promise<Generation[]> {
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  const encoded = prompts.map((p) =>
    tokenizer.encode(p, { addSpecialTokens: opts.addSpecialTokens ?? true }),
  );
  const eosIds = opts.eosIds ?? [...new Set([...model.config.eosTokenIds, ...tokenizer.eosIds])];
  const rows = encoded.map((p, i) => new RowText(tokenizer, p, stops, (t) => opts.onText?.(i, t)));
  const gens = await generateTokens(model, encoded, {
    ...opts,
    eosIds,
    padId: opts.padId ?? tokenizer.padId ?? eosIds[0],
    onToken: (row, id) => rows[row].push(id),
  });
  return gens.map((g, i) => {
    const finishReason = g.finishReason !== 'stop' && rows[i].finish() ? 'stop' : g.finishReason;
    return { ...g, finishReason, text: rows[i].text, promptTokens: encoded[i].length };
  });
}
