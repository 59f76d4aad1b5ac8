import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The README's example runs against the built package, as a user would run it.
it('examples/share-a.mjs trains, saves, reloads and merges a ShareA adapter and exits by itself', () => {
  const script = fileURLToPath(new URL('../examples/share-a.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  // 2 types × (4·16 + 4·4·16) vs 4 layers × 2 × 4·32.
  expect(r.stdout).toMatch(/share-a trains 640 parameters, LoRA 1024 \(-37\.5%\)/);
  expect(r.stdout).toMatch(/optimizer state: 5120 bytes/);
  expect(r.stdout).toMatch(/saved adapter_config\.json, adapter_model\.safetensors/);
  expect(r.stdout).toMatch(/reloaded: max \|diff\| 0\n/);
  const [first, last] = (/loss (\S+) -> (\S+)/.exec(r.stdout) ?? []).slice(1).map(Number);
  expect(last).toBeLessThan(first / 2);
  expect(Number(/merged: max \|diff\| (\S+)/.exec(r.stdout)?.[1])).toBeLessThan(1e-5);
});
