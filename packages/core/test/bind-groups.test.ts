/**
 * Bind groups are created once per distinct binding and looked up after that: a training step
 * repeated once the buffer pool has settled creates none, its values stay right, and bindings
 * that differ in any resource, offset or pipeline get their own group.
 */
import { describe, expect, it } from 'vitest';
import { BindGroupCache } from '../src/device/bind-groups.js';
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
