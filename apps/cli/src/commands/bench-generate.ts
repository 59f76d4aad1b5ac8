/** `sharelora bench --generate --model DIR`: prefill and decode tokens/s of generateTokens. */
import * as core from '@sharelora/core/node';
import { type CausalLM, generateTokens, loadModel, loadTokenizer } from '@sharelora/models';
import { intFlag } from '../args.js';
import { UsageError } from '../cli-error.js';
import { progress, progressDone } from '../progress.js';

export interface GenerateBenchFlags {
  model?: string;
  prompt?: string;
  newTokens?: string;
  batchSize?: string;
  runs?: string;
  engine?: string;
  json?: boolean;
}

/** A story opening long enough for a prefill measurement on a small vocabulary. */
const DEFAULT_PROMPT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree.';

export interface GenerateBenchResult {
  engine: 'auto' | 'decoder' | 'forward';
  batchSize: number;
  promptTokens: number;
  newTokens: number;
  /** Prompt tokens per second, all rows together. */
  prefillTokensPerSec: number;
  /** Generated tokens per second, all rows together. */
  decodeTokensPerSec: number;
  /** Wall time of a one-token run: setting up the engine plus one step. */
  startupMs: number;
  runs: number;
}

/**
 * Times three runs of generateTokens (best of `runs` each, greedy, no EOS): a one-token prompt with one
 * new token (startup), the prompt with one new token (startup + prefill) and the prompt with
 * 1 + newTokens (startup + prefill + decode); the differences give prefill and decode rates.
 */
async function measure(
  model: CausalLM,
  prompt: number[],
  opts: { newTokens: number; batchSize: number; runs: number; engine: GenerateBenchResult['engine'] },
): Promise<GenerateBenchResult> {
  const best = async (label: string, p: number[], maxNewTokens: number) => {
    let ms = Number.POSITIVE_INFINITY;
    for (let r = 0; r < opts.runs; r++) {
      progress(`bench --generate ${label}`, r + 1, opts.runs, { unit: 'runs' });
      const prompts = new Array<number[]>(opts.batchSize).fill(p);
      const t0 = performance.now();
      await generateTokens(model, prompts, { maxNewTokens, eosIds: [], engine: opts.engine });
      ms = Math.min(ms, performance.now() - t0);
    }
    return ms;
  };
  // One untimed run compiles the kernels.
  await generateTokens(model, [prompt], { maxNewTokens: 2, eosIds: [], engine: opts.engine });
  const startup = await best('startup', prompt.slice(0, 1), 1);
  const prefill = await best('prefill', prompt, 1);
  const full = await best('decode', prompt, 1 + opts.newTokens);
  const B = opts.batchSize;
  return {
    engine: opts.engine,
    batchSize: B,
    promptTokens: prompt.length,
    newTokens: opts.newTokens,
    prefillTokensPerSec: (B * (prompt.length - 1) * 1000) / Math.max(prefill - startup, 1e-3),
    decodeTokensPerSec: (B * opts.newTokens * 1000) / Math.max(full - prefill, 1e-3),
    startupMs: startup,
    runs: opts.runs,
  };
}

/** Loads the model, runs the measurement, prints or returns the result. */
export async function benchGenerate(flags: GenerateBenchFlags): Promise<number> {
  if (!flags.model) throw new UsageError('--generate needs --model DIR');
  const engine = (flags.engine ?? 'auto') as GenerateBenchResult['engine'];
  if (!['auto', 'decoder', 'forward'].includes(engine))
    throw new UsageError(`--engine must be auto, decoder or forward, got "${flags.engine}"`);
  const opts = {
    newTokens: intFlag('new-tokens', flags.newTokens, 256),
    batchSize: intFlag('batch-size', flags.batchSize, 1),
    runs: intFlag('runs', flags.runs, 3),
    engine,
  };
  const device = await core.init();
  try {
    const { model } = await loadModel(flags.model);
    if (model.task !== 'causal-lm') throw new UsageError(`--model ${flags.model} is not a causal LM`);
    try {
      const tok = await loadTokenizer(flags.model);
      const prompt = tok.encode(flags.prompt ?? DEFAULT_PROMPT);
      if (prompt.length < 2) throw new UsageError('--prompt must encode to at least 2 tokens');
      const r = await measure(model, prompt, opts);
      progressDone();
      if (flags.json) {
        console.log(JSON.stringify({ adapter: device.info, model: flags.model, generate: r }, null, 2));
        return 0;
      }
      const i = device.info;
      console.log(`adapter: ${i.description || i.device} (vendor ${i.vendor || '?'})`);
      console.log(
        `${flags.model} (${r.engine}, batch ${r.batchSize}, best of ${r.runs}): prefill ${r.prefillTokensPerSec.toFixed(0)} tokens/s over ${r.promptTokens} prompt tokens, ` +
          `decode ${r.decodeTokensPerSec.toFixed(0)} tokens/s over ${r.newTokens} new tokens, startup ${r.startupMs.toFixed(0)} ms`,
      );
      return 0;
    } finally {
      model.dispose();
    }
  } finally {
    core.shutdown();
  }
}
