/**
 * Generation on the LlamaDecoder: prompts are fed through the decode step token by token in
 * slots of a fixed batch; whenever a slot's sequence finishes (EOS, a stop, its token budget) the
 * next waiting prompt takes the slot, so a long list of prompts (an evaluation) keeps every slot
 * busy. Steps run in chunks on the GPU; a chunk is sized so that no row overshoots by much.
 */
import type { LlamaForCausalLM } from '../arch/llama.js';
import type { FinishReason, TokenGeneration } from '../generate/generate.js';
import { LlamaDecoder } from './llama-decoder.js';

/** Most steps submitted at once. */
const MAX_CHUNK = 32;

export interface DecodeTokensOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  eosIds: ReadonlySet<number>;
  /** Sequences decoded together (default: all prompts, at most 32). */
  batch?: number;
  onToken?: (row: number, id: number) => boolean | undefined;
}

/** Generates from token-id prompts with the decoder (see decoderUnsupported for which models). */
export async function decodeTokens(
  model: LlamaForCausalLM,
  prompts: readonly (readonly number[])[],
  opts: DecodeTokensOptions,
): Promise<TokenGeneration[]> {
  const out: TokenGeneration[] = prompts.map(() => ({ tokens: [], finishReason: 'length' }));
  const waiting = prompts.map((_, i) => i).filter(() => opts.maxNewTokens > 0);
  if (waiting.length === 0) return out;
  const batch = Math.min(waiting.length, opts.batch ?? 32);
  const capacity = Math.max(...prompts.map((p) => p.length)) + opts.maxNewTokens;
  const dec = await LlamaDecoder.create(model, { batch, capacity, greedy: opts.temperature === 0 });
  try {
    dec.setSampling(opts);
    // Which prompt each slot holds (-1: none), and the steps it still needs.
    const slot = new Array<number>(batch).fill(-1);
    const need = new Array<number>(batch).fill(0);
    const fill = (s: number) => {
      const i = waiting.shift();
      if (i === undefined) {
        slot[s] = -1;
        dec.finish(s);
        return;
      }
      slot[s] = i;
      need[s] = prompts[i].length - 1 + opts.maxNewTokens;
      dec.start(s, prompts[i], i);
    };
    for (let s = 0; s < batch; s++) fill(s);
    while (slot.some((i) => i >= 0)) {
      const live = need.filter((_, s) => slot[s] >= 0);
      const steps = Math.max(1, Math.min(MAX_CHUNK, Math.min(...live)));
      const starts = [...dec.positions];
      const ids = await dec.run(steps);
      for (let s = 0; s < batch; s++) {
        const i = slot[s];
        if (i < 0) continue;
        need[s] -= steps;
        let reason: FinishReason | null = null;
        for (const [j, id] of ids[s].entries()) {
          // Positions inside the prompt echo it back.
          if (starts[s] + 1 + j < prompts[i].length) continue;
          if (opts.eosIds.has(id)) {
            reason = 'eos';
            break;
          }
          out[i].tokens.push(id);
          if (opts.onToken?.(i, id)) reason = 'stop';
          else if (out[i].tokens.length >= opts.maxNewTokens) reason = 'length';
          if (reason) break;
        }
        if (reason) {
          out[i].finishReason = reason;
          fill(s);
        }
      }
    }
  } finally {
    dec.dispose();
  }
  return out;
}
