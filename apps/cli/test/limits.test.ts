/**
 * Limits and input errors as a user meets them: configs too large for the machine, oversized data,
 * context length, and checkpoints or adapters that do not belong to the run; each a one-line message
 * and exit code 2, with nothing trained.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsReader, writeSafetensors } from '@sharelora/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

let tmp = '';
const at = (...p: string[]) => join(tmp, ...p);

/** A copy of the tiny LLaMA with config.json keys replaced. */
async function variant(name: string, keys: Record<string, unknown>): Promise<string> {
  const dir = at(name);
  await cp(at('llama'), dir, { recursive: true });
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...keys }));
  return dir;
}

/** Exit code 2 and a stderr line matching `message`, without a stack trace. */
function refused(args: string[], message: RegExp): void {
  const r = runCli(args);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.status).toBe(2);
}

const trainArgs = (data: string, out: string, ...more: string[]) => [
  'train',
  ...['--model', at('llama'), '--data', data, '--format', 'text', '--out', out],
  ...['--method', 'lora', '--rank', '2', '--alpha', '4', '--steps', '2', '--save-every', '2'],
  ...more,
];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-limits-'));
  for (const [name, seed] of [
    ['llama', '0'],
    ['llama-other', '7'],
  ])
    expect(
      runCli(['init', '--arch', 'llama', '--preset', 'tiny', '--seed', seed, '--out', at(name)]).status,
    ).toBe(0);
  const lines = Array.from({ length: 24 }, (_, i) =>
    JSON.stringify({ text: `Tom found ball ${i}. Mom smiled.` }),
  );
  await writeFile(at('data.jsonl'), `${lines.join('\n')}\n`);
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('configs too large are refused before anything is allocated', () => {
  it('vocab_size, hidden_size and num_hidden_layers far past the machine: exit 2 with the numbers', async () => {
    refused(
      ['generate', '--model', await variant('vocab', { vocab_size: 1e9 }), '--prompt', 'hi'],
      /config\.json: the weights alone need about [\d.]+ GiB \(1\.28e\+11 parameters × 4 bytes: vocab_size 1000000000.*more than this machine's/,
    );
    const wide = await variant('wide', { hidden_size: 1e9, num_attention_heads: 1, num_key_value_heads: 1 });
    refused(['generate', '--model', wide, '--prompt', 'hi'], /config\.json: the weights alone need about/);
    const deep = await variant('deep', { num_hidden_layers: 1e7 });
    refused(
      ['generate', '--model', deep, '--prompt', 'hi'],
      /"num_hidden_layers" is 10000000, more than the 1024/,
    );
    // params reads config.json only, and builds one entry per layer.
    refused(
      ['params', '--model', deep, '--method', 'lora', '--rank', '2'],
      /"num_hidden_layers" is 10000000, more than the 1024 layers/,
    );
  });
});

describe('a model directory that is not one says what it is', () => {
  it('a weight file as --model, a directory or a link loop as model.safetensors', async () => {
    refused(
      ['generate', '--model', at('llama', 'model.safetensors'), '--prompt', 'hi'],
      /model\.safetensors: is a file, not a model directory/,
    );
    const dirWeights = await variant('dir-weights', {});
    await rm(join(dirWeights, 'model.safetensors'));
    await mkdir(join(dirWeights, 'model.safetensors'));
    refused(
      ['generate', '--model', dirWeights, '--prompt', 'hi'],
      /model\.safetensors: is a directory, not a weight file/,
    );
    const loop = await variant('loop', {});
    await rm(join(loop, 'model.safetensors'));
    await symlink('model.safetensors', join(loop, 'model.safetensors'));
    refused(['generate', '--model', loop, '--prompt', 'hi'], /model\.safetensors: is a symbolic link loop/);
  });
});

describe('LLaMA generation keeps to max_position_embeddings', () => {
  it('--max-new-tokens 1e9 stops at the context length; a longer prompt keeps its end, with a warning', async () => {
    const short = await variant('short', { max_position_embeddings: 12 });
    const r = runCli([
      'generate',
      '--model',
      short,
      '--prompt',
      'a b',
      '--max-new-tokens',
      '1000000000',
      '--json',
    ]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.finishReason).toBe('length');
    // BOS and the prompt's tokens, then as many new ones as fit in 12 positions.
    expect(out.tokens.length).toBeGreaterThan(0);
    expect(out.tokens.length).toBeLessThan(12);
    const long = runCli([
      'generate',
      '--model',
      short,
      '--prompt',
      'a b c d e f g h i j k l m n o p',
      '--json',
    ]);
    expect(long.status, long.stderr).toBe(0);
    expect(long.stderr).toMatch(
      /1 of 1 prompts had more tokens than the model's context of 12: each kept its last \d+/,
    );
    expect(JSON.parse(long.stdout).finishReason).toBe('length');
  });
});

describe('train: bad sizes and values are refused before training', () => {
  it('--rank beyond the projections, --seed 1e20: exit 2, no metrics written', () => {
    refused(
      trainArgs(at('data.jsonl'), at('rank'), '--rank', '100000'),
      /rank 100000 exceeds .*at most min\(in, out\) = 64/,
    );
    expect(existsSync(at('rank', 'metrics.jsonl'))).toBe(false);
    refused(
      trainArgs(at('data.jsonl'), at('seed'), '--seed', '1e20'),
      /--seed must be an integer in \[0, 2\^53\), got "1e20"/,
    );
  });

  it('a record over --max-record-bytes, a file over --max-data-bytes, a device as --data', async () => {
    const long = at('long.jsonl');
    await writeFile(
      long,
      `${JSON.stringify({ text: 'x'.repeat(3000) })}\n${await readFile(at('data.jsonl'), 'utf8')}`,
    );
    refused(
      trainArgs(long, at('rec'), '--max-record-bytes', '2000'),
      /long\.jsonl:1: the record holds about 3,000 bytes of text, more than the 2,000-byte limit per record \(raise it with --max-record-bytes\)/,
    );
    refused(
      trainArgs(at('data.jsonl'), at('file'), '--max-data-bytes', '100'),
      /data\.jsonl: is [\d,]+ bytes, more than the 100 bytes limit on input files \(raise it with --max-data-bytes\)/,
    );
    await symlink('/dev/zero', at('zero.jsonl'));
    refused(trainArgs(at('zero.jsonl'), at('zero')), /zero\.jsonl: is not a regular file/);
  });

  it.skipIf(!existsSync('/dev/full'))(
    'a full disk while writing: exit 2 with a message, no stack trace',
    async () => {
      await mkdir(at('full'));
      await symlink('/dev/full', at('full', 'metrics.jsonl'));
      refused(trainArgs(at('data.jsonl'), at('full')), /no space left on the device/);
    },
  );
});

describe('checkpoints and adapters that do not belong to the run', () => {
  const run = () => at('run');
  /** A copy of the finished run, for a resume to be refused from. */
  const copy = async (name: string) => {
    await cp(run(), at(name), { recursive: true });
    await rm(at(name, '.sharelora.lock'), { force: true });
    return at(name);
  };

  beforeAll(() => {
    expect(runCli(trainArgs(at('data.jsonl'), run())).status).toBe(0);
  });

  it('a resume with another rank, other data, another base model or a tampered step: exit 2', async () => {
    refused(
      trainArgs(at('data.jsonl'), await copy('r-rank'), '--resume', '--rank', '4'),
      /lora_A.*expected \[4, 64\], got \[2, 64\]; resume with the same model, method, rank and targets/,
    );
    await writeFile(
      at('fewer.jsonl'),
      (await readFile(at('data.jsonl'), 'utf8')).split('\n').slice(0, 12).join('\n'),
    );
    refused(
      trainArgs(at('fewer.jsonl'), await copy('r-data'), '--resume'),
      /saved data position .* belongs to other examples/,
    );
    const other = trainArgs(at('data.jsonl'), await copy('r-base'), '--resume');
    other[other.indexOf('--model') + 1] = at('llama-other');
    refused(other, /was trained on another base model: other embedding weights/);
    const tampered = await copy('r-step');
    const state = join(tampered, 'checkpoint-2', 'trainer_state.json');
    await writeFile(state, JSON.stringify({ ...JSON.parse(await readFile(state, 'utf8')), step: 1e9 }));
    refused(
      trainArgs(at('data.jsonl'), tampered, '--resume'),
      /trainer_state\.json: step 1000000000 does not match/,
    );
  });

  it('an adapter on another base model or truncated: exit 2; one saved without the identity still loads', async () => {
    const generate = (model: string, adapter: string) => [
      ...['generate', '--model', model, '--adapter', adapter, '--prompt', 'hi', '--max-new-tokens', '2'],
    ];
    refused(
      generate(at('llama-other'), run()),
      /adapter_model\.safetensors: the adapter was trained on another base model/,
    );
    const cut = await copy('a-cut');
    await truncate(join(cut, 'adapter_model.safetensors'), 200);
    refused(generate(at('llama'), cut), /adapter_model\.safetensors: not a readable safetensors file/);
    // Adapters written before the identity was recorded (or by PEFT) have no baseModel: accepted.
    const old = await copy('a-old');
    const weights = join(old, 'adapter_model.safetensors');
    const reader = await SafetensorsReader.open(weights);
    const block = JSON.parse(reader.metadata?.sharelora ?? '{}');
    const tensors = Object.fromEntries(
      await Promise.all(
        reader
          .keys()
          .map(
            async (k) =>
              [k, { dtype: 'F32', shape: [...reader.info(k).shape], data: await reader.read(k) }] as const,
          ),
      ),
    );
    await reader.close();
    delete block.baseModel;
    await writeSafetensors(weights, tensors, { format: 'pt', sharelora: JSON.stringify(block) });
    expect(runCli(generate(at('llama-other'), old)).status).toBe(0);
  });
});
