/**
 * `sharelora import` and `sharelora generate`, run as a user runs them (the built binary), on the real
 * stories260K model: imported from GGUF and from llama2.c, it must continue "Once upon a time" with
 * llama2.c's documented greedy text.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adapterParameters, injectAdapter, presetConfig } from '@sharelora/adapters';
import { saveAdapter } from '@sharelora/adapters/node';
import { assignTensor } from '@sharelora/core';
import { init, Rng, shutdown } from '@sharelora/core/node';
import { type CausalLM, generate, loadModel, loadTokenizer } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const stories = join(process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data'), 'stories260K');
const GGUF = join(stories, 'stories260K.gguf');
const BIN = join(stories, 'stories260K.bin');
const TOK = join(stories, 'tok512.bin');
const haveData = [GGUF, BIN, TOK].every((f) => existsSync(f));
if (!haveData && process.env.CI !== 'true') {
  console.warn(
    `SKIPPING the stories260K import/generate CLI tests: data not found at ${stories} (set SHARELORA_DATA)`,
  );
}
/** In CI a missing data folder fails the run instead of skipping. */
const itData = haveData || process.env.CI === 'true' ? it : it.skip;

/** llama2.c's documented greedy continuation of "Once upon a time" (DESIGN.md §6). */
const EXPECTED =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ' +
  'One day, she saw a big, red ball.';
const PROMPT = 'Once upon a time';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-generate-cli-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const dirs = { gguf: () => join(tmp, 'from-gguf'), llama2c: () => join(tmp, 'from-llama2c') };
const greedy = (dir: string, ...more: string[]) =>
  runCli([
    'generate',
    '--model',
    dir,
    '--prompt',
    PROMPT,
    '--temperature',
    '0',
    '--max-new-tokens',
    '40',
    ...more,
  ]);

describe('sharelora import + generate on stories260K', () => {
  itData('imports the GGUF and the llama2.c checkpoint (with tok512.bin)', () => {
    const g = runCli(['import', '--from', 'gguf', GGUF, '--out', dirs.gguf(), '--json']);
    expect(g.status, g.stderr).toBe(0);
    const gs = JSON.parse(g.stdout);
    expect(gs.format).toBe('gguf');
    expect(gs.tokenizer.vocabSize).toBe(512);
    expect(gs.files).toContain('tokenizer.json');

    const l = runCli(['import', '--from', 'llama2c', BIN, '--tokenizer', TOK, '--out', dirs.llama2c()]);
    expect(l.status, l.stderr).toBe(0);
    expect(l.stdout).toMatch(/imported llama2c .*stories260K\.bin/);
    expect(l.stdout).toMatch(/tokenizer: 512 pieces/);
    // Not a TTY: progress, if any, comes as plain lines, never redrawn.
    expect(l.stderr.includes('\r') || l.stderr.includes('\u001b')).toBe(false);
  });

  for (const from of ['gguf', 'llama2c'] as const) {
    itData(`generates llama2.c's greedy continuation, streamed and as JSON (from ${from})`, () => {
      const streamed = greedy(dirs[from]());
      expect(streamed.status, streamed.stderr).toBe(0);
      console.log(`stories260K (${from}) printed: ${JSON.stringify(streamed.stdout)}`);
      expect(streamed.stdout.startsWith(EXPECTED)).toBe(true);

      const j = greedy(dirs[from](), '--json');
      expect(j.status, j.stderr).toBe(0);
      const doc = JSON.parse(j.stdout);
      expect(doc.prompt).toBe(PROMPT);
      expect(`${doc.prompt}${doc.text}`.startsWith(EXPECTED)).toBe(true);
      expect(doc.tokens).toHaveLength(40);
      expect(doc.finishReason).toBe('length');
      // Streaming printed the prompt, then exactly the text, then a newline.
      expect(streamed.stdout).toBe(`${doc.prompt}${doc.text}\n`);
    });
  }

  itData('cuts at a stop string and samples reproducibly with a seed', () => {
    const stop = greedy(dirs.gguf(), '--stop', ' She', '--stop', 'never', '--json');
    expect(stop.status, stop.stderr).toBe(0);
    const doc = JSON.parse(stop.stdout);
    expect(doc.text).toBe(', there was a little girl named Lily.');
    expect(doc.finishReason).toBe('stop');

    const sample = (seed: string) =>
      runCli([
        'generate',
        '--model',
        dirs.gguf(),
        '--prompt',
        PROMPT,
        '--temperature',
        '1',
        '--top-p',
        '0.9',
        '--top-k',
        '40',
        '--seed',
        seed,
        '--max-new-tokens',
        '30',
        '--json',
      ]);
    const [a, b, c] = [sample('7'), sample('7'), sample('8')];
    expect(a.status, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).tokens).toEqual(JSON.parse(b.stdout).tokens);
    expect(JSON.parse(a.stdout).tokens).not.toEqual(JSON.parse(c.stdout).tokens);
  });

  itData('applies --adapter exactly as the library does', async () => {
    const adapterDir = join(tmp, 'adapter');
    let expected: string;
    await init();
    let model: CausalLM | null = null;
    try {
      const loaded = await loadModel(dirs.gguf());
      if (loaded.model.task !== 'causal-lm') throw new Error('expected a causal LM');
      model = loaded.model;
      injectAdapter(model, presetConfig('share-a', { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] }));
      // B starts at zero: random values make the adapter change the text.
      const rng = new Rng(3);
      for (const p of adapterParameters(model, 'default')) {
        assignTensor(p.value, {
          data: Float32Array.from({ length: p.value.size }, () => rng.normal() * 0.3),
          shape: p.shape,
        });
      }
      model.eval();
      await saveAdapter(model, adapterDir);
      const [g] = await generate(model, await loadTokenizer(dirs.gguf()), [PROMPT], { maxNewTokens: 40 });
      expected = g.text;
    } finally {
      model?.dispose();
      shutdown();
    }
    const r = greedy(dirs.gguf(), '--adapter', adapterDir, '--json');
    expect(r.status, r.stderr).toBe(0);
    const text = JSON.parse(r.stdout).text;
    expect(text).toBe(expected);
    expect(`${PROMPT}${text}`.startsWith(EXPECTED)).toBe(false);
  });
});

