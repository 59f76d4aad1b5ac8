import { METHODS } from '@sharelora/adapters';
import * as core from '@sharelora/core/node';
import { TRAIN_SHAPES } from '@sharelora/train';
import { intFlag, parseFlags } from '../args.js';
import { UsageError } from '../cli-error.js';
import { progress, progressDone } from '../progress.js';
import { plural } from '../units.js';
import { benchGenerate } from './bench-generate.js';
import { benchTrain } from './bench-train.js';
import { profileJson, saveTrace } from './profile-output.js';

export const benchHelp = `Usage: sharelora bench [--json] [--reps N] [--rounds N] [--quick] [--profile [--profile-out FILE]]
       sharelora bench --train SHAPE[,SHAPE...] [--method M] [--rank R] [--steps N] [--quantize F]
                       [--batch-size B] [--seq-length T] [--json] [--profile [--profile-out FILE]]
       sharelora bench --generate --model DIR [--prompt TEXT] [--new-tokens N] [--batch-size B]
                       [--runs N] [--engine auto|decoder|forward] [--json]

Measures on the current WebGPU adapter: matmul GFLOP/s for a square 1024³ product and for LoRA-shaped
products (X·Aᵀ, the A gradient dHᵀ·X and the input gradient dH·A at ranks 8, 16, 64), elementwise
GB/s, and the forward+backward time and peak memory of one pre-LN transformer block.
Each time is the median over --rounds batches of the mean over --reps back-to-back repetitions, so a
burst of other load on the machine moves it less than a single batch.

With --train, times real fine-tuning steps instead: random weights of a model shape, an adapter,
random token ids; forward, loss, backward, AdamW and the loss read back, after one warm-up step.
Prints ms/step, tokens/s, dispatches/step and peak tensor memory. Shapes: ${Object.keys(TRAIN_SHAPES).join(', ')}.

With --generate, times greedy generation on the model in DIR (no EOS): prefill tokens/s (the prompt
fed through the engine) and decode tokens/s (new tokens), each from the difference of two runs so
that startup cancels out, best of --runs.

Options:
  --json              print one JSON document on stdout
  --reps N            timed repetitions per batch (default 5)
  --rounds N          timed batches per measurement; the median is reported (default 3)
  --quick             smaller problems (for smoke tests)
  --train SHAPES      training-step benchmark of these shapes (comma-separated)
  --method M          adapter for --train: ${METHODS.join(', ')} (default lora)
  --rank R            adapter rank for --train (default 8; alpha = 2R)
  --steps N           timed steps for --train (default 3)
  --quantize F        --train over a base whose block weights are kept quantized (QLoRA): nf4,
                      fp4 or int8 (default: the shape's own weights, f32 or bf16)
  --generate          generation benchmark (needs --model DIR)
  --model DIR         the model for --generate (a directory written by import, init or train)
  --prompt TEXT       prompt for --generate (default: a story opening of about 40 words)
  --new-tokens N      generated tokens per row for --generate (default 256)
  --runs N            runs per measurement for --generate; the best is kept (default 3)
  --engine E          generateTokens engine for --generate: auto, decoder or forward (default auto)
  --batch-size B      override the shape's batch size (--train); rows decoded together (--generate)
  --seq-length T      override the shape's sequence length
  --profile           print where the time goes, per kernel kind: dispatches, GPU time (timestamp
                      queries) and encoding time; copies between dispatches; submits, waits and
                      readbacks (the training steps with --train, else the transformer-block step)
  --profile-out FILE  also write a Chrome trace (opens in Perfetto or chrome://tracing)
  -h, --help          show this help`;

export interface MatmulCase {
  name: string;
  shapeA: number[];
  shapeB: number[];
  transA?: boolean;
  transB?: boolean;
  flops: number;
}

/** Seconds per call: the median over `rounds` batches of `reps` calls each, after one warm-up call. */
async function timeIt(reps: number, rounds: number, fn: () => void): Promise<number> {
  const dev = core.getDevice();
  fn();
  await dev.sync();
  const batches: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    await dev.sync();
    batches.push((performance.now() - t0) / 1000 / reps);
  }
  batches.sort((x, y) => x - y);
  const mid = batches.length >> 1;
  return batches.length % 2 ? batches[mid] : (batches[mid - 1] + batches[mid]) / 2;
}

function randomTensor(shape: number[], seed: number): core.Tensor {
  return core.randn(shape, { seed, std: 0.5 });
}

/** Seconds per call of one matmul case on random operands (the device must be initialised). */
export async function timeMatmul(c: MatmulCase, reps: number, rounds: number): Promise<number> {
  const a = randomTensor(c.shapeA, 1);
  const b = randomTensor(c.shapeB, 2);
  try {
    return await timeIt(reps, rounds, () =>
      core.tidy(() => void core.matmul(a, b, { transA: c.transA, transB: c.transB })),
    );
  } finally {
    a.dispose();
    b.dispose();
  }
}

