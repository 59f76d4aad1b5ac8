/** `sharelora train` as a user runs it: bad data, kill -9 / Ctrl-C and --resume, a RoBERTa classifier on SST-2. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA_DIR = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');

/** Real data present? Missing fails in CI (CI=true) and otherwise skips loudly. */
function haveData(path: string): boolean {
  if (existsSync(join(DATA_DIR, path))) return true;
  if (process.env.CI === 'true')
    throw new Error(`real data missing: ${join(DATA_DIR, path)} (set SHARELORA_DATA)`);
  console.warn(
    `\n[SKIPPED] real data missing: ${join(DATA_DIR, path)}; set SHARELORA_DATA to run this test\n`,
  );
  return false;
}

let tmp = '';
const gpt2 = () => join(tmp, 'gpt2');
const roberta = () => join(tmp, 'roberta');
const texts = () => join(tmp, 'texts.jsonl');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-train-cli-'));
  for (const [arch, dir] of [
    ['gpt2', gpt2()],
    ['roberta', roberta()],
  ])
    expect(runCli(['init', '--arch', arch, '--preset', 'tiny', '--out', dir]).status).toBe(0);
  const names = ['Tom', 'Lily', 'Ben', 'Mia', 'Sam', 'Anna'];
  const things = ['red ball', 'blue kite', 'big box', 'little cat', 'green hat'];
  const lines = Array.from({ length: 40 }, (_, i) => {
    const n = names[i % names.length];
    const t = things[(i * 3) % things.length];
    return JSON.stringify({ text: `${n} found a ${t}. ${n} gave the ${t} to mom.` });
  });
  await writeFile(texts(), `${lines.join('\n')}\n`);
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** A directory's files and their contents, to show that nothing in it changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      const p = join(e.parentPath, e.name);
      out[p.slice(dir.length)] = await readFile(p, 'utf8');
    }
  }
  return out;
}

/** A small LoRA run's arguments. */
const loraRun = (model: string, data: string, format: string, out: string) => [
  'train',
  ...['--model', model, '--data', data, '--format', format, '--out', out],
  ...['--method', 'lora', '--rank', '2', '--alpha', '4'],
];

describe('sharelora train: bad input', () => {
  const cases: Array<[string, string, string[], RegExp]> = [
    [
      'a malformed JSONL line',
      'bad.jsonl',
      ['{"text": "one"}', '{"text": "two"}', '{"text": "thr'],
      /bad\.jsonl:3\b/,
    ],
    [
      'a missing column',
      'missing.jsonl',
      ['{"text": "one"}', '{"txt": "two"}'],
      /missing\.jsonl:2\b.*"text"/,
    ],
    ['an empty file', 'empty.jsonl', [], /empty\.jsonl/],
    // One row is too few for the validation split, but the header is the problem to report.
    [
      'a table without the column',
      'one-row.csv',
      ['title', 'one'],
      /one-row\.csv:1\b.*missing column "text"/,
    ],
  ];
  for (const [what, name, lines, message] of cases) {
    it(`${what}: exit 2 naming file and line; the out dir is untouched`, async () => {
      const file = join(tmp, name);
      await writeFile(file, lines.join('\n'));
      const out = join(tmp, `out-${name}`);
      await mkdir(join(out, 'checkpoint-3'), { recursive: true });
      await writeFile(join(out, 'adapter_config.json'), '{"r": 4}');
      await writeFile(join(out, 'checkpoint-3', 'trainer_state.json'), '{"step": 3}');
      const before = await snapshot(out);
      // --resume: an OUT holding a run's checkpoint and adapter is that run's to continue.
      const r = runCli([...loraRun(gpt2(), file, 'text', out), '--resume']);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(await snapshot(out)).toEqual(before);
    });
  }

  it('a label outside the label set: exit 2 naming file and line', async () => {
    const file = join(tmp, 'labels.tsv');
    await writeFile(file, 'sentence\tlabel\ngood film\t1\nbad film\t0\nodd film\t2\n');
    const r = runCli(loraRun(roberta(), file, 'glue-sst2', join(tmp, 'never')));
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/labels\.tsv:4\b/);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });

  it('unknown flags and config keys: exit 2 naming them', async () => {
    const flag = runCli(['train', '--model', gpt2(), '--lerning-rate', '1']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toContain('--lerning-rate');
    const config = join(tmp, 'config.json');
    await writeFile(config, JSON.stringify({ lr: 1e-3, warmup: 10, 'batch-size': 4 }));
    const key = runCli(['train', '--config', config]);
    expect(key.status).toBe(2);
    expect(key.stderr).toMatch(/config\.json: unknown key "warmup"/);
  });
});

