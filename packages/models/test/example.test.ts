import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The README's example runs against the built package, as a user would run it.
it('examples/tiny-llama.mjs loads, scores and decodes a tiny LLaMA and exits by itself', () => {
  const script = fileURLToPath(new URL('../examples/tiny-llama.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(
    /^loaded model\.safetensors: LlamaForCausalLM, 131264 parameters\nloss \d\.\d{4} over 10 tokens\n/,
  );
  expect(r.stdout).toMatch(/cache holds 14 positions; greedy ids( \d+){5}\n$/);
});
