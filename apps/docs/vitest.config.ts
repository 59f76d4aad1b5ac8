import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'docs',
    include: ['test/**/*.test.ts'],
    // One browser, one page at a time: the machines running this have two cores.
    fileParallelism: false,
    // Pages load in a browser on a shared machine: a few seconds is not a hang.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
