import { describe, expect, it } from 'vitest';
import * as core from '../src/node.js';

describe('typed errors for bad input and a missing or lost device', () => {
  it('ops before init() name the fix', () => {
    expect(() => core.zeros([2])).toThrow(/call init\(\)/);
  });

  it('shape and dtype mistakes throw ShapeError / DTypeError with the shapes in the message', async () => {
    await core.init();
    try {
      const a = core.zeros([2, 3]);
      const b = core.zeros([4, 5]);
      expect(() => core.matmul(a, b)).toThrow(core.ShapeError);
      expect(() => core.matmul(a, b)).toThrow(/\[2, 3\].*\[4, 5\]/);
      expect(() => core.add(a, core.zeros([4]))).toThrow(/cannot be broadcast/);
      expect(() => core.reshape(a, [4, 2])).toThrow(core.ShapeError);
      expect(() => core.tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
      expect(() => core.tensor([1.5], [1], 'i32')).toThrow(/not an integer/);
      const ids = core.tensor(new Int32Array([1, 2]));
      expect(() => core.exp(ids)).toThrow(core.DTypeError);
      expect(() => core.layerNorm(a, core.ones([4]), null)).toThrow(/does not match last dim/);
      expect(() => core.concat([a, b], 0)).toThrow(core.ShapeError);
      const x = core.ones([3]);
      x.dispose();
      expect(() => core.exp(x)).toThrow(core.DisposedError);
      const y = core.ones([3]);
      expect(() => core.backward(y)).toThrow(/does not require grad/);
    } finally {
      core.shutdown();
    }
  });

  it('a destroyed device gives DEVICE errors instead of hanging', async () => {
    const dev = await core.init();
    const t = core.ones([4]);
    dev.destroy();
    await expect(t.data()).rejects.toThrow(core.DeviceError);
    expect(() => core.ones([2])).toThrow(/call init\(\)/);
    core.shutdown();
    // A fresh device works again afterwards.
    await core.init();
    expect(await core.ones([2]).data()).toEqual(new Float32Array([1, 1]));
    core.shutdown();
  });

  it('WebGPU validation errors surface as DeviceError at the next sync point', async () => {
    const dev = await core.init();
    try {
      dev.gpu.createBuffer({ size: 16, usage: 0x1 | 0x2 }); // MAP_READ | MAP_WRITE is invalid
      await expect(dev.sync()).rejects.toThrow(/WebGPU error/);
      await dev.sync();
    } finally {
      core.shutdown();
    }
  });
});
