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
  it('backward of sum(x*x)', async () => {
    const x = core.tensor([1, -2, 3], [3]);
    x.requiresGrad = true;
    const y = core.sum(core.mul(x, x));
    core.backward(y);
    expect([...(await x.grad!.data())]).toEqual([2, -4, 6]);
  });
});
