import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { haveData } from './helpers.js';

// The README's example runs against the built package, as a user would run it.
it.runIf(haveData('alpaca/alpaca_data_1k.json', 'stories260K/tok512.bin'))(
  'examples/prepare-alpaca.mjs prepares Alpaca and resumes its loader',
  () => {
    const script = fileURLToPath(new URL('../examples/prepare-alpaca.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/alpaca_data_1k\.json \(instruction\): 950 records -> \d+ examples/);
    expect(r.stdout).toMatch(/max length 512: \d+ truncated/);
    expect(r.stdout).toContain('validation: 50 examples');
    expect(r.stdout).toContain('resumed batch matches: true');
  },
);
