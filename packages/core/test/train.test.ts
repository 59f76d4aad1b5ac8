import { describe, expect, it } from 'vitest';
import { progressionBatch, TINY, TinyTransformer, trainStep } from '../bench/soak.js';
import {
  AdamW,
  backward,
  gelu,
  getDevice,
  Linear,
  Module,
  mean,
  mul,
  Rng,
  sub,
  type Tensor,
  tensor,
  tidy,
} from '../src/node.js';
import { useGpu } from './gpu.js';

class Mlp extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(rng: Rng) {
    super();
    this.fc1 = new Linear(8, 32, { rng });
    this.fc2 = new Linear(32, 1, { rng });
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(gelu(this.fc1.forward(x)));
  }
}

/** Runs the tiny transformer for `steps` steps from `seed`; returns the losses as float32. */
async function runTransformer(seed: number, steps: number): Promise<Float32Array> {
  const rng = new Rng(seed);
  const model = new TinyTransformer(TINY, rng.fork('model'));
  const opt = new AdamW(model.parameters(), { lr: 3e-3 });
  const batch = progressionBatch(rng.fork('data'), 16, TINY);
  const losses = new Float32Array(steps);
  for (let s = 0; s < steps; s++) {
    const loss = trainStep(model, opt, batch);
    losses[s] = await loss.item();
    loss.dispose();
  }
  model.dispose();
  opt.dispose();
  for (const t of Object.values(batch)) t.dispose();
  return losses;
}

describe('training end to end', () => {
  useGpu();

  it('a Linear-GELU-Linear MLP fits a fixed regression set with AdamW', async () => {
    const rng = new Rng(42);
    const n = 64;
    const xs = Float32Array.from({ length: n * 8 }, () => rng.normal());
    // Target: a smooth nonlinear function of the inputs.
    const ys = Float32Array.from(
      { length: n },
      (_, i) => Math.sin(xs[i * 8] + 0.5 * xs[i * 8 + 1]) + 0.3 * xs[i * 8 + 2] * xs[i * 8 + 3],
    );
    const x = tensor(xs, [n, 8]);
    const y = tensor(ys, [n, 1]);
    const model = new Mlp(rng.fork('init'));
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    for (let step = 0; step < 200; step++) {
      const loss = tidy(() => {
        const d = sub(model.forward(x), y);
        const l = mean(mul(d, d));
        backward(l);
        opt.step();
        opt.zeroGrad();
        return l;
      });
      losses.push(await loss.item());
      loss.dispose();
    }
    console.log(
      `MLP MSE: step 0 ${losses[0].toFixed(4)}, 50 ${losses[50].toFixed(4)}, 199 ${losses[199].toFixed(4)}`,
    );
    expect(losses[199]).toBeLessThan(0.1 * losses[0]);
    model.dispose();
    opt.dispose();
    x.dispose();
    y.dispose();
  });

  it('a one-block pre-LN transformer learns arithmetic progressions; the same seed gives bit-identical losses', async () => {
    const a = await runTransformer(7, 80);
    console.log(
      `transformer CE: step 0 ${a[0].toFixed(4)}, 20 ${a[20].toFixed(4)}, 40 ${a[40].toFixed(4)}, 79 ${a[79].toFixed(4)} (ln 16 = ${Math.log(16).toFixed(4)})`,
    );
    expect(a[0]).toBeGreaterThan(2.5);
    expect(a[79]).toBeLessThan(0.25 * a[0]);
    const b = await runTransformer(7, 80);
    expect(new Uint32Array(b.buffer)).toEqual(new Uint32Array(a.buffer));
    const c = await runTransformer(8, 5);
    expect(new Uint32Array(c.buffer)).not.toEqual(new Uint32Array(a.buffer.slice(0, 20)));
  });

  it('live memory and storage count are flat across training steps run inside tidy()', async () => {
    const dev = getDevice();
    const rng = new Rng(3);
    const model = new TinyTransformer(TINY, rng.fork('model'));
    const opt = new AdamW(model.parameters(), { lr: 3e-3 });
    const batch = progressionBatch(rng.fork('data'), 16, TINY);
    const snapshots: Array<{ total: number; storages: number; gradients: number }> = [];
    for (let s = 0; s < 30; s++) {
      trainStep(model, opt, batch).dispose();
      const r = dev.memoryReport();
      snapshots.push({ total: r.live.total, storages: r.liveStorages, gradients: r.live.gradients });
    }
    await dev.sync();
    const paramBytes = model.parameters().reduce((s, p) => s + p.value.bytes, 0);
    expect(dev.memoryReport().live.optimizer).toBe(2 * paramBytes);
    for (const snap of snapshots) expect(snap).toEqual(snapshots[0]);
    expect(snapshots[0].gradients).toBe(0);
    model.dispose();
    opt.dispose();
    for (const t of Object.values(batch)) t.dispose();
  });
});
