/**
 * Bind groups are created once per distinct binding and looked up after that: a training step
 * repeated once the buffer pool has settled creates none, its values stay right, and bindings
 * that differ in any resource, offset or pipeline get their own group. The pool hands out free
 * buffers in a fixed order, so that a repeated step gets the same buffers (and bind groups). The
 * first dispatches after a wait go to the GPU in a small submit, later ones in growing batches.
 */
import { describe, expect, it } from 'vitest';
import { BindGroupCache } from '../src/device/bind-groups.js';
import { BufferPool } from '../src/device/pool.js';
import * as core from '../src/node.js';
import { useGpu } from './gpu.js';

describe('bind group cache', () => {
  const gpu = useGpu();

  it('a step repeated after two creates no bind groups and computes the same values', async () => {
    const dev = gpu.device();
    const x = core.randn([40, 24], { seed: 3 });
    const w = new core.Parameter(core.randn([24, 36], { seed: 4 }));
    const step = async () => {
      const loss = core.tidy(() => {
        const l = core.sum(core.softmax(core.matmul(x, w.value)));
        core.backward(l);
        return l;
      });
      const g = w.grad as core.Tensor;
      const out = [await loss.item(), Array.from(await g.data())];
      loss.dispose();
      g.dispose();
      w.value.grad = null;
      return out;
    };
    // The first steps settle which pooled buffer each tensor of a step gets.
    const first = await step();
    await step();
    const before = dev.stats.bindGroups;
    const dispatches = dev.stats.dispatches;
    const second = await step();
    expect(dev.stats.dispatches).toBeGreaterThan(dispatches);
    expect(dev.stats.bindGroups).toBe(before);
    expect(second).toEqual(first);
  });

  it('hands out free buffers by creation order, whatever order they were released in', () => {
    const pool = new BufferPool(gpu.device().gpu);
    const made = [0, 1, 2, 3, 4].map(() => pool.take(1000).buffer);
    // Which of `made` (by index) five takes return: buffers are compared by identity.
    const takeFive = () => [0, 1, 2, 3, 4].map(() => made.indexOf(pool.take(1000).buffer));
    // Released in a scrambled order, a last-in-first-out pool would hand them out as 2, 0, 4, 1, 3.
    for (const i of [3, 1, 4, 0, 2]) pool.release(made[i]);
    expect(takeFive()).toEqual([0, 1, 2, 3, 4]);
    // Released again in another order, the same buffers come back in the same order.
    for (const i of [4, 2, 0, 3, 1]) pool.release(made[i]);
    expect(takeFive()).toEqual([0, 1, 2, 3, 4]);
    expect(pool.buffers).toBe(5);
    for (const b of made) pool.release(b);
    pool.trim();
    expect(pool.buffers).toBe(0);
  });

  it('submits the first dispatches after a wait early and lets later batches grow', async () => {
    const dev = gpu.device();
    const x = core.randn([64], { seed: 5 });
    await dev.sync();
    // Submits made after each of 100 single-dispatch ops, with no wait in between.
    const submitsAfter: number[] = [];
    const s0 = dev.stats.submits;
    const d0 = dev.stats.dispatches;
    let y = core.keep(core.add(x, x));
    for (let i = 1; i < 100; i++) {
      const next = core.keep(core.add(y, x));
      y.dispose();
      y = next;
      submitsAfter.push(dev.stats.submits - s0);
    }
    expect(dev.stats.dispatches - d0).toBe(100);
    // Batches of 16, 32 and 64 dispatches: submitted at the 16th, 48th and 112th (not reached).
    expect(submitsAfter[14 - 1]).toBe(0);
    expect(submitsAfter[16 - 2]).toBe(1);
    expect(submitsAfter[47 - 2]).toBe(1);
    expect(submitsAfter[48 - 2]).toBe(2);
    expect(submitsAfter[99 - 1]).toBe(2);
    // The values are those of the additions: y = x + x, then x added 99 times.
    const [xs, ys] = [await x.data(), await y.data()];
    for (let i = 0; i < 64; i++)
      expect(Math.abs(ys[i] - 101 * xs[i])).toBeLessThanOrEqual(1e-4 * Math.abs(101 * xs[i]));
    // After the wait, the first batch is small again.
    const s1 = dev.stats.submits;
    for (let i = 0; i < 16; i++) {
      const next = core.keep(core.add(y, x));
      y.dispose();
      y = next;
    }
    expect(dev.stats.submits - s1).toBe(1);
    x.dispose();
    y.dispose();
  });

  it('tells bindings apart by buffer, offset, size and pipeline, and clears at its limit', () => {
    const dev = gpu.device();
    const code = (op: string) => `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(1) fn main() { a[0] ${op} 1.0; }`;
    const pipe = (op: string) =>
      dev.gpu.createComputePipeline({
        layout: 'auto',
        compute: { module: dev.gpu.createShaderModule({ code: code(op) }), entryPoint: 'main' },
      });
    const [p1, p2] = [pipe('+='), pipe('-=')];
    const [b1, b2] = [0, 1].map(() => dev.gpu.createBuffer({ size: 512, usage: 0x80 /* STORAGE */ }));
    const cache = new BindGroupCache(dev.gpu, 4);
    const at = (buffer: GPUBuffer, offset = 0, size?: number) => [
      { binding: 0, resource: { buffer, offset, size } },
    ];
    const g = cache.get(p1, at(b1));
    expect(cache.get(p1, at(b1))).toBe(g);
    const others = [cache.get(p1, at(b2)), cache.get(p1, at(b1, 256)), cache.get(p2, at(b1))];
    for (const o of others) expect(o).not.toBe(g);
    expect(cache.created).toBe(4);
    // The fifth distinct binding finds the cache full: it is cleared, so g is created anew.
    cache.get(p1, at(b1, 0, 16));
    expect(cache.get(p1, at(b1))).not.toBe(g);
    expect(cache.created).toBe(6);
    for (const b of [b1, b2]) b.destroy();
  });
});
