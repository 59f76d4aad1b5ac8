import { describe, expect, it } from 'vitest';
import { dispatchGroups } from '../src/kernels/multi-tensor.js';
import {
  AdamW,
  add,
  backward,
  clipGradNorm,
  clipGradNormAsync,
  getDevice,
  keep,
  Linear,
  lrAt,
  Module,
  numel,
  type OptimizerStateDict,
  Parameter,
  Rng,
  SGD,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../src/node.js';
import { useGpu } from './gpu.js';
import { assertClose } from './reference/gradcheck.js';

const SHAPES = [[7, 5], [13], [3, 1, 4]] as const;

function randomF32(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

function makeParams(seed: number): { params: Parameter[]; host: Float64Array[] } {
  const rng = new Rng(seed);
  const host = SHAPES.map((s) => Float64Array.from(randomF32(rng, numel(s))));
  const params = SHAPES.map((s, i) => new Parameter(tensor(Float32Array.from(host[i]), s)));
  return { params, host };
}

/** Gradients per step; parameter 1 has none at step 2 (it must then be skipped, its step count kept). */
function gradsAt(step: number): Array<Float32Array | null> {
  const rng = new Rng(1000 + step);
  return SHAPES.map((s, i) => (i === 1 && step === 2 ? null : randomF32(rng, numel(s), 0.5)));
}

function setGrads(params: Parameter[], grads: Array<Float32Array | null>): void {
  params.forEach((p, i) => {
    const g = grads[i];
    if (g) p.value.grad = keep(tensor(g, p.shape, 'f32', 'gradients'));
  });
}

describe('optimizers', () => {
  useGpu();

  it('AdamW matches torch.optim.AdamW in float64 over several steps with a changing lr', async () => {
    const { params, host } = makeParams(1);
    const opt = new AdamW(params, { lr: 1e-2, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
    const ref = host.map((h) => ({
      p: Float64Array.from(h),
      m: new Float64Array(h.length),
      v: new Float64Array(h.length),
      t: 0,
    }));
    for (let step = 0; step < 6; step++) {
      const lr = 1e-2 * (1 - 0.1 * step);
      const grads = gradsAt(step);
      setGrads(params, grads);
      opt.lr = lr;
      opt.step();
      opt.zeroGrad();
      // torch/optim/adamw.py (_single_tensor_adamw), decoupled weight decay.
      ref.forEach((r, i) => {
        const g = grads[i];
        if (!g) return;
        r.t++;
        const [b1, b2] = [0.9, 0.95];
        const stepSize = lr / (1 - b1 ** r.t);
        const bc2Sqrt = Math.sqrt(1 - b2 ** r.t);
        for (let k = 0; k < r.p.length; k++) {
          r.p[k] *= 1 - lr * 0.1;
          r.m[k] = b1 * r.m[k] + (1 - b1) * g[k];
          r.v[k] = b2 * r.v[k] + (1 - b2) * g[k] * g[k];
          r.p[k] -= (stepSize * r.m[k]) / (Math.sqrt(r.v[k]) / bc2Sqrt + 1e-8);
        }
      });
    }
    for (let i = 0; i < params.length; i++) {
      assertClose(await params[i].value.data(), ref[i].p, 1e-5, `AdamW param ${i}`);
      const st = opt.stateDict().state[i]!;
      expect(st.step).toBe(ref[i].t);
      assertClose(await st.tensors.exp_avg.data(), ref[i].m, 1e-5, `AdamW exp_avg ${i}`);
      assertClose(await st.tensors.exp_avg_sq.data(), ref[i].v, 1e-5, `AdamW exp_avg_sq ${i}`);
    }
    expect(opt.stateDict().state.map((s) => s?.step)).toEqual([6, 5, 6]);
    opt.dispose();
    for (const p of params) p.dispose();
  });

  for (const nesterov of [false, true]) {
    it(`SGD with momentum and weight decay${nesterov ? ' (Nesterov)' : ''} matches torch.optim.SGD in float64`, async () => {
      const { params, host } = makeParams(2);
      const [mu, damp, wd] = [0.9, nesterov ? 0 : 0.1, 0.01];
      const opt = new SGD(params, { lr: 0.05, momentum: mu, dampening: damp, weightDecay: wd, nesterov });
      const ref = host.map((h) => ({ p: Float64Array.from(h), b: new Float64Array(h.length), t: 0 }));
      for (let step = 0; step < 5; step++) {
        const grads = gradsAt(step);
        setGrads(params, grads);
        opt.lr = 0.05 / (step + 1);
        opt.step();
        opt.zeroGrad();
        // torch/optim/sgd.py (_single_tensor_sgd).
        ref.forEach((r, i) => {
          const g0 = grads[i];
          if (!g0) return;
          r.t++;
          for (let k = 0; k < r.p.length; k++) {
            let g = g0[k] + wd * r.p[k];
            r.b[k] = r.t === 1 ? g : mu * r.b[k] + (1 - damp) * g;
            g = nesterov ? g + mu * r.b[k] : r.b[k];
            r.p[k] -= (0.05 / (step + 1)) * g;
          }
        });
      }
      for (let i = 0; i < params.length; i++) {
        assertClose(await params[i].value.data(), ref[i].p, 1e-5, `SGD param ${i}`);
        assertClose(
          await opt.stateDict().state[i]!.tensors.momentum_buffer.data(),
          ref[i].b,
          1e-5,
          `SGD buffer ${i}`,
        );
      }
      opt.dispose();
      for (const p of params) p.dispose();
    });
  }

  it('plain SGD (no momentum) keeps no state', async () => {
    const p = new Parameter(tensor([1, 2, 3], [3]));
    const opt = new SGD([p], { lr: 0.5 });
    setGrads([p], [Float32Array.from([1, 1, -2])]);
    const before = getDevice().memoryReport().live.optimizer;
    opt.step();
    expect(getDevice().memoryReport().live.optimizer).toBe(before);
    expect([...(await p.value.data())]).toEqual([0.5, 1.5, 4]);
    opt.zeroGrad();
    p.dispose();
  });

  it('AdamW updates several parameters per dispatch, bit for bit as one parameter per dispatch', async () => {
    const dev = getDevice();
    // Odd sizes around the 256-invocation workgroup, more parameters than one dispatch takes.
    const sizes = [1, 255, 256, 257, 3, 1000, 513, 7, 64, 2, 300];
    const rng = new Rng(5);
    const init = sizes.map((n) => randomF32(rng, n));
    const grads = [0, 1, 2].map(() => sizes.map((n) => randomF32(rng, n, 0.5)));
    const together = init.map((h) => new Parameter(tensor(h, [h.length])));
    const alone = init.map((h) => new Parameter(tensor(h, [h.length])));
    const opt = new AdamW(together, { lr: 3e-2, weightDecay: 0.05 });
    const opts = alone.map((p) => new AdamW([p], { lr: 3e-2, weightDecay: 0.05 }));
    const perDispatch = Math.min(8, Math.floor(dev.limits.maxStorageBuffersPerShaderStage / 4));
    expect(perDispatch).toBeGreaterThanOrEqual(2);
    for (let step = 0; step < 3; step++) {
      // Parameter 3 has no gradient at step 1: it keeps its step count, so later steps mix counts.
      const g = grads[step].map((x, i) => (i === 3 && step === 1 ? null : x));
      setGrads(together, g);
      setGrads(alone, g);
      const before = dev.stats.dispatches;
      opt.step();
      const updated = g.filter((x) => x !== null).length;
      expect(dev.stats.dispatches - before).toBe(Math.ceil(updated / perDispatch));
      for (const o of opts) o.step();
      opt.zeroGrad();
      for (const o of opts) o.zeroGrad();
    }
    for (let i = 0; i < sizes.length; i++) {
      expect(await together[i].value.data(), `parameter ${i}`).toEqual(await alone[i].value.data());
      const [a, b] = [opt.stateDict().state[i]!, opts[i].stateDict().state[0]!];
      expect(a.step).toBe(b.step);
      expect(await a.tensors.exp_avg_sq.data()).toEqual(await b.tensors.exp_avg_sq.data());
    }
    expect(opt.stateDict().state[3]!.step).toBe(2);
    opt.dispose();
    for (const o of opts) o.dispose();
    for (const p of [...together, ...alone]) p.dispose();
  });

  it('multi-tensor dispatches never bind one buffer writable twice', () => {
    const t = [tensor([1, 2]), tensor([3]), tensor([4, 5, 6])];
    const u = (p: Tensor) => ({ p, grad: p, st: { step: 1, tensors: {} } });
    // The second use of t[0] starts a new group; full groups split at the size.
    const written = (x: ReturnType<typeof u>) => x.p.buffer;
    const groups = dispatchGroups([u(t[0]), u(t[1]), u(t[0]), u(t[2])], 4, written);
    expect(groups.map((g) => g.map((x) => t.indexOf(x.p)))).toEqual([
      [0, 1],
      [0, 2],
    ]);
    expect(dispatchGroups([u(t[0]), u(t[1]), u(t[2])], 2, written).map((g) => g.length)).toEqual([2, 1]);
    for (const x of t) x.dispose();
  });

  it('AdamW state is 2× the parameter bytes, under the optimizer category; zeroGrad frees gradients', () => {
    const dev = getDevice();
    const { params } = makeParams(3);
    const paramBytes = params.reduce((s, p) => s + p.value.bytes, 0);
    const opt = new AdamW(params, { lr: 1e-3 });
    const base = dev.memoryReport().live;
    setGrads(params, gradsAt(0));
    opt.step();
    const after = dev.memoryReport().live;
    expect(after.optimizer - base.optimizer).toBe(2 * paramBytes);
    expect(after.gradients - base.gradients).toBe(paramBytes);
    opt.zeroGrad();
    expect(dev.memoryReport().live.gradients).toBe(base.gradients);
    opt.dispose();
    expect(dev.memoryReport().live.optimizer).toBe(base.optimizer);
    for (const p of params) p.dispose();
  });

  it('a Parameter shared by two layers gets one state and one update with the summed gradient', async () => {
    class TwoUses extends Module {
      a = new Linear(4, 3, { bias: false, rng: new Rng(1) });
      b = new Linear(4, 3, { bias: false, rng: new Rng(2) });
      constructor() {
        super();
        this.b.weight = this.a.weight;
      }
    }
    const dev = getDevice();
    const m = new TwoUses();
    const w = m.a.weight;
    const w0 = Float64Array.from(await w.value.data());
    const opt = new AdamW([...m.parameters(), w], { lr: 0.1, weightDecay: 0 });
    expect(opt.params).toHaveLength(1);
    const xs = Float32Array.from({ length: 8 }, (_, i) => i / 4 - 1);
    const x = tensor(xs, [2, 4]);
    tidy(() => backward(sum(add(m.a.forward(x), m.b.forward(x)))));
    const base = dev.memoryReport().live.optimizer;
    opt.step();
    expect(dev.memoryReport().live.optimizer - base).toBe(2 * w.value.bytes);
    // d/dW of sum(x·Wᵀ) is the column sum of x for every output row; two uses double it.
    const g = Float64Array.from({ length: 12 }, (_, k) => 2 * (xs[k % 4] + xs[4 + (k % 4)]));
    assertClose(await w.grad!.data(), g, 1e-6, 'summed gradient');
    // First AdamW step without decay: p - lr * g / (|g| + eps).
    const expected = w0.map((p, k) => p - (0.1 * g[k]) / (Math.abs(g[k]) + 1e-8));
    assertClose(await w.value.data(), expected, 1e-5, 'shared update');
    opt.zeroGrad();
    opt.dispose();
    x.dispose();
    m.dispose();
  });

  it('stateDict/loadStateDict resume gives bit-identical parameters', async () => {
    const run = (params: Parameter[], opt: AdamW, from: number, to: number): void => {
      for (let s = from; s < to; s++) {
        setGrads(params, gradsAt(s));
        opt.step();
        opt.zeroGrad();
      }
    };
    const a = makeParams(4).params;
    const optA = new AdamW(a, { lr: 3e-3 });
    run(a, optA, 0, 3);
    // Snapshot to host memory, as a checkpoint would.
    const sd = optA.stateDict();
    const hostState: OptimizerStateDict<{ data: Float32Array; shape: readonly number[] }> = {
      ...sd,
      state: await Promise.all(
        sd.state.map(async (s) =>
          s
            ? {
                step: s.step,
                tensors: Object.fromEntries(
                  await Promise.all(
                    Object.entries(s.tensors).map(
                      async ([k, t]) =>
                        [k, { data: (await t.data()) as Float32Array, shape: t.shape }] as const,
                    ),
                  ),
                ),
              }
            : null,
        ),
      ),
    };
    const hostParams = await Promise.all(a.map(async (p) => (await p.value.data()) as Float32Array));
    run(a, optA, 3, 6);
    const b = hostParams.map((h, i) => new Parameter(tensor(h, SHAPES[i])));
    const optB = new AdamW(b, { lr: 1 });
    await optB.loadStateDict(hostState);
    expect(optB.steps).toBe(3);
    expect(optB.lr).toBe(3e-3);
    run(b, optB, 3, 6);
    for (let i = 0; i < a.length; i++) {
      expect(new Uint32Array((await b[i].value.data()).buffer)).toEqual(
        new Uint32Array((await a[i].value.data()).buffer),
      );
    }
    await expect(new SGD(b, { lr: 1 }).loadStateDict(hostState)).rejects.toThrow(/adamw, not sgd/);
    for (const o of [optA, optB]) o.dispose();
    for (const p of [...a, ...b]) p.dispose();
  });
});

/** Every parameter's gradient equals its host gradient times `coef` (float64 reference). */
async function expectScaled(params: Parameter[], grads: Float32Array[], coef: number): Promise<void> {
  for (let i = 0; i < params.length; i++)
    assertClose(
      await params[i].grad!.data(),
      grads[i].map((v) => v * coef),
      1e-5,
      `clipped ${i}`,
    );
}

describe('clipGradNorm', () => {
  useGpu();

  it('computes the global L2 norm on the GPU and scales by maxNorm/(norm + 1e-6)', async () => {
    const rng = new Rng(9);
    // One gradient large enough to need several partial-sum workgroups.
    const sizes = [100_000, 37, 1];
    const params = sizes.map((n) => new Parameter(tensor(new Float32Array(n), [n])));
    const grads = sizes.map((n) => randomF32(rng, n, 0.1));
    setGrads(params, grads);
    const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
    const maxNorm = norm / 3;
    const t = clipGradNorm(params, maxNorm);
    expect(t.shape).toEqual([]);
    expect(Math.abs((await t.item()) - norm) / norm).toBeLessThan(1e-5);
    const coef = maxNorm / (norm + 1e-6);
    await expectScaled(params, grads, coef);
    t.dispose();
    // Below the threshold: reported, not scaled.
    const before = await params[1].grad!.data();
    const n2 = await clipGradNormAsync(params, 1e6);
    expect(Math.abs(n2 - maxNorm) / maxNorm).toBeLessThan(1e-5);
    expect(await params[1].grad!.data()).toEqual(before);
    for (const p of params) p.dispose();
  });

  it('takes several gradients per dispatch, across dispatch groups, against float64', async () => {
    const dev = getDevice();
    const rng = new Rng(12);
    // More gradients than one dispatch takes; the large ones need several partial sums each.
    const sizes = [5, 9000, 1, 257, 4096, 4097, 33, 70_001, 2, 300, 12, 8193];
    const params = sizes.map((n) => new Parameter(tensor(new Float32Array(n), [n])));
    const grads = sizes.map((n) => randomF32(rng, n, 0.1));
    setGrads(params, grads);
    const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
    const before = dev.stats.dispatches;
    const t = clipGradNorm(params, norm / 2);
    const perDispatch = Math.min(8, dev.limits.maxStorageBuffersPerShaderStage - 1);
    // Sums of squares, one combine, scales.
    expect(dev.stats.dispatches - before).toBe(2 * Math.ceil(sizes.length / perDispatch) + 1);
    expect(Math.abs((await t.item()) - norm) / norm).toBeLessThan(1e-5);
    const coef = norm / 2 / (norm + 1e-6);
    await expectScaled(params, grads, coef);
    t.dispose();
    for (const p of params) p.dispose();
  });

  it('counts gradients that share a storage in the norm but scales that storage once', async () => {
    const p = new Parameter(tensor([0, 0], [2]));
    const q = new Parameter(tensor([0, 0], [2]));
    const g: Tensor = keep(tensor([3, 4], [2]));
    p.value.grad = g;
    q.value.grad = keep(g.view([2]));
    const n = await clipGradNormAsync([p, q], 1);
    expect(n).toBeCloseTo(Math.sqrt(50), 5);
    const c = 1 / (Math.sqrt(50) + 1e-6);
    assertClose(await q.grad!.data(), [3 * c, 4 * c], 1e-6, 'shared storage scaled once');
    p.dispose();
    q.dispose();
  });

  it('returns 0 when there are no gradients', async () => {
    const p = new Parameter(tensor([1], [1]));
    expect(await clipGradNormAsync([p], 1)).toBe(0);
    p.dispose();
  });
});

describe('lrAt (HF transformers schedules)', () => {
  const base = 1e-3;
  const common = { base, warmupSteps: 10, totalSteps: 100 };
  it('constant with warmup', () => {
    const o = { ...common, schedule: 'constant' as const };
    // Exactly LambdaLR's base_lr * lr_lambda(step), float rounding included.
    expect([0, 5, 9, 10, 99, 500].map((s) => lrAt(s, o))).toEqual([
      0,
      base * (5 / 10),
      base * (9 / 10),
      base,
      base,
      base,
    ]);
    expect(lrAt(0, { base, schedule: 'constant' })).toBe(base);
  });
  it('linear with warmup: λ = (total − step)/(total − warmup) after warmup, floored at 0', () => {
    const o = { ...common, schedule: 'linear' as const };
    expect(lrAt(5, o)).toBeCloseTo(5e-4, 15);
    expect(lrAt(10, o)).toBeCloseTo(1e-3, 15);
    expect(lrAt(55, o)).toBeCloseTo(5e-4, 15);
    expect(lrAt(91, o)).toBeCloseTo(1e-4, 15);
    expect(lrAt(100, o)).toBe(0);
    expect(lrAt(130, o)).toBe(0);
  });
  it('cosine with warmup (num_cycles 0.5) and with a min lr', () => {
    const o = { ...common, schedule: 'cosine' as const };
    expect(lrAt(10, o)).toBeCloseTo(1e-3, 15);
    expect(lrAt(40, o)).toBeCloseTo(7.5e-4, 15); // progress 1/3: 0.5(1 + cos(π/3))
    expect(lrAt(55, o)).toBeCloseTo(5e-4, 15);
    expect(lrAt(100, o)).toBeCloseTo(0, 15);
    const m = { ...o, minLr: 1e-4 };
    expect(lrAt(40, m)).toBeCloseTo(7.75e-4, 15);
    expect(lrAt(100, m)).toBeCloseTo(1e-4, 15);
    expect(lrAt(3, m)).toBeCloseTo(3e-4, 15); // warmup is not remapped
    expect(() => lrAt(1, { base, schedule: 'linear' })).toThrow(/totalSteps/);
  });
});
