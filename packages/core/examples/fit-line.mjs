// Fits y = 3x - 1 with one Linear layer on the GPU: tensors, autograd, nn, AdamW and memory accounting.
// Run from the repository root after `pnpm build`: node packages/core/examples/fit-line.mjs
import * as core from '@sharelora/core';

await core.init(); // Dawn in Node; use core.initBrowser() in a browser
const xs = core.keep(
  core.tensor(
    Array.from({ length: 64 }, (_, i) => i / 32 - 1),
    [64, 1],
  ),
);
const ys = core.keep(core.addScalar(core.scale(xs, 3), -1));
const layer = new core.Linear(1, 1, { rng: new core.Rng(0) });
const opt = new core.AdamW(layer.parameters(), { lr: 0.1, weightDecay: 0 });
let loss = 0;
for (let step = 0; step < 200; step++) {
  const l = core.tidy(() => {
    const err = core.sub(layer.forward(xs), ys);
    const mse = core.mean(core.mul(err, err));
    core.backward(mse);
    return mse;
  });
  opt.step();
  opt.zeroGrad();
  if (step % 50 === 49) loss = await l.item();
  l.dispose();
}
const [w, b] = await Promise.all(layer.parameters().map((p) => p.value.data()));
console.log(`loss ${loss.toExponential(2)}  w ${w[0].toFixed(3)}  b ${b[0].toFixed(3)}`);
console.log('memory by category (bytes):', core.getDevice().memoryReport().live);
core.shutdown();
