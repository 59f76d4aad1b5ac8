/**
 * Llama-3.2-1B in BF16 on whatever adapter is present (lavapipe on a CPU): writes a randomly
 * initialised checkpoint with 1B's shapes (embedding 128256×2048, tied) to a temporary directory in
 * shards, loads it with its weights kept in bf16 (loadModel's default for frozen models), runs a
 * forward pass on a few tokens and prints checkpoint size, peak RSS, GPU memory by category and
 * timings, then decodes greedily from those tokens (prefill, decode tokens/s and the share of the
 * machine's memory bandwidth that reading every weight once per token takes). On lavapipe GPU
 * buffers live in process memory, so peak RSS / checkpoint size shows what the whole load costs;
 * with f32 weights it could not go below 2. Not run in CI (~2.5 GB of disk).
 *
 * Run: pnpm --filter @sharelora/models bench:1b [--weight-dtype=f32|bf16|auto]   (f32: the comparison)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  type FloatDType,
  f32ToBf16Bits,
  getDevice,
  init,
  noGrad,
  Rng,
  shutdown,
  tensor,
} from '@sharelora/core/node';
import { generateTokens } from '../src/generate/generate.js';
import { type PlannedTensor, writeJson, writeWeights } from '../src/import/hf-llama.js';
import type { LoadProgress } from '../src/load/checkpoint.js';
import { loadModel } from '../src/load/load.js';
import { LLAMA_3_2_1B_CONFIG } from '../src/presets/shapes.js';

const CONFIG = LLAMA_3_2_1B_CONFIG;
/** New tokens of the decode measurement. */
const DECODE_TOKENS = 16;
const TOKENS = [128000, 791, 4062, 14198, 39935, 35308, 927, 279];
/** Shard size: the writer holds one shard in memory (the embedding alone is 525 MB). */
const SHARD_BYTES = 600e6;

const gb = (bytes: number) => (bytes / 1e9).toFixed(2);

/** A bar redrawn in place on a terminal; a line per 10% otherwise (logs, CI). */
function progressBar(label: string) {
  const tty = process.stderr.isTTY;
  let lastTenth = -1;
  return {
    update(done: number, total: number, detail = '') {
      const frac = total > 0 ? done / total : 1;
      const pct = Math.floor(100 * frac);
      const line = `${label} ${pct}% (${gb(done)}/${gb(total)} GB)`;
      if (tty) {
        const bar = '#'.repeat(Math.round(30 * frac)).padEnd(30, '.');
        const text = `${label} [${bar}] ${line.slice(label.length + 1)} ${detail}`;
        process.stderr.write(`\r\x1b[K${text.slice(0, (process.stderr.columns || 80) - 1)}`);
      } else if (Math.floor(pct / 10) > lastTenth) {
        lastTenth = Math.floor(pct / 10);
        process.stderr.write(`${line}\n`);
      }
    },
    end() {
      if (tty) process.stderr.write('\n');
    },
  };
}