describe('import/generate usage and input errors', () => {
  it('exit 2 with one line naming the flag or file', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['import', '--from', 'onnx', 'x.onnx', '--out', tmp], /--from/],
      [['import', '--from', 'gguf', '--out', tmp], /FILE/],
      [['import', '--from', 'gguf', join(tmp, 'missing.gguf'), '--out', join(tmp, 'o')], /missing\.gguf/],
      [['import', '--from', 'gguf', GGUF, '--tokenizer', TOK, '--out', join(tmp, 'o')], /--tokenizer/],
      [
        ['import', '--from', 'llama2c', join(tmp, 'x.bin'), '--dequantize', '--out', join(tmp, 'o')],
        /--dequantize/,
      ],
      [['generate', '--prompt', 'x'], /--model/],
      [['generate', '--model', join(tmp, 'nowhere'), '--prompt', 'x'], /nowhere/],
      [['generate', '--model', tmp, '--prompt', 'x', '--top-p', '1.5'], /--top-p/],
      [['generate', '--model', tmp, '--prompt', 'x', '--temperature', '-1'], /--temperature/],
      [['generate', '--model', tmp, '--prompt', 'x', '--bogus'], /--bogus/],
    ];
    const notGguf = join(tmp, 'not.gguf');
    await writeFile(notGguf, 'definitely not a gguf file');
    cases.push([['import', '--from', 'gguf', notGguf, '--out', join(tmp, 'o')], /not\.gguf/]);
    const noTokenizer = join(tmp, 'no-tokenizer');
    await mkdir(noTokenizer);
    cases.push([['generate', '--model', noTokenizer, '--prompt', 'x'], /no-tokenizer/]);
    for (const [args, pattern] of cases) {
      const r = runCli(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    }
  });

  it('--help for both commands', () => {
    for (const cmd of ['import', 'generate']) {
      const r = runCli([cmd, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage: sharelora ${cmd}`));
    }
  });
});
