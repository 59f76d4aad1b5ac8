/**
 * The single-token decoder on the real stories260K model, imported from llama2.c's .bin and from the
 * GGUF: five prompts, 64 greedy steps, batched, must give exactly the tokens of the forward path
 * (full model forward with a growing cache, argmax on the CPU), and every generated token must be the
 * argmax of the full-sequence forward at its position.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, tensor, tidy } from '@sharelora/core/node';
import { describe, expect, it } from 'vitest';
import type { LlamaForCausalLM } from '../src/arch/llama.js';
import { LlamaDecoder } from '../src/decode/llama-decoder.js';
import {
  argmax,
  type CausalLM,
  generateTokens,
  importGguf,
  importLlama2c,
  loadModel,
  loadTokenizer,
} from '../src/index.js';
import { useDevice, useTmp } from './helpers.js';

useDevice();
const tmp = useTmp('decode');
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const stories = join(process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data'), 'stories260K');
const haveData = existsSync(join(stories, 'stories260K.gguf'));
if (!haveData && process.env.CI !== 'true')
  console.warn(`SKIPPING the decoder tests: ${stories} not found (set SHARELORA_DATA)`);
const itData = haveData || process.env.CI === 'true' ? it : it.skip;

const PROMPTS = [
  'Once upon a time',
  'Lily and Tom went to',
  'The little dog',
  'One day, a big',
  'Sara had a',
];
const STEPS = 64;

async function causal(dir: string): Promise<CausalLM> {
  const { model } = await loadModel(dir);
  if (model.task !== 'causal-lm') throw new Error('expected a causal LM');
  return model;
}

describe('decoder on stories260K', () => {
  for (const from of ['llama2c', 'gguf'] as const) {
    itData(
      `greedy, 5 prompts x ${STEPS} steps, equals the forward path and its argmax at every step (${from})`,
      async () => {
        const dir = join(tmp(), from);
        if (from === 'gguf') await importGguf(join(stories, 'stories260K.gguf'), { outDir: dir });
        else
          await importLlama2c(join(stories, 'stories260K.bin'), {
            tokenizerPath: join(stories, 'tok512.bin'),
            outDir: dir,
          });
        const model = await causal(dir);
        const tok = await loadTokenizer(dir);
        try {
          const prompts = PROMPTS.map((p) => tok.encode(p));
          const opts = { maxNewTokens: STEPS, eosIds: [] };
          const fast = await generateTokens(model, prompts, { ...opts, engine: 'decoder' });
          const slow = await generateTokens(model, prompts, { ...opts, engine: 'forward' });
          expect(fast).toEqual(slow);
          // Two slots for five prompts: finished rows hand their slot to the next prompt.
          expect(await generateTokens(model, prompts, { ...opts, engine: 'decoder', batchSize: 2 })).toEqual(
            fast,
          );
          // Weights in a buffer (adapters without readable storage textures) give the same tokens.
          const dec = await LlamaDecoder.create(model as LlamaForCausalLM, {
            batch: 1,
            capacity: prompts[0].length + STEPS,
            greedy: true,
            weightsIn: 'buffer',
          });
          try {
            dec.setSampling({ temperature: 0, topK: 0, topP: 1, seed: 0 });
            dec.start(0, prompts[0], 0);
            const [ids] = await dec.run(prompts[0].length - 1 + STEPS);
            expect(ids.slice(prompts[0].length - 1)).toEqual(fast[0].tokens);
          } finally {
            dec.dispose();
          }
          console.log(`[${from}] ${JSON.stringify(tok.decode(fast[0].tokens))}`);
          for (const [i, g] of fast.entries()) {
            const seq = [...prompts[i], ...g.tokens];
            const logits = noGrad(() =>
              tidy(() => model.forward(tensor(Int32Array.from(seq), [1, seq.length], 'i32'))),
            );
            const all = (await logits.data()) as Float32Array;
            logits.dispose();
            const V = model.config.vocabSize;
            const want = g.tokens.map((_, j) => {
              const t = prompts[i].length - 1 + j;
              return argmax(all.subarray(t * V, (t + 1) * V));
            });
            expect(g.tokens, `prompt ${i}`).toEqual(want);
          }
        } finally {
          model.dispose();
        }
      },
    );
  }
});
