// ShareLoRA on any module tree: count, inject ShareA, train, save in PEFT's format, load back, merge.
// Run from the repository root after `pnpm build`: node packages/adapters/examples/share-a.mjs
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  countParameters,
  injectAdapter,
  linearModules,
  loadAdapter,
  mergeAdapter,
  presetConfig,
  saveAdapter,
  trainableParameters,
} from '@sharelora/adapters/node';
import * as core from '@sharelora/core';

await core.init();

// Adapters find their targets by module path ("layers.3.q_proj"), so any core Module tree works.
class Block extends core.Module {
  constructor(d, rng) {
    super();
    this.q_proj = new core.Linear(d, d, { rng });
    this.v_proj = new core.Linear(d, d, { rng });
  }
  forward(x) {
    return core.add(x, core.mul(core.tanh(this.q_proj.forward(x)), this.v_proj.forward(x)));
  }
}
class Net extends core.Module {
  constructor(seed) {
    super();
    const rng = new core.Rng(seed);
    this.layers = new core.ModuleList(Array.from({ length: 4 }, () => new Block(16, rng)));
  }
  forward(x) {
    let h = x;
    for (const b of this.layers) h = b.forward(h);
    return h;
  }
}

const options = { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] };
const model = new Net(0);
// From shapes alone: per module type and in total, LoRA's count and ShareA's (one A per type).
const { total } = countParameters(linearModules(model), presetConfig('share-a', options));
console.log(
  `share-a trains ${total.trainable} parameters, LoRA ${total.lora} (-${(100 * total.reduction).toFixed(1)}%)`,
);

injectAdapter(model, presetConfig('share-a', options), { rng: 1 });
const opt = new core.AdamW(trainableParameters(model), { lr: 0.02, weightDecay: 0 });
const x = core.keep(core.randn([8, 16], { seed: 2 }));
const y = core.keep(core.randn([8, 16], { seed: 3 }));
const losses = [];
for (let step = 0; step < 60; step++) {
  const loss = core.tidy(() => {
    const err = core.sub(model.forward(x), y);
    const mse = core.mean(core.mul(err, err));
    core.backward(mse);
    return mse;
  });
  opt.step();
  opt.zeroGrad();
  losses.push(await loss.item());
  loss.dispose();
}
console.log(`loss ${losses[0].toFixed(4)} -> ${losses.at(-1).toFixed(4)}`);
console.log(
  `optimizer state: ${core.getDevice().memoryReport().live.optimizer} bytes (2 x 4 x ${total.trainable})`,
);

const output = async (m) => core.noGrad(() => m.forward(x)).data();
const dir = await mkdtemp(join(tmpdir(), 'share-a-'));
await saveAdapter(model, dir);
console.log(`saved ${(await readdir(dir)).sort().join(', ')}`);
const reloaded = new Net(0); // the same base weights, as a user would load them from a checkpoint
await loadAdapter(reloaded, dir);
const maxDiff = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
const trained = await output(model);
console.log(`reloaded: max |diff| ${maxDiff(trained, await output(reloaded))}`);
mergeAdapter(reloaded); // W += (alpha/r)·B·A in every layer; the forward no longer runs the adapter
console.log(`merged: max |diff| ${maxDiff(trained, await output(reloaded)).toExponential(1)}`);

await rm(dir, { recursive: true });
core.shutdown();