function matmulCases(quick: boolean): MatmulCase[] {
  const S = quick ? 256 : 1024;
  const T = quick ? 512 : 4096;
  const D = quick ? 256 : 768;
  const cases: MatmulCase[] = [
    { name: `square ${S}³`, shapeA: [S, S], shapeB: [S, S], flops: 2 * S * S * S },
    {
      name: `square ${S}³ (B transposed)`,
      shapeA: [S, S],
      shapeB: [S, S],
      transB: true,
      flops: 2 * S * S * S,
    },
  ];
  for (const r of quick ? [8] : [8, 16, 64]) {
    cases.push(
      {
        name: `LoRA X·Aᵀ ${T}x${D} r=${r}`,
        shapeA: [T, D],
        shapeB: [r, D],
        transB: true,
        flops: 2 * T * D * r,
      },
      {
        name: `LoRA dA=dHᵀ·X r=${r}, K=${T}`,
        shapeA: [T, r],
        shapeB: [T, D],
        transA: true,
        flops: 2 * T * D * r,
      },
      { name: `LoRA dX=dH·A ${T}x${D} r=${r}`, shapeA: [T, r], shapeB: [r, D], flops: 2 * T * D * r },
    );
  }
  return cases;
}

/** One pre-LN transformer block (attention + GELU MLP) with all weights trainable; returns a scalar loss. */
function blockStep(x: core.Tensor, w: Record<string, core.Tensor>, heads: number): core.Tensor {
  const [B, T, D] = x.shape;
  const hd = D / heads;
  const h1 = core.layerNorm(x, w.ln1g, w.ln1b);
  const qkv = core.add(core.matmul(h1, w.qkv, { transB: true }), w.qkvb);
  const split = (i: number) =>
    core.transpose(core.reshape(core.sliceAxis(qkv, 2, i * D, (i + 1) * D), [B, T, heads, hd]), 1, 2);
  const att = core.scaledDotProductAttention(split(0), split(1), split(2), { causal: true });
  const merged = core.reshape(core.transpose(att, 1, 2), [B, T, D]);
  const x2 = core.add(x, core.matmul(merged, w.proj, { transB: true }));
  const h2 = core.layerNorm(x2, w.ln2g, w.ln2b);
  const mlp = core.matmul(core.gelu(core.matmul(h2, w.fc1, { transB: true })), w.fc2, { transB: true });
  const out = core.add(x2, mlp);
  return core.mean(core.mul(out, out));
}

