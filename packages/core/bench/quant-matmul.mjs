// Quantized-weight matmul timing against f32 and bf16 weights, on the local adapter (lavapipe here):
//   pnpm --filter @sharelora/core build && XDG_RUNTIME_DIR=/tmp node packages/core/bench/quant-matmul.mjs [M N K]
// y = x·Wᵀ with x [M, K] and W [N, K] (the Linear case), and the input gradient dY·W; best of 10
// runs after 2 warm-ups, each run a submit and a wait. Name the CPU (ISA) beside any figure.
import * as core from '../dist/node.js';

const [M, N, K] = process.argv.slice(2, 5).map(Number).concat([8, 2048, 2048]).slice(0, 3);
await core.init();
const dev = core.getDevice();
const rng = new core.Rng(0);
const w = core.randn([N, K], { rng, std: 0.02 });
const x = core.randn([M, K], { rng });
const g = core.randn([M, N], { rng });
const weights = {
  f32: w,
  bf16: core.cast(w, 'bf16'),
  nf4: await core.quantize(w, 'nf4'),
  fp4: await core.quantize(w, 'fp4'),
  int8: await core.quantize(w, 'int8'),
};
// Rounds interleave the weights so that load from other processes hits them alike; the best run
// of each is reported (the machine is shared: a median measures the neighbours too).
async function once(fn) {
  const t0 = performance.now();
  core.tidy(fn);
  await dev.sync();
  return performance.now() - t0;
}
const best = {};
for (let round = 0; round < 12; round++)
  for (const [name, b] of Object.entries(weights)) {
    const fwd = await once(() => core.matmul(x, b, { transB: true }));
    const bwd = await once(() => core.matmul(g, b));
    if (round < 2) continue;
    best[name] ??= { fwd: Infinity, bwd: Infinity };
    best[name].fwd = Math.min(best[name].fwd, fwd);
    best[name].bwd = Math.min(best[name].bwd, bwd);
  }
const rows = Object.entries(weights).map(([name, b]) => ({
  weight: name,
  MiB: +(b.bytes / 2 ** 20).toFixed(2),
  'x·Wᵀ ms': +best[name].fwd.toFixed(2),
  'dY·W ms': +best[name].bwd.toFixed(2),
}));
console.log(`[${M}, ${K}]·[${N}, ${K}]ᵀ on ${dev.info.description ?? 'adapter'}`);
console.table(rows);
core.shutdown();
