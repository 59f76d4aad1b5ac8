#!/usr/bin/env node
/**
 * Greedy decoding of stories260K against llama2.c's run.c on this machine, interleaved, each side's
 * best of --rounds kept (other load only ever slows a run down), and the ratio printed with the
 * CPU's vector ISA. Downloads nothing: run.c (MIT-licensed, not part of this repository) comes from
 * --run-c PATH or $LLAMA2C_RUN_C and is compiled in a temporary folder (gcc -O3, one thread, as its
 * Makefile's `run` target); the model comes from $SHARELORA_DATA/stories260K (see its README) and is
 * imported into a temporary folder with `sharelora import`.
 *
 *   node scripts/bench-vs-llama2c.mjs --run-c /path/to/llama2.c/run.c [--rounds 3] [--steps 256] [--json]
 *
 * Both sides decode from the prompt "Once upon a time" to `--steps` positions. run.c prints tokens/s
 * over every position after the first (its prompt positions are single-token steps like the rest);
 * sharelora's figure is `bench --generate`'s decode tokens/s over the same span.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuInfo } from './cpu.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    'run-c': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '256' },
    json: { type: 'boolean' },
  },
});
const fail = (msg) => {
  console.error(`bench-vs-llama2c: ${msg}`);
  process.exit(2);
};
const runC = values['run-c'] ?? process.env.LLAMA2C_RUN_C;
if (!runC || !existsSync(runC))
  fail("pass --run-c PATH (or set LLAMA2C_RUN_C) to a copy of llama2.c's run.c");
const data = process.env.SHARELORA_DATA ?? resolve(root, '..', 'shared', 'data');
const stories = join(data, 'stories260K');
if (!existsSync(join(stories, 'stories260K.bin')))
  fail(`${stories}/stories260K.bin not found (set SHARELORA_DATA)`);
const cli = join(root, 'apps', 'cli', 'dist', 'bin.js');
if (!existsSync(cli)) fail('build first (pnpm build)');
const rounds = Number(values.rounds);
const steps = Number(values.steps);
const PROMPT = 'Once upon a time';

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, cwd: root });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
}

const tmp = mkdtempSync(join(tmpdir(), 'bench-llama2c-'));
try {
  const exe = join(tmp, 'run');
  run('gcc', ['-O3', '-o', exe, resolve(runC), '-lm']);
  const model = join(tmp, 'stories260K');
  run('node', [
    cli,
    'import',
    '--from',
    'llama2c',
    join(stories, 'stories260K.bin'),
    '--tokenizer',
    join(stories, 'tok512.bin'),
    '--out',
    model,
  ]);
  const bench = (newTokens, ...flags) =>
    JSON.parse(
      run('node', [
        cli,
        'bench',
        '--generate',
        '--model',
        model,
        '--prompt',
        PROMPT,
        '--new-tokens',
        String(newTokens),
        '--json',
        ...flags,
      ]).stdout,
    ).generate;
  // The prompt's tokens count toward run.c's steps; the decode span is the rest.
  const promptTokens = bench(1, '--runs', '1').promptTokens;
  const best = { llama2c: 0, sharelora: 0 };
  for (let r = 0; r < rounds; r++) {
    const c = run(exe, [
      join(stories, 'stories260K.bin'),
      '-z',
      join(stories, 'tok512.bin'),
      '-t',
      '0',
      '-n',
      String(steps),
      '-i',
      PROMPT,
    ]);
    const tps = Number((c.stderr + c.stdout).match(/achieved tok\/s: ([\d.]+)/)?.[1]);
    if (!Number.isFinite(tps)) throw new Error(`run.c printed no tokens/s:\n${c.stderr}`);
    best.llama2c = Math.max(best.llama2c, tps);
    const ours = bench(steps - promptTokens);
    best.sharelora = Math.max(best.sharelora, ours.decodeTokensPerSec);
    if (!values.json)
      console.error(
        `round ${r + 1}/${rounds}: run.c ${tps.toFixed(0)} tokens/s, sharelora ${ours.decodeTokensPerSec.toFixed(0)} tokens/s`,
      );
  }
  const result = { ...cpuInfo(), rounds, steps, tokensPerSec: best, ratio: best.sharelora / best.llama2c };
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else
    console.log(
      `${result.cpu}, ${result.isa}, ${result.cores} cores; best of ${rounds} interleaved rounds, ${steps} positions:\n` +
        `  llama2.c run.c ${best.llama2c.toFixed(0)} tokens/s, sharelora decode ${best.sharelora.toFixed(0)} tokens/s: ${result.ratio.toFixed(2)}x`,
    );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
