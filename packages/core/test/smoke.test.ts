import { describe, expect, it } from 'vitest';
import * as core from '../src/node.js';
import { useGpu } from './gpu.js';

describe('smoke', () => {
  useGpu();
  it('adds and multiplies', async () => {
    const a = core.tensor([1, 2, 3, 4], [2, 2]);
    const b = core.tensor([10, 20], [2]);
    const c = core.add(a, b);
    expect([...(await c.data())]).toEqual([11, 22, 13, 24]);
    const m = core.matmul(a, a);
    expect([...(await m.data())]).toEqual([7, 10, 15, 22]);
    const s = core.softmax(a);
    const sd = await s.data();
    expect(sd[0] + sd[1]).toBeCloseTo(1, 6);
  });
  it('zeros are zeros in a new buffer and in one reused from the pool', async () => {
    const dev = core.getDevice();
    for (const [i, dtype] of (['f32', 'bf16', 'i32'] as const).entries()) {
      const shape = [37, 11];
      // Dirty a buffer of this size, give it back to the pool, and take it again.
      const dirty = core.full(shape, 7, dtype);
      await dirty.data();
      const buffer = dirty.buffer;
      dirty.dispose();
      const reused = core.zeros(shape, dtype);
      expect(reused.buffer).toBe(buffer);
      expect(Array.from(await reused.data()).every((v) => v === 0)).toBe(true);
      // A size no free buffer has (a different bucket per dtype): a new one.
      const before = dev.pool.buffers;
      const fresh = core.zeros([1000 * (i + 3), 1009], dtype);
      expect(dev.pool.buffers).toBe(before + 1);
      expect(Array.from(await fresh.data()).every((v) => v === 0)).toBe(true);
      reused.dispose();
      fresh.dispose();
    }
  });

  it('backward of sum(x*x)', async () => {
    const x = core.tensor([1, -2, 3], [3]);
    x.requiresGrad = true;
    const y = core.sum(core.mul(x, x));
    core.backward(y);
    expect([...(await x.grad!.data())]).toEqual([2, -4, 6]);
  });
});