describe('sharelora train --profile', () => {
  it('accounts for every dispatch of the run, per step, and writes a trace with one event per dispatch', async () => {
    const out = join(tmp, 'profiled');
    const trace = join(tmp, 'train-trace.json');
    const args = [...loraRun(gpt2(), texts(), 'text', out), '--steps', '2', '--validation', '0'];
    const r = runCli([...args, '--json', '--profile', '--profile-out', trace]);
    expect(r.status, r.stderr).toBe(0);
    const { profile: p, steps } = JSON.parse(r.stdout);
    expect(steps).toBe(2);
    expect(p.steps).toBe(2);
    expect(p.ops.reduce((s: number, o: { dispatches: number }) => s + o.dispatches, 0)).toBe(p.dispatches);
    // Each step runs the fused attention once per layer, forward and backward.
    const fwd = p.ops.find((o: { kind: string }) => o.kind === 'attn_fwd');
    expect(fwd.dispatches % 2).toBe(0);
    if (p.timestamps) expect(p.gpuSpanMs).toBeLessThanOrEqual(p.wallMs);
    const events = JSON.parse(await readFile(trace, 'utf8')).traceEvents;
    expect(events.filter((e: { cat: string }) => e.cat === 'encode')).toHaveLength(p.dispatches);

    const text = runCli([
      ...loraRun(gpt2(), texts(), 'text', join(tmp, 'profiled-text')),
      '--steps',
      '1',
      '--profile',
    ]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/profile, per step over 1 step:/);
    expect(text.stdout).toMatch(/^attn_fwd +\d+ /m);

    const orphan = runCli([
      ...loraRun(gpt2(), texts(), 'text', join(tmp, 'never-profiled')),
      '--profile-out',
      trace,
    ]);
    expect(orphan.status).toBe(2);
    expect(orphan.stderr).toMatch(/--profile-out needs --profile/);
  });
});

