import { describe, expect, it } from 'vitest';
import { waitWithoutSpinning } from '../src/device/dawn-wait.js';
import * as core from '../src/node.js';
import { useGpu } from './gpu.js';

/**
 * The Node entry waits for Dawn's promises with pauses between polls (dawn.node would otherwise spin
 * a core that lavapipe needs); the wait must behave exactly like awaiting the promise.
 */
describe('waiting for Dawn without spinning', () => {
  const gpu = useGpu();

  it('resolves and rejects as the promise does, also when it settles later', async () => {
    expect(await waitWithoutSpinning(Promise.resolve(7))).toBe(7);
    const later = new Promise<string>((resolve) => setTimeout(() => resolve('done'), 20));
    expect(await waitWithoutSpinning(later)).toBe('done');
    await expect(waitWithoutSpinning(Promise.reject(new Error('lost')))).rejects.toThrow('lost');
  });

  it('is what the Node device uses for sync() and reads', async () => {
    expect(gpu.device().waitFor).toBe(waitWithoutSpinning);
    const x = core.randn([300, 300], { seed: 1 });
    const y = core.matmul(x, x);
    await gpu.device().sync();
    const [a, b] = await Promise.all([x.data(), y.data()]);
    let s = 0;
    for (let k = 0; k < 300; k++) s += a[k] * a[k * 300];
    expect(Math.abs(b[0] - s)).toBeLessThan(1e-3 * Math.max(1, Math.abs(s)));
    x.dispose();
    y.dispose();
  });
});
