import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readTrainCurve } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'curve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("reads a train folder's loss curve: the last line of a step wins, cut lines and evaluations are skipped", async () => {
  const lines = [
    { type: 'step', step: 1, loss: 3 },
    { type: 'step', step: 2, loss: 2.5 },
    { type: 'eval', step: 2, valLoss: 2.9 },
    { type: 'step', step: 3, loss: 2.4 },
    // Resumed from the checkpoint at step 2: step 3 logged again.
    { type: 'step', step: 3, loss: 2.2 },
  ].map((l) => JSON.stringify(l));
  writeFileSync(join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n{"type":"step","st`);
  expect(await readTrainCurve(dir)).toEqual([
    { step: 1, loss: 3 },
    { step: 2, loss: 2.5 },
    { step: 3, loss: 2.2 },
  ]);
  expect(await readTrainCurve(join(dir, 'missing'))).toEqual([]);
});