describe('sharelora train: interrupted runs resume bit-identically', () => {
  // LoRA dropout and GPT-2's own dropout both draw masks, so the resume must restore their offsets.
  const args = (out: string) => [
    'train',
    '--model',
    gpt2(),
    '--data',
    texts(),
    '--format',
    'text',
    '--method',
    'share-a',
    '--rank',
    '4',
    '--alpha',
    '8',
    '--dropout',
    '0.1',
    '--lr',
    '5e-3',
    '--steps',
    '14',
    '--batch-size',
    '4',
    '--warmup-steps',
    '2',
    '--eval-every',
    '5',
    '--seed',
    '3',
    '--out',
    out,
  ];
  const adapterBytes = (out: string) => readFile(join(out, 'adapter_model.safetensors'));

  /** Starts a run and sends `signal` once `ready(out)` holds; resolves with how the process ended. */
  async function interrupt(out: string, extra: string[], signal: NodeJS.Signals, ready: () => boolean) {
    const child: ChildProcess = spawn(process.execPath, [BIN, ...args(out), ...extra], {
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on('exit', (code, sig) => done({ code, signal: sig })),
    );
    const poll = setInterval(() => {
      if (ready()) {
        clearInterval(poll);
        child.kill(signal);
      }
    }, 20);
    const result = await ended;
    clearInterval(poll);
    return { ...result, stderr };
  }

  let whole = '';
  beforeAll(() => {
    whole = join(tmp, 'whole');
    const r = runCli(args(whole));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`adapter saved to ${whole}`);
  });

  it('after kill -9 mid-run', async () => {
    const out = join(tmp, 'killed');
    const killed = await interrupt(
      out,
      ['--save-every', '2'],
      'SIGKILL',
      () => existsSync(out) && readdirSync(out).some((n) => /^checkpoint-\d+$/.test(n)),
    );
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(false);
    const r = runCli([...args(out), '--save-every', '2', '--resume']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/resuming from .*killed\/checkpoint-\d+/);
    expect(Buffer.compare(await adapterBytes(out), await adapterBytes(whole))).toBe(0);
  });

  const stops: Array<[NodeJS.Signals, number]> = [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ];
  for (const [signal, code] of stops) {
    it(`after ${signal}, which writes a checkpoint first and exits ${code}`, async () => {
      const out = join(tmp, `stopped-${signal}`);
      const metrics = join(out, 'metrics.jsonl');
      // The signal comes after a few steps, with no periodic checkpoint (--save-every stays 100).
      const stopped = await interrupt(
        out,
        [],
        signal,
        () => existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').length > 4,
      );
      expect(stopped.code, stopped.stderr).toBe(code);
      const step = Number(/interrupted at step (\d+)/.exec(stopped.stderr)?.[1]);
      expect(step).toBeGreaterThan(0);
      expect(step).toBeLessThan(14);
      expect(readdirSync(out)).toContain(`checkpoint-${step}`);
      expect(readdirSync(out)).not.toContain('.sharelora.lock');
      const r = runCli([...args(out), '--resume']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`resuming from ${join(out, `checkpoint-${step}`)}`);
      expect(Buffer.compare(await adapterBytes(out), await adapterBytes(whole))).toBe(0);
    });
  }

  it('a signal before the first step still leaves a checkpoint to resume from', async () => {
    const out = join(tmp, 'stopped-early');
    // As soon as the lock is taken: the data and the model are still to be read.
    const stopped = await interrupt(out, [], 'SIGTERM', () => existsSync(join(out, '.sharelora.lock')));
    expect(stopped.code, stopped.stderr).toBe(143);
    expect(stopped.stderr).toContain('interrupted at step 0');
    expect(readdirSync(out)).toContain('checkpoint-0');
    const r = runCli([...args(out), '--resume']);
    expect(r.status, r.stderr).toBe(0);
    expect(Buffer.compare(await adapterBytes(out), await adapterBytes(whole))).toBe(0);
  });
});

