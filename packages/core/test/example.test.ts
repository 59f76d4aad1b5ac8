import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The README's example runs against the built package, as a user would run it.
it('examples/fit-line.mjs recovers y = 3x - 1 and exits by itself', () => {
  const script = fileURLToPath(new URL('../examples/fit-line.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/w 3\.000 {2}b -1\.000/);
});
