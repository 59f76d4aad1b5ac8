// A tiny random LLaMA end to end: written as a Hugging Face directory, loaded back, scored with
// transformers' causal-LM loss, then continued greedily with the KV cache.
// Run from the repository root after `pnpm build`: node packages/models/examples/tiny-llama.mjs
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { init, noGrad, shutdown, tensor, tidy } from '@sharelora/core';
import { causalLmLoss, initPreset, KVCache, loadModel } from '@sharelora/models';

await init();
const dir = await mkdtemp(join(tmpdir(), 'tiny-llama-'));
await initPreset({ arch: 'llama', preset: 'tiny', outDir: dir, seed: 0 });
const { model, config, files } = await loadModel(dir); // frozen, in eval mode
console.log(`loaded ${files.join(', ')}: ${model.hfClass}, ${model.numParameters()} parameters`);

const json = async (name) => JSON.parse(await readFile(join(dir, name), 'utf8'));
const tok = new Tokenizer(await json('tokenizer.json'), await json('tokenizer_config.json'));
const ids = tok.encode('the cat and the dog').ids;
const x = tensor(Int32Array.from(ids), [1, ids.length], 'i32');
const loss = noGrad(() => tidy(() => causalLmLoss(model.forward(x), x)));
console.log(`loss ${(await loss.item()).toFixed(4)} over ${ids.length} tokens`);

// Greedy decoding: the prompt once, then one token per forward, keys and values kept in the cache.
const cache = new KVCache();
let step = x;
const generated = [];
for (let i = 0; i < 5; i++) {
  const logits = noGrad(() => tidy(() => model.forward(step, { cache })));
  const last = (await logits.data()).subarray(-config.vocabSize);
  generated.push(last.indexOf(Math.max(...last)));
  logits.dispose();
  step = tensor(Int32Array.from(generated.slice(-1)), [1, 1], 'i32');
}
console.log(`cache holds ${cache.length} positions; greedy ids ${generated.join(' ')}`);

cache.dispose();
model.dispose();
shutdown();
await rm(dir, { recursive: true, force: true });
