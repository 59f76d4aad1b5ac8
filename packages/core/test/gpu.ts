import { afterAll, beforeAll } from 'vitest';
import { type Device, init, shutdown } from '../src/node.js';

/**
 * Every GPU test file calls useGpu(). Tests run on a real adapter (lavapipe on CPU-only machines);
 * a missing adapter is a failure, never a skip.
 */
export function useGpu(): { device: () => Device } {
  let dev: Device | null = null;
  beforeAll(async () => {
    dev = await init();
  });
  afterAll(() => {
    shutdown();
  });
  return {
    device: () => {
      if (!dev) throw new Error('GPU not initialised');
      return dev;
    },
  };
}
