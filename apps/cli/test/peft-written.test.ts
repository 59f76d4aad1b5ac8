/**
 * Adapters written by stock PEFT (`save_pretrained`, its own config fields and key layout) load in
 * `sharelora forward` and give the logits PEFT computed with them. The adapters, the base models
 * (sharelora init tiny presets) and PEFT's logits are in fixtures/peft-written, one folder per PEFT
 * release (peft-VERSION: 0.13.2, the last to refuse unknown config keys, and a current one);
 * generate.py there wrote them with torch + transformers + peft, whose versions peft-logits.json records.
 * The other direction (PEFT loading what `sharelora train` writes) needs Python: peft-loads-ours.sh.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/peft-written/', import.meta.url));

interface Case {
  base: string;
  inputs: { input_ids: number[][]; attention_mask?: number[][] };
  logits: unknown;
}
interface Written {
  peft: string;
  transformers: string;
  cases: Record<string, Case>;
}
const releases = readdirSync(FIXTURES).filter((f) => /^peft-\d+\.\d+\.\d+$/.test(f));

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);

it('has adapters of PEFT 0.13.2 and of a later release', () => {
  expect(releases).toContain('peft-0.13.2');
  expect(releases.length).toBeGreaterThanOrEqual(2);
});

describe.each(releases)('adapters %s wrote', (release) => {
  const written = JSON.parse(readFileSync(join(FIXTURES, release, 'peft-logits.json'), 'utf8')) as Written;
  const dir = mkdtempSync(join(tmpdir(), 'peft-written-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`records the release it came from (transformers ${written.transformers})`, () => {
    expect(`peft-${written.peft}`).toBe(release);
  });

  it('covers LLaMA, GPT-2 (fan_in_fan_out) and RoBERTa sequence classification (modules_to_save)', () => {
    expect(Object.keys(written.cases).sort()).toEqual([
      'gpt2-lora-attn-proj',
      'llama-lora-qv',
      'llama-rslora-all-linear',
      'roberta-seq-cls',
    ]);
  });

  for (const [name, c] of Object.entries(written.cases)) {
    it(`${name}: forward --adapter gives PEFT's logits`, () => {
      const inputs = join(dir, `${name}.json`);
      writeFileSync(inputs, JSON.stringify(c.inputs));
      const r = runCli([
        'forward',
        '--model',
        join(FIXTURES, 'models', c.base),
        '--adapter',
        join(FIXTURES, release, 'adapters', name),
        '--inputs',
        inputs,
        '--json',
      ]);
      expect(r.stderr).not.toMatch(/ignoring|initialised/);
      expect(r.status, r.stderr).toBe(0);
      const ours = flat(JSON.parse(r.stdout).logits);
      const peft = flat(c.logits);
      expect(ours.length).toBe(peft.length);
      const scale = Math.max(...peft.map(Math.abs));
      const diff = Math.max(...ours.map((v, i) => Math.abs(v - peft[i])));
      // PEFT's logits are stored to 7 decimals; f32 sums in a different order differ by ~1e-6.
      expect(diff).toBeLessThan(2e-5 * Math.max(1, scale));
      // The adapter changes the output: it is not a no-op that the base model alone would pass.
      const base = runCli([
        'forward',
        '--model',
        join(FIXTURES, 'models', c.base),
        '--inputs',
        inputs,
        '--json',
      ]);
      if (c.base !== 'roberta') {
        const plain = flat(JSON.parse(base.stdout).logits);
        expect(Math.max(...plain.map((v, i) => Math.abs(v - peft[i])))).toBeGreaterThan(1e-3);
      }
    });
  }
});
