import { describe, expect, it } from 'vitest';
import {
  kaimingBound,
  kaimingUniform,
  Rng,
  randn,
  randUniform,
  splitmix64Outputs,
  tidy,
} from '../src/node.js';
import { useGpu } from './gpu.js';

function moments(xs: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  const mean = s / xs.length;
  let v = 0;
  for (let i = 0; i < xs.length; i++) v += (xs[i] - mean) ** 2;
  return { mean, variance: v / xs.length };
}

describe('Rng (CPU)', () => {
  it('reproduces the PCG32 reference stream', () => {
    // pcg-c-basic's pcg32-demo, seeded with pcg32_srandom_r(&rng, 42u, 54u); the "Round 1" output published
    // at https://www.pcg-random.org/using-pcg-c-basic.html (also pcg-c's test-high/expected/check-pcg32.out).
    const r = Rng.pcg32(42n, 54n);
    const first = Array.from({ length: 6 }, () => r.nextU32());
    expect(first).toEqual([0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e]);
    // The same demo continues with 65 coins (pcg32_boundedrand_r(&rng, 2)) and 33 dice rolls (bound 6, +1).
    let coins = '';
    for (let i = 0; i < 65; i++) coins += r.int(2) ? 'H' : 'T';
    expect(coins).toBe('HHTTTHTHHHTHTTTHHHHHTTTHHHTHTHTHTTHTTTHHHHHHTTTTHHTTTTTHTTTTTTTHT');
    const rolls = Array.from({ length: 33 }, () => r.int(6) + 1).join(' ');
    expect(rolls).toBe('3 4 1 1 2 2 3 2 4 3 2 4 3 3 5 2 3 1 3 1 5 1 4 1 5 6 4 6 6 2 6 3 3');
  });

  it('seeds through SplitMix64 (reference outputs of splitmix64.c for seed 0)', () => {
    // Vigna, https://prng.di.unimi.it/splitmix64.c, state x = 0.
    expect(splitmix64Outputs(0n, 3)).toEqual([0xe220a8397b1dcdafn, 0x6e789e6aa1b965f4n, 0x06c45d188009454fn]);
  });

  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(1234);
    const b = new Rng(1234);
    const c = new Rng(1235);
    const xa = Array.from({ length: 1000 }, () => a.normal());
    expect(Array.from({ length: 1000 }, () => b.normal())).toEqual(xa);
    expect(Array.from({ length: 1000 }, () => c.normal())).not.toEqual(xa);
  });

  it('resumes exactly from getState/setState, including the pending Box–Muller value', () => {
    const r = new Rng(7);
    r.normal(); // leaves a spare
    const saved = JSON.parse(JSON.stringify(r.getState()));
    const next = [r.normal(), r.normal(), r.uniform(), r.nextU32()];
    const resumed = Rng.fromState(saved);
    expect([resumed.normal(), resumed.normal(), resumed.uniform(), resumed.nextU32()]).toEqual(next);
  });

  it('fork(label) gives independent streams that do not depend on draws already made', () => {
    const r = new Rng(99);
    const f1 = r.fork('dropout');
    for (let i = 0; i < 10; i++) r.uniform();
    const f2 = r.fork('dropout');
    const g = r.fork('data');
    const s1 = Array.from({ length: 20 }, () => f1.nextU32());
    expect(Array.from({ length: 20 }, () => f2.nextU32())).toEqual(s1);
    expect(Array.from({ length: 20 }, () => g.nextU32())).not.toEqual(s1);
    expect(new Rng(100).fork('dropout').nextU32()).not.toBe(new Rng(99).fork('dropout').nextU32());
  });

  it('uniform and normal have the right moments', () => {
    const r = new Rng(2024);
    const n = 200_000;
    const u = Float64Array.from({ length: n }, () => r.uniform());
    const z = Float64Array.from({ length: n }, () => r.normal());
    const mu = moments(u);
    // Standard errors: mean 0.289/sqrt(n) = 6.5e-4, variance ~1.9e-4 (uniform); 2.2e-3 and 3.2e-3 (normal).
    expect(Math.abs(mu.mean - 0.5)).toBeLessThan(3e-3);
    expect(Math.abs(mu.variance - 1 / 12)).toBeLessThan(1e-3);
    expect(u.every((v) => v >= 0 && v < 1)).toBe(true);
    const mz = moments(z);
    expect(Math.abs(mz.mean)).toBeLessThan(0.01);
    expect(Math.abs(mz.variance - 1)).toBeLessThan(0.015);
    const within1 = z.filter((v) => Math.abs(v) < 1).length / n;
    expect(Math.abs(within1 - 0.682689)).toBeLessThan(0.005);
  });

  it('int() is unbiased and shuffle() permutes', () => {
    const r = new Rng(5);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[r.int(7)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    const perm = r.shuffle(Array.from({ length: 50 }, (_, i) => i));
    expect([...perm].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(perm).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('kaimingBound(a = √5) is 1/sqrt(fan_in), as torch.nn.Linear', () => {
    for (const fanIn of [1, 16, 768, 4096]) expect(kaimingBound(fanIn)).toBeCloseTo(1 / Math.sqrt(fanIn), 14);
    expect(kaimingBound(100, 0)).toBeCloseTo(Math.sqrt(6 / 100), 14); // He-uniform for ReLU
  });
});

describe('random tensor initialisers', () => {
  useGpu();

  it('kaimingUniform fills U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for [out, in]', async () => {
    const w = kaimingUniform([300, 100], new Rng(3));
    const d = await w.data();
    const bound = 0.1;
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of d) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(-bound);
    expect(hi).toBeLessThanOrEqual(bound);
    expect(hi).toBeGreaterThan(0.999 * bound);
    expect(lo).toBeLessThan(-0.999 * bound);
    const m = moments(d);
    expect(Math.abs(m.mean)).toBeLessThan(0.002);
    expect(Math.abs(m.variance / ((bound * bound) / 3) - 1)).toBeLessThan(0.03);
    // Conv1D [in, out] layout: fan_in is given explicitly.
    const c = await kaimingUniform([100, 300], new Rng(3), Math.sqrt(5), { fanIn: 100 }).data();
    expect(Math.max(...c.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...c.map(Math.abs))).toBeGreaterThan(0.999 * bound);
    w.dispose();
  });

  it('same seed gives identical tensors; randn respects mean and std', async () => {
    const [a, b, c] = tidy(() => [
      randn([64, 64], { seed: 11, std: 0.02, mean: 1 }),
      randn([64, 64], { seed: 11, std: 0.02, mean: 1 }),
      randn([64, 64], { seed: 12 }),
    ]);
    const da = await a.data();
    expect(await b.data()).toEqual(da);
    expect(await c.data()).not.toEqual(da);
    const m = moments(da);
    expect(Math.abs(m.mean - 1)).toBeLessThan(0.002);
    expect(Math.abs(Math.sqrt(m.variance) / 0.02 - 1)).toBeLessThan(0.03);
    const u = await randUniform([1000], -2, 3, new Rng(4)).data();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...u)).toBeLessThan(3);
    for (const t of [a, b, c]) t.dispose();
  });
});
