import { init, shutdown } from '@sharelora/core/node';
import { afterAll, beforeAll } from 'vitest';

/** GPU test files call this: a real adapter (lavapipe on CPU-only machines); none is a failure, never a skip. */
export function useGpu(): void {
  beforeAll(async () => {
    await init();
  });
  afterAll(() => {
    shutdown();
  });
}