describe('sharelora train: outputs it must not write', () => {
  const bytesOf = async (file: string) => readFile(file);

  it('an --out that is an input, contains one, is a system directory or a file: exit 2 before reading anything', async () => {
    const data = await bytesOf(texts());
    const cases: Array<[string[], RegExp]> = [
      [loraRun(gpt2(), texts(), 'text', texts()), /is the --data input/],
      [loraRun(gpt2(), texts(), 'text', tmp), /contains the --model input/],
      [loraRun(gpt2(), texts(), 'text', '/'), /refusing to write into the filesystem root/],
      [loraRun(gpt2(), texts(), 'text', '/usr/sharelora-run'), /refusing to write into a system directory/],
    ];
    for (const [argv, message] of cases) {
      const r = runCli(argv);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(Buffer.compare(await bytesOf(texts()), data)).toBe(0);
    expect(existsSync('/adapter_config.json') || existsSync('/.sharelora.lock')).toBe(false);
    // An existing file is refused before the model (here missing) would be read.
    const file = join(tmp, 'notes.txt');
    await writeFile(file, 'mine');
    const r = runCli(loraRun(join(tmp, 'no-model'), texts(), 'text', file));
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/notes\.txt: is an existing file/);
  });

  it('--method full does not write over a model without --overwrite, nor ever over its --model', async () => {
    const fullRun = (out: string, ...extra: string[]) =>
      runCli([
        'train',
        ...['--model', gpt2(), '--data', texts(), '--format', 'text', '--method', 'full'],
        ...['--steps', '1', '--batch-size', '4', '--validation', '0', '--out', out, ...extra],
      ]);
    const model = await snapshot(gpt2());
    const own = fullRun(gpt2(), '--overwrite');
    expect(own.status, own.stderr).toBe(2);
    expect(own.stderr).toMatch(/is the --model input/);
    expect(await snapshot(gpt2())).toEqual(model);

    const previous = join(tmp, 'previous-model');
    await cp(gpt2(), previous, { recursive: true });
    const weights = await bytesOf(join(previous, 'model.safetensors'));
    const refused = fullRun(previous);
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/holds a model \(config\.json\).*--overwrite/);
    expect(Buffer.compare(await bytesOf(join(previous, 'model.safetensors')), weights)).toBe(0);
    const allowed = fullRun(previous, '--overwrite');
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(Buffer.compare(await bytesOf(join(previous, 'model.safetensors')), weights)).not.toBe(0);
  });

  it("a second run into a live run's OUT is refused naming its PID and host; its lock, once stale, is taken over", async () => {
    const out = join(tmp, 'contended');
    const metrics = join(out, 'metrics.jsonl');
    const long = [...loraRun(gpt2(), texts(), 'text', out), '--steps', '5000', '--save-every', '100000'];
    const child = spawn(process.execPath, [BIN, ...long], {
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      stdio: 'ignore',
    });
    const ended = new Promise((done) => child.on('exit', done));
    try {
      while (!(existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').length > 2))
        await new Promise((r) => setTimeout(r, 20));
      for (const extra of [[], ['--resume']]) {
        const r = runCli([...loraRun(gpt2(), texts(), 'text', out), '--steps', '2', ...extra]);
        expect(r.status, r.stderr).toBe(2);
        expect(r.stderr).toContain(`in use by process ${child.pid} on ${hostname()}`);
      }
    } finally {
      child.kill('SIGKILL');
      await ended;
    }
    // SIGKILL leaves the lock behind; its holder is gone, so the next run takes it over.
    expect(JSON.parse(readFileSync(join(out, '.sharelora.lock'), 'utf8')).pid).toBe(child.pid);
    const r = runCli([...loraRun(gpt2(), texts(), 'text', out), '--steps', '2']);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out)).toContain('adapter_model.safetensors');
    expect(readdirSync(out)).not.toContain('.sharelora.lock');
  });
});

describe('sharelora train progress outside a terminal', () => {
  it('plain lines every SHARELORA_PROGRESS_SECONDS (0: every update); none in a short run by default', () => {
    const args = [...loraRun(gpt2(), texts(), 'text', join(tmp, 'progress')), '--steps', '2'];
    const quiet = runCli([...args, '--overwrite']);
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toMatch(/loss|validate|ETA/);
    process.env.SHARELORA_PROGRESS_SECONDS = '0';
    try {
      const r = runCli([...args, '--eval-every', '1', '--overwrite']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.includes('\r') || r.stderr.includes('\u001b')).toBe(false);
      // One look for every phase: label, bar, count, rate, ETA, then the phase's own detail.
      expect(r.stderr).toMatch(
        /^load \S+ \[=+\] [0-9.]+ (bytes|KiB|MiB)\/[0-9.]+ (bytes|KiB|MiB) {2}.*ETA /m,
      );
      expect(r.stderr).toMatch(/^train \[=+ +\] 1\/2 steps {2}ETA -- {2}loss [0-9.]+ nats\/token {2}lr /m);
      // The rate counts from the first report, through the validation pass between the steps.
      expect(r.stderr).toMatch(/^train \[=+\] 2\/2 steps {2}[0-9.]+ (steps\/s|s\/step) {2}ETA 0s {2}loss/m);
      expect(r.stderr).toMatch(/^validate \[[= ]+\] \d+\/\d+ examples {2}/m);
    } finally {
      delete process.env.SHARELORA_PROGRESS_SECONDS;
    }
  });
});