/** HF tensor names and shapes of the checkpoint, in the order transformers writes them. */
function tensorShapes(): Array<[string, number[]]> {
  const { hidden_size: C, intermediate_size: I, num_attention_heads: H, num_key_value_heads: Hkv } = CONFIG;
  const D = CONFIG.head_dim;
  const out: Array<[string, number[]]> = [['model.embed_tokens.weight', [CONFIG.vocab_size, C]]];
  for (let i = 0; i < CONFIG.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.input_layernorm.weight`, [C]],
      [`${p}.self_attn.q_proj.weight`, [H * D, C]],
      [`${p}.self_attn.k_proj.weight`, [Hkv * D, C]],
      [`${p}.self_attn.v_proj.weight`, [Hkv * D, C]],
      [`${p}.self_attn.o_proj.weight`, [C, H * D]],
      [`${p}.post_attention_layernorm.weight`, [C]],
      [`${p}.mlp.gate_proj.weight`, [I, C]],
      [`${p}.mlp.up_proj.weight`, [I, C]],
      [`${p}.mlp.down_proj.weight`, [C, I]],
    );
  }
  out.push(['model.norm.weight', [C]]);
  return out;
}

/**
 * N(0, 0.02²) BF16 bits, seeded per tensor by its name. Each value is picked uniformly from 65536
 * normal samples (so the distribution is their empirical one): drawing 1.2 billion Box–Muller
 * normals with core's generator would take minutes, this takes seconds. Norm scales are 1, as
 * transformers initialises them.
 */
function randomBf16(name: string, shape: number[]): Uint16Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint16Array(n);
  if (shape.length === 1) return out.fill(f32ToBf16Bits(1));
  const rng = new Rng(0).fork(name);
  const table = Uint16Array.from({ length: 65536 }, () => f32ToBf16Bits(0.02 * rng.normal()));
  let s = rng.nextU32() | 1;
  for (let i = 0; i < n; i += 2) {
    // xorshift32: one 32-bit draw gives two table indices.
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = table[s & 0xffff];
    if (i + 1 < n) out[i + 1] = table[s >>> 16];
  }
  return out;
}

/** Child process: writes the checkpoint, then reports its own peak RSS on stdout. */
async function writeCheckpoint(dir: string): Promise<void> {
  const shapes = tensorShapes();
  const planned: PlannedTensor[] = shapes.map(([name, shape]) => ({
    name,
    dtype: 'BF16',
    shape,
    load: async () => randomBf16(name, shape),
  }));
  const bar = progressBar('writing');
  const total = shapes.reduce((s, [, shape]) => s + 2 * shape.reduce((a, b) => a * b, 1), 0);
  let done = 0;
  const bytesOf = new Map(shapes.map(([n, s]) => [n, 2 * s.reduce((a, b) => a * b, 1)]));
  await writeWeights(dir, planned, {
    maxShardBytes: SHARD_BYTES,
    onProgress: (p) => {
      done += bytesOf.get(p.tensor) ?? 0;
      bar.update(done, total);
    },
  });
  bar.end();
  await writeJson(join(dir, 'config.json'), CONFIG);
  process.stdout.write(`${JSON.stringify({ peakRss: process.resourceUsage().maxRSS * 1024 })}\n`);
}

/**
 * Memory read bandwidth (bytes/s) with one reader per core: each worker compares two 256 MB
 * buffers (memcmp streams both) a few times; the best round counts.
 */
async function readBandwidth(threads: number): Promise<number> {
  const code = `const { parentPort } = require('node:worker_threads');
const a = Buffer.alloc(256e6, 1), b = Buffer.alloc(256e6, 1);
parentPort.on('message', () => { Buffer.compare(a, b); parentPort.postMessage(0); });
parentPort.postMessage(0);`;
  const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true }));
  const next = (w: Worker) => new Promise((resolve) => w.once('message', resolve));
  await Promise.all(workers.map(next));
  let best = 0;
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    await Promise.all(workers.map((w) => (w.postMessage(0), next(w))));
    best = Math.max(best, (threads * 512e6) / ((performance.now() - t) / 1000));
  }
  await Promise.all(workers.map((w) => w.terminate()));
  return best;
}

function runWriter(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--write', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out).peakRss)
        : reject(new Error(`checkpoint writer exited with ${code}`)),
    );
  });
}

async function main(weightDtype: FloatDType | 'auto'): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sharelora-llama-1b-'));
  try {
    let t = performance.now();
    // In a child process, so that this process's peak RSS is the load and forward pass alone.
    const writerRss = await runWriter(dir);
    const writeSeconds = (performance.now() - t) / 1000;
    const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors'));
    let checkpointBytes = 0;
    for (const f of files) checkpointBytes += (await stat(join(dir, f))).size;

    await init();
    const bar = progressBar('loading');
    t = performance.now();
    const { model: loaded } = await loadModel(dir, {
      weightDtype,
      onProgress: (p: LoadProgress) => bar.update(p.loadedBytes, p.totalBytes, p.tensor),
    });
    await getDevice().sync();
    bar.end();
    if (loaded.task !== 'causal-lm') throw new Error(`${loaded.hfClass}: expected a causal LM`);
    const model = loaded;
    const loadSeconds = (performance.now() - t) / 1000;
    const rssAfterLoad = process.memoryUsage().rss;

    // Twice: the first pass also compiles the kernels.
    const forward = async () => {
      const start = performance.now();
      const logits = noGrad(() => model.forward(tensor(Int32Array.from(TOKENS), [1, TOKENS.length], 'i32')));
      const values = (await logits.data()) as Float32Array;
      logits.dispose();
      return { values, seconds: (performance.now() - start) / 1000 };
    };
    const first = await forward();
    const { values, seconds } = await forward();
    if (!values.every(Number.isFinite)) throw new Error('the forward pass produced non-finite logits');
    const last = values.subarray(values.length - CONFIG.vocab_size);
    const top = last.reduce((best, v, i) => (v > last[best] ? i : best), 0);

    // Greedy decoding from the same tokens: the first token's time is the prefill.
    const stamps: number[] = [];
    const start = performance.now();
    await generateTokens(model, [TOKENS], {
      maxNewTokens: DECODE_TOKENS,
      eosIds: [],
      onToken: () => {
        stamps.push(performance.now());
        return undefined;
      },
    });
    const prefillSeconds = (stamps[0] - start) / 1000;
    const decodeRate = (stamps.length - 1) / ((stamps[stamps.length - 1] - stamps[0]) / 1000);

    const peakRss = process.resourceUsage().maxRSS * 1024;
    // After peak RSS is taken: the probe's buffers would count in it.
    const bandwidth = await readBandwidth(cpus().length);
    const mem = getDevice().memoryReport();
    const cats = (r: Record<string, number>) =>
      Object.entries(r)
        .filter(([k, v]) => k !== 'total' && v > 0)
        .map(([k, v]) => `${k} ${gb(v)} GB`)
        .join(', ');
    const rows: Array<[string, string]> = [
      [
        'adapter',
        `${getDevice().info.description || getDevice().info.device} (${getDevice().info.architecture})`,
      ],
      ['checkpoint', `${checkpointBytes} bytes (${gb(checkpointBytes)} GB BF16, ${files.length} shards)`],
      ['write', `${writeSeconds.toFixed(1)} s (writer peak RSS ${gb(writerRss)} GB, separate process)`],
      ['load', `${loadSeconds.toFixed(1)} s (weightDtype ${weightDtype})`],
      [
        'forward',
        `${first.seconds.toFixed(1)} s first, ${seconds.toFixed(1)} s second (1×${TOKENS.length} tokens; argmax of last position ${top})`,
      ],
      [
        'generate',
        `prefill ${prefillSeconds.toFixed(2)} s, decode ${decodeRate.toFixed(2)} tokens/s (${DECODE_TOKENS} greedy tokens)`,
      ],
      [
        'weight traffic',
        `${gb(checkpointBytes * decodeRate)} GB/s = ${((100 * checkpointBytes * decodeRate) / bandwidth).toFixed(0)}% of ${gb(bandwidth)} GB/s read bandwidth (memcmp, ${cpus().length} threads)`,
      ],
      ['RSS after load', `${gb(rssAfterLoad)} GB`],
      ['peak RSS', `${gb(peakRss)} GB`],
      ['peak RSS / checkpoint', (peakRss / checkpointBytes).toFixed(2)],
      ['GPU live', `${gb(mem.live.total)} GB: ${cats(mem.live)}`],
      ['GPU peak', `${gb(mem.peak.total)} GB: ${cats(mem.peak)}`],
      [
        'GPU pool',
        `${gb(mem.pool.allocatedBytes)} GB allocated, ${gb(mem.pool.freeBytes)} GB free for reuse`,
      ],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(22)} ${v}`);
    model.dispose();
  } finally {
    shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--write') await writeCheckpoint(process.argv[3]);
else {
  const arg =
    process.argv.find((a) => a.startsWith('--weight-dtype='))?.slice('--weight-dtype='.length) ?? 'auto';
  if (!['f32', 'f16', 'bf16', 'auto'].includes(arg))
    throw new Error(`--weight-dtype=${arg}: use f32, f16, bf16 or auto`);
  await main(arg as FloatDType | 'auto');
}