export async function bench(argv: string[]): Promise<number> {
  const { values } = parseFlags('bench', argv, {
    json: { type: 'boolean' },
    reps: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean' },
    train: { type: 'string' },
    method: { type: 'string' },
    rank: { type: 'string' },
    steps: { type: 'string' },
    quantize: { type: 'string' },
    'batch-size': { type: 'string' },
    'seq-length': { type: 'string' },
    profile: { type: 'boolean' },
    'profile-out': { type: 'string' },
    generate: { type: 'boolean' },
    model: { type: 'string' },
    prompt: { type: 'string' },
    'new-tokens': { type: 'string' },
    runs: { type: 'string' },
    engine: { type: 'string' },
  });
  if (values.help) {
    console.log(benchHelp);
    return 0;
  }
  if (values['profile-out'] && !values.profile) throw new UsageError('--profile-out needs --profile');
  const generateOnly = ['model', 'prompt', 'new-tokens', 'runs', 'engine'] as const;
  if (values.generate) {
    if (values.train !== undefined) throw new UsageError('--generate and --train are separate benchmarks');
    if (values.profile) throw new UsageError('--profile is not available with --generate');
    return benchGenerate({
      model: values.model,
      prompt: values.prompt,
      newTokens: values['new-tokens'],
      batchSize: values['batch-size'],
      runs: values.runs,
      engine: values.engine,
      json: values.json,
    });
  }
  for (const f of generateOnly) {
    if (values[f] !== undefined) throw new UsageError(`--${f} needs --generate`);
  }
  if (values.train !== undefined) {
    return benchTrain({
      train: values.train,
      method: values.method,
      rank: values.rank,
      steps: values.steps,
      quantize: values.quantize,
      batchSize: values['batch-size'],
      seqLength: values['seq-length'],
      json: values.json,
      profile: values.profile,
      profileOut: values['profile-out'],
    });
  }
  for (const f of ['method', 'rank', 'steps', 'quantize', 'batch-size', 'seq-length'] as const) {
    if (values[f] !== undefined) throw new UsageError(`--${f} needs --train`);
  }
  const reps = intFlag('reps', values.reps, 5);
  const rounds = intFlag('rounds', values.rounds, 3);
  const quick = values.quick ?? false;
  const device = await core.init();
  try {
    const matmuls: Array<{ name: string; ms: number; gflops: number }> = [];
    const cases = matmulCases(quick);
    // The matmul cases, then elementwise, then the transformer block.
    const stages = cases.length + 2;
    for (const c of cases) {
      progress('bench', matmuls.length, stages, { unit: 'cases', detail: `matmul ${c.name}` });
      const s = await timeMatmul(c, reps, rounds);
      matmuls.push({ name: c.name, ms: s * 1e3, gflops: c.flops / s / 1e9 });
    }
    progress('bench', stages - 2, stages, { unit: 'cases', detail: 'elementwise' });
    const n = quick ? 1 << 20 : 1 << 24;
    const ea = randomTensor([n], 3);
    const eb = randomTensor([n], 4);
    const es = await timeIt(reps, rounds, () => core.tidy(() => void core.add(ea, eb)));
    const elementwise = { name: `add, ${n} floats`, ms: es * 1e3, gbPerS: (3 * 4 * n) / es / 1e9 };
    ea.dispose();
    eb.dispose();

    progress('bench', stages - 1, stages, { unit: 'cases', detail: 'transformer block' });
    const [B, T, D, H] = quick ? [2, 32, 64, 4] : [4, 128, 256, 4];
    const rng = new core.Rng(7);
    const shapes: Record<string, number[]> = {
      ln1g: [D],
      ln1b: [D],
      qkv: [3 * D, D],
      qkvb: [3 * D],
      proj: [D, D],
      ln2g: [D],
      ln2b: [D],
      fc1: [4 * D, D],
      fc2: [D, 4 * D],
    };
    const w: Record<string, core.Tensor> = {};
    for (const [k, s] of Object.entries(shapes)) {
      w[k] = core.keep(
        core.randn(s, {
          rng,
          std: k.startsWith('ln') && k.endsWith('g') ? 0 : 0.02,
          mean: k.endsWith('g') ? 1 : 0,
        }),
      );
      w[k].requiresGrad = true;
    }
    const x = randomTensor([B, T, D], 8);
    device.memory.resetPeak();
    if (values.profile) device.startProfile();
    const bs = await timeIt(reps, rounds, () =>
      core.tidy(() => {
        core.backward(blockStep(x, w, H));
        for (const t of Object.values(w)) {
          t.grad?.dispose();
          t.grad = null;
        }
      }),
    );
    const blockProfile = values.profile ? await device.stopProfile() : undefined;
    // timeIt runs a warm-up plus rounds × reps steps.
    const profiledSteps = 1 + rounds * reps;
    if (blockProfile) await saveTrace(values['profile-out'], blockProfile);
    const mem = device.memoryReport();
    const block = {
      config: { batch: B, seq: T, dModel: D, heads: H },
      msPerStep: bs * 1e3,
      tokensPerS: (B * T) / bs,
      peakBytes: mem.peak,
    };
    x.dispose();
    for (const t of Object.values(w)) t.dispose();
    progressDone();

    const square = matmuls[0];
    const result = {
      adapter: device.info,
      matmul: matmuls.map((m) => ({ ...m, timePerFlopVsSquare: square.gflops / m.gflops })),
      elementwise,
      transformerBlock: block,
      ...(blockProfile ? { profile: { ...profileJson(blockProfile), steps: profiledSteps } } : {}),
    };
    if (values.json) {
      console.log(JSON.stringify(result, null, 2));
    } else {
      const i = device.info;
      console.log(
        `adapter: ${i.description || i.device} (vendor ${i.vendor || '?'}, architecture ${i.architecture || '?'})`,
      );
      for (const m of result.matmul) {
        console.log(
          `matmul ${m.name.padEnd(36)} ${m.ms.toFixed(2).padStart(9)} ms ${m.gflops.toFixed(2).padStart(8)} GFLOP/s  (${m.timePerFlopVsSquare.toFixed(2)}x square time/FLOP)`,
        );
      }
      console.log(
        `elementwise ${elementwise.name.padEnd(31)} ${elementwise.ms.toFixed(2).padStart(9)} ms ${elementwise.gbPerS.toFixed(2).padStart(8)} GB/s`,
      );
      console.log(
        `transformer block B=${B} T=${T} d=${D} h=${H}: fwd+bwd ${block.msPerStep.toFixed(1)} ms/step, ${block.tokensPerS.toFixed(0)} tokens/s, peak ${(mem.peak.total / 2 ** 20).toFixed(1)} MiB`,
      );
      if (blockProfile) {
        console.log(
          `\nprofile of the transformer-block step, per step over ${plural(profiledSteps, 'step')}:`,
        );
        console.log(core.formatProfile(blockProfile, profiledSteps));
      }
    }
    return 0;
  } finally {
    shutdown();
  }
}

const shutdown = core.shutdown;