describe('sharelora train --steps 0', () => {
  it('saves the untrained adapter and reports the validation loss before fine-tuning', async () => {
    const run = (method: string, out: string, extra: string[] = []) =>
      runCli([
        'train',
        ...['--model', gpt2(), '--data', texts(), '--format', 'text', '--out', out],
        ...['--method', method, '--rank', '2', '--steps', '0', '--validation', '0.25', ...extra],
      ]);
    const a = run('lora', join(tmp, 'steps0-lora'), ['--json']);
    expect(a.status, a.stderr).toBe(0);
    const doc = JSON.parse(a.stdout);
    expect(doc.steps).toBe(0);
    expect(doc.evals.map((e: { step: number }) => e.step)).toEqual([0]);
    expect(Number.isFinite(doc.bestValLoss)).toBe(true);
    expect(readdirSync(join(tmp, 'steps0-lora'))).toContain('adapter_model.safetensors');
    // The f32 row of the frozen model's bytes (from config.json alone) is what the run allocated.
    const [f32, bf16, int8, nf4] = doc.report.frozenBytesByPrecision;
    expect([f32.precision, bf16.precision, int8.precision, nf4.precision]).toEqual([
      'f32',
      'bf16',
      'int8',
      'nf4',
    ]);
    expect(f32.blockWeights + f32.otherWeights).toBe(doc.report.bytes.weights);
    expect(nf4.blockWeights).toBeLessThan(int8.blockWeights);
    expect(int8.blockWeights).toBeLessThan(bf16.blockWeights);
    // B starts at zero in every method, so an untrained adapter leaves the base model's loss.
    const b = run('share-ab', join(tmp, 'steps0-shareab'));
    expect(b.status, b.stderr).toBe(0);
    const m = /no training steps \(--steps 0\).*validation loss ([0-9.]+) nats\/token/.exec(
      b.stdout + b.stderr,
    );
    expect(m, b.stdout + b.stderr).not.toBeNull();
    expect(Number(m?.[1])).toBeCloseTo(doc.bestValLoss, 5);
  });
});

it.runIf(haveData('glue/SST-2/train_10pct.tsv'))(
  'a tiny RoBERTa classifier trains on SST-2 and reports dev accuracy',
  async () => {
    const rows = async (file: string, n: number) =>
      (await readFile(join(DATA_DIR, 'glue/SST-2', file), 'utf8'))
        .split('\n')
        .slice(0, n + 1)
        .join('\n');
    const train = join(tmp, 'sst2-train.tsv');
    const dev = join(tmp, 'sst2-dev.tsv');
    await writeFile(train, `${await rows('train_10pct.tsv', 48)}\n`);
    await writeFile(dev, `${await rows('dev.tsv', 100)}\n`);
    const config = join(tmp, 'sst2.json');
    // The config file gives most options; --steps on the command line overrides its value.
    await writeFile(
      config,
      JSON.stringify({
        format: 'glue-sst2',
        method: 'share-a',
        rank: 4,
        alpha: 8,
        targets: ['query', 'value'],
        lr: 1e-2,
        schedule: 'constant',
        'warmup-steps': 4,
        steps: 999,
        'batch-size': 16,
        'max-length': 64,
        validation: 8,
      }),
    );
    const out = join(tmp, 'sst2-out');
    const r = runCli([
      'train',
      '--config',
      config,
      '--model',
      roberta(),
      '--data',
      train,
      '--eval-data',
      dev,
      '--steps',
      '36',
      '--out',
      out,
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const acc = doc.evalData.accuracy;
    console.log(
      `SST-2 (tiny random RoBERTa, 36 steps on 40 sentences): dev accuracy ${acc} on ${doc.evalData.examples} examples`,
    );
    expect(doc.steps).toBe(36);
    expect(acc).toBeGreaterThanOrEqual(0);
    expect(acc).toBeLessThanOrEqual(1);
    expect(doc.evalData.examples).toBe(100);
    const losses = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.type === 'step')
      .map((l) => l.loss);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-6))).toBeLessThan(mean(losses.slice(0, 6)));
    // The classifier head trains in full and is saved as PEFT modules_to_save.
    const adapterConfig = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(adapterConfig.modules_to_save).toEqual(['classifier']);
    expect(adapterConfig.task_type).toBe('SEQ_CLS');
  },
);
