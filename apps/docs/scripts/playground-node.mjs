#!/usr/bin/env node
// Runs the playground's experiment in Node (Dawn, on whatever adapter is present) and prints each
// method's median ms per fine-tuning step, to set beside the figure the playground shows in a
// browser for the same step. The packages must be built.
//
// Usage: node apps/docs/scripts/playground-node.mjs [--steps N] [--rank R]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown } from '@sharelora/core/node';
import { createServer } from 'vite';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '20' }, rank: { type: 'string', default: '8' } },
});
// Vite loads the playground's TypeScript module as the site's build does.
const vite = await createServer({
  root: fileURLToPath(new URL('..', import.meta.url)),
  logLevel: 'error',
  server: { middlewareMode: true },
  appType: 'custom',
  // The packages as Node loads them, so the module sees the device init() below set up.
  ssr: { external: ['@sharelora/core', '@sharelora/adapters', '@sharelora/models', '@sharelora/train'] },
});
try {
  const { runExperiment } = await vite.ssrLoadModule('/src/playground/experiment.ts');
  await init();
  const exp = await runExperiment(
    {
      rank: Number(values.rank),
      steps: Number(values.steps),
      methods: ['lora', 'share-a', 'share-b', 'share-ab'],
    },
    () => {},
  );
  const { methods } = exp.result;
  exp.dispose();
  console.log(
    `playground ms/step in Node: ${methods.map((m) => `${m.method} ${m.msPerStep.toFixed(1)}`).join(', ')}`,
  );
} finally {
  shutdown();
  await vite.close();
}
