/** Quantized base weights from the command line: `sharelora quantize` and `--quantize` on train, generate, eval and forward. */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

let tmp = '';
const llama = () => join(tmp, 'llama');
const texts = () => join(tmp, 'texts.jsonl');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-quantize-cli-'));
  expect(runCli(['init', '--arch', 'llama', '--preset', 'tiny', '--out', llama()]).status).toBe(0);
  const lines = Array.from({ length: 24 }, (_, i) =>
    JSON.stringify({ text: `Tom has ${i} red balls. Lily has ${i + 1} blue kites.` }),
  );
  await writeFile(texts(), `${lines.join('\n')}\n`);
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('sharelora quantize', () => {
  it('writes an nf4 directory a quarter the size that generate loads as stored, with the text of --quantize nf4', async () => {
    const out = join(tmp, 'llama-nf4');
    const r = runCli(['quantize', '--model', llama(), '--to', 'nf4', '--out', out, '--json']);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.files).toContain('tokenizer.json');
    const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toMatchObject({ load_in_4bit: true, bnb_4bit_quant_type: 'nf4' });
    const before = (await stat(join(llama(), 'model.safetensors'))).size;
    expect((await stat(join(out, 'model.safetensors'))).size).toBeLessThan(before);

    const gen = (args: string[]) =>
      runCli(['generate', ...args, '--prompt', 'Tom has', '--max-new-tokens', '8', '--json']);
    const stored = gen(['--model', out]);
    const onTheFly = gen(['--model', llama(), '--quantize', 'nf4']);
    expect(stored.status).toBe(0);
    expect(onTheFly.status).toBe(0);
    expect(JSON.parse(stored.stdout).tokens).toEqual(JSON.parse(onTheFly.stdout).tokens);

    // A stored format is not re-quantized to another.
    const other = gen(['--model', out, '--quantize', 'int8']);
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/stored as nf4, not int8/);
  });

  it('refuses bad flags and an output that is the model', () => {
    const bad = runCli(['quantize', '--model', llama(), '--to', 'q3', '--out', join(tmp, 'x')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--to must be one of nf4, fp4, int8, bf16, f16, f32/);
    const missing = runCli(['quantize', '--model', llama()]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--to and --out are required/);
    const self = runCli(['quantize', '--model', llama(), '--to', 'int8', '--out', llama()]);
    expect(self.status).toBe(2);
    const q = runCli(['generate', '--model', llama(), '--prompt', 'a', '--quantize', 'nf3']);
    expect(q.status).toBe(2);
    expect(q.stderr).toMatch(/--quantize must be one of nf4, fp4, int8/);
  });
});

describe('--quantize in train and forward', () => {
  it('trains a ShareA adapter over an int8 base, reports the base by format, and refuses --method full', async () => {
    const out = join(tmp, 'run-int8');
    const r = runCli([
      'train',
      ...['--model', llama(), '--data', texts(), '--format', 'text', '--out', out],
      ...['--quantize', 'int8', '--steps', '3', '--batch-size', '4', '--json'],
    ]);
    expect(r.stderr).not.toMatch(/Error:/);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.report.baseWeightsByFormat.int8).toBeGreaterThan(0);
    expect(Number.isFinite(doc.trainLoss)).toBe(true);

    const full = runCli([
      'train',
      ...['--model', llama(), '--data', texts(), '--format', 'text', '--out', join(tmp, 'full')],
      ...['--method', 'full', '--quantize', 'nf4', '--steps', '1'],
    ]);
    expect(full.status).toBe(2);
    expect(full.stderr).toMatch(/--quantize nf4 does not apply to --method full/);

    // forward --grads over the quantized base needs the adapter: the base has no gradients.
    const inputs = join(tmp, 'inputs.json');
    await writeFile(inputs, JSON.stringify({ input_ids: [[1, 5, 7, 9]], labels: [[1, 5, 7, 9]] }));
    const grads = join(tmp, 'grads.safetensors');
    const noAdapter = runCli([
      'forward',
      ...['--model', llama(), '--inputs', inputs, '--grads', grads, '--quantize', 'int8'],
    ]);
    expect(noAdapter.status).toBe(2);
    expect(noAdapter.stderr).toMatch(/needs --adapter/);
    const withAdapter = runCli([
      'forward',
      ...['--model', llama(), '--adapter', out, '--inputs', inputs],
      ...['--grads', grads, '--quantize', 'int8', '--json'],
    ]);
    expect(withAdapter.stderr).not.toMatch(/Error:/);
    expect(withAdapter.status).toBe(0);
    expect(JSON.parse(withAdapter.stdout).grads.tensors).toBeGreaterThan(0);
  });
});
