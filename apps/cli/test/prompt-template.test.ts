/**
 * An adapter trained on a prompt format carries its template to `generate`: the Alpaca template is
 * written out here from stanford_alpaca's train.py, independently of the library's copy.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

let tmp = '';
const at = (...p: string[]) => join(tmp, ...p);

const ALPACA_NO_INPUT = (instruction: string) =>
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.' +
  `\n\n### Instruction:\n${instruction}\n\n### Response:`;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-template-'));
  expect(runCli(['init', '--arch', 'gpt2', '--preset', 'tiny', '--out', at('gpt2')]).status).toBe(0);
  const rows = Array.from({ length: 8 }, (_, i) => ({ instruction: `Say ${i}.`, input: '', output: `${i}` }));
  await writeFile(at('alpaca.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const r = runCli([
    'train',
    ...['--model', at('gpt2'), '--data', at('alpaca.jsonl'), '--format', 'instruction'],
    ...['--steps', '0', '--validation', '0', '--out', at('adapter')],
  ]);
  expect(r.status, r.stderr).toBe(0);
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const generate = (...extra: string[]) => {
  const r = runCli([
    'generate',
    ...['--model', at('gpt2'), '--prompt', 'Name a color.', '--max-new-tokens', '2', '--json'],
    ...extra,
  ]);
  return { ...r, doc: r.status === 0 ? JSON.parse(r.stdout) : null };
};

describe('prompt templates saved with an adapter', () => {
  it('train records the format; generate applies its template unless --no-template', async () => {
    expect(JSON.parse(await readFile(at('adapter', 'sharelora_prompt_format.json'), 'utf8'))).toEqual({
      format: 'instruction',
    });
    const withAdapter = generate('--adapter', at('adapter'));
    expect(withAdapter.status, withAdapter.stderr).toBe(0);
    expect(withAdapter.doc.template).toBe('instruction');
    expect(withAdapter.doc.input).toBe(ALPACA_NO_INPUT('Name a color.'));
    const plain = generate('--adapter', at('adapter'), '--no-template');
    expect(plain.doc.template).toBeNull();
    expect(plain.doc.input).toBe('Name a color.');
  });

  it('--template applies a format without an adapter; streaming shows the templated prompt and says so', () => {
    const g = generate('--template', 'gsm8k');
    expect(g.doc.input).toBe('Question: Name a color.\nAnswer:');
    const streamed = runCli([
      'generate',
      ...['--model', at('gpt2'), '--adapter', at('adapter'), '--prompt', 'Hi', '--max-new-tokens', '1'],
    ]);
    expect(streamed.status, streamed.stderr).toBe(0);
    expect(streamed.stdout.startsWith(ALPACA_NO_INPUT('Hi'))).toBe(true);
    expect(streamed.stderr).toMatch(/prompt in the adapter's instruction template \(--no-template/);
  });

  it.each([
    [['--template', 'alpaca'], /--template/],
    [['--template', 'text', '--no-template'], /not both/],
    [['--template', 'text', '--chat'], /not both/],
  ])('bad usage exits 2: %j', (args, message) => {
    const r = generate(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('a damaged format file is refused naming it', async () => {
    await writeFile(at('adapter', 'sharelora_prompt_format.json'), '{"format": "poem"}');
    const r = generate('--adapter', at('adapter'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/sharelora_prompt_format\.json: "format" must be one of/);
  });
});
