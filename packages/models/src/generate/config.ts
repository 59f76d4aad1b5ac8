import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelLoadError } from '../load/errors.js';
import type { SamplingOptions } from './sampling.js';

/** What a model directory's generation_config.json asks generation to do by default. */
export interface GenerationDefaults extends Required<SamplingOptions> {
  /** EOS ids listed there (chat models often add end-of-turn tokens); empty when absent. */
  eosIds: number[];
  padId: number | null;
  maxNewTokens: number | null;
}

const GREEDY: GenerationDefaults = {
  temperature: 0,
  topK: 0,
  topP: 1,
  eosIds: [],
  padId: null,
  maxNewTokens: null,
};

/**
 * Reads generation_config.json when the directory has one. Greedy unless it sets do_sample, then
 * transformers' defaults for what it leaves out (temperature 1, top_k 50, top_p 1).
 */
export async function readGenerationConfig(dir: string): Promise<GenerationDefaults> {
  const path = join(dir, 'generation_config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ...GREEDY };
    throw new ModelLoadError('BAD_CONFIG', path, (e as Error).message, { cause: e });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelLoadError('BAD_CONFIG', path, 'not a JSON object');
  }
  const g = raw as Record<string, unknown>;
  const num = (key: string): number | null => {
    const v = g[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new ModelLoadError('BAD_CONFIG', path, `${key} must be a number`);
    return v;
  };
  const eos = g.eos_token_id;
  const eosIds = (Array.isArray(eos) ? eos : eos === undefined || eos === null ? [] : [eos]).map((id) => {
    if (!Number.isInteger(id))
      throw new ModelLoadError('BAD_CONFIG', path, 'eos_token_id must be an int or a list of ints');
    return id as number;
  });
  const sample = g.do_sample === true;
  return {
    temperature: sample ? (num('temperature') ?? 1) : 0,
    topK: sample ? (num('top_k') ?? 50) : 0,
    topP: sample ? (num('top_p') ?? 1) : 1,
    eosIds,
    padId: num('pad_token_id'),
    maxNewTokens: num('max_new_tokens'),
  };
}
