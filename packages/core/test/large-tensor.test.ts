import { afterEach, describe, expect, it } from 'vitest';
import * as core from '../src/node.js';
import { useGpu } from './gpu.js';

/**
 * Tensors larger than one binding (128 MiB on lavapipe) are processed in windows. The limit is lowered
 * here so the windowed paths run on small tensors; results must equal the unwindowed computation.
 */
describe('tensors over the binding limit', () => {
  const gpu = useGpu();
  afterEach(() => gpu.device().setBindingLimitForTesting(null));

  it('elementwise, cast and fill work in windows', async () => {
    // Odd length (scalar kernels) here; the next test covers the vec4 kernels.
    const n = 5000 + 37;
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    const expected = await core.tidy(() => core.exp(core.add(core.tensor(a), core.tensor(b)))).data();
    gpu.device().setBindingLimitForTesting(4096);
    const ta = core.tensor(a);
    const tb = core.tensor(b);
    const got = await core.exp(core.add(ta, tb)).data();
    expect(got).toEqual(expected);
    const half = core.cast(ta, 'f16');
    const back = await core.cast(half, 'f32').data();
    for (let i = 0; i < n; i++) expect(Math.abs(back[i] - a[i])).toBeLessThan(1e-3);
    const filled = await core.full([n], 2.5).data();
    expect(filled.every((v) => v === 2.5)).toBe(true);
  });

  it('vec4 elementwise kernels work in windows', async () => {
    const n = 6000;
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const expected = await core.tidy(() => core.tanh(core.mul(core.tensor(a), core.tensor(a)))).data();
    gpu.device().setBindingLimitForTesting(4096);
    const ta = core.tensor(a);
    expect(await core.tanh(core.mul(ta, ta)).data()).toEqual(expected);
    for (let i = 0; i < n; i += 997) expect(expected[i]).toBeCloseTo(Math.tanh(a[i] * a[i]), 6);
  });

  it('an op without a windowed path reports the limit instead of failing silently', () => {
    gpu.device().setBindingLimitForTesting(4096);
    const x = core.zeros([4, 2000]);
    expect(() => core.softmax(x)).toThrow(/maxStorageBufferBindingSize/);
  });
});
