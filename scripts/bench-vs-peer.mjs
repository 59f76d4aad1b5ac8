#!/usr/bin/env node
/**
 * Runs `sharelora bench` beside its CPU peers on this machine, interleaved, and prints the ratios:
 *  - training steps against PyTorch + transformers + PEFT (the peer script's three rows:
 *    stories260K-shaped LLaMA LoRA and ShareA at 8×256, GPT-2 small LoRA at 4×128);
 *  - the 1024³ fp32 matmul against numpy's sgemm (OpenBLAS);
 *  - with --more, also RoBERTa-base sequence classification at 8×128 and a Llama-3.2-1B-shaped
 *    step at 1×64 (bf16 frozen base), against bench-peer-steps.py beside this script; the Llama
 *    row twice, against PyTorch with a float32 base and with a bfloat16 one (several minutes a
 *    round).
 * Each side's best over --rounds is kept (other load on a shared machine only ever slows a run down).
 * The peers run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, so OpenBLAS picks its fastest
 * kernels for this CPU.
 *
 * Needs a built checkout (pnpm build) and the peer environment: PEER_SITE=<site folder> with
 * Debian's python3-torch (how to build it without PyPI: the peer folder's README).
 *
 *   PEER_SITE=/opt/peer/site PEER_SCRIPT=path/to/peer_torch_step.py node scripts/bench-vs-peer.mjs [--rounds 2] [--more] [--json] [--svg FILE]
 *
 * --svg FILE writes the ratios as a bar chart (the docs' benchmarks page shows one).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuInfo } from './cpu.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    more: { type: 'boolean' },
    json: { type: 'boolean' },
    svg: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const site = process.env.PEER_SITE;
const peerScript = process.env.PEER_SCRIPT ?? join(root, '..', 'shared', 'peer', 'peer_torch_step.py');
const python = process.env.PEER_PYTHON ?? '/usr/bin/python3';
if (!site || !existsSync(site) || !existsSync(peerScript)) {
  console.error(
    'bench-vs-peer: set PEER_SITE to the PyTorch peer site folder (and PEER_SCRIPT to peer_torch_step.py if it is not in ../shared/peer)',
  );
  process.exit(2);
}
const cli = join(root, 'apps', 'cli', 'dist', 'bin.js');
if (!existsSync(cli)) {
  console.error('bench-vs-peer: build first (pnpm build)');
  process.exit(2);
}

const { cpu, isa, cores } = cpuInfo();
const peerEnv = { ...process.env, PYTHONPATH: site };
delete peerEnv.OPENBLAS_CORETYPE;
delete peerEnv.OPENBLAS_L2_SIZE;

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20, cwd: root });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

// Each row: the peer's output line (its ms/step captured), the tokens per step and our shape.
// `script`: the shared peer script ('shared') or bench-peer-steps.py ('steps').
const ROWS = [
  {
    name: 'stories260K LoRA 8×256',
    script: 'shared',
    peer: /LLaMA, LoRA q,v r=8.*?: ([\d.]+) ms\/step/,
    tokens: 8 * 256,
    shape: 'stories260k',
    method: 'lora',
  },
  {
    name: 'stories260K ShareA 8×256',
    script: 'shared',
    peer: /LLaMA, ShareA q,v r=8.*?: ([\d.]+) ms\/step/,
    tokens: 8 * 256,
    shape: 'stories260k',
    method: 'share-a',
  },
  {
    name: 'GPT-2 small LoRA 4×128',
    script: 'shared',
    peer: /GPT-2 small.*?: ([\d.]+) ms\/step/,
    tokens: 4 * 128,
    shape: 'gpt2-small',
    method: 'lora',
  },
  ...(values.more
    ? [
        {
          name: 'RoBERTa-base seq. cls LoRA 8×128',
          script: 'steps',
          peer: /^roberta-base: ([\d.]+) ms\/step/m,
          tokens: 8 * 128,
          shape: 'roberta-base',
          method: 'lora',
        },
        ...['float32', 'bfloat16'].map((dtype) => ({
          name: `Llama-3.2-1B-shaped LoRA 1×64, PyTorch ${dtype}`,
          script: 'steps',
          peer: new RegExp(`^llama-1b ${dtype}: ([\\d.]+) ms/step`, 'm'),
          tokens: 64,
          shape: 'llama-1b',
          method: 'lora',
          steps: 2,
        })),
      ]
    : []),
];
const stepsScript = join(root, 'scripts', 'bench-peer-steps.py');
const best = { peer: {}, ours: {}, oursPeak: {} };
const keep = (side, key, v) => {
  best[side][key] = Math.max(best[side][key] ?? 0, v);
};
const NUMPY = `import numpy as np, time
a = np.random.rand(1024, 1024).astype(np.float32); b = a.copy(); a @ b
t = time.perf_counter()
for _ in range(20): a @ b
print(2 * 1024**3 * 20 / (time.perf_counter() - t) / 1e9)`;

for (let r = 0; r < rounds; r++) {
  process.stderr.write(`round ${r + 1}/${rounds}: PyTorch peer\n`);
  const peerOut = {
    shared: run(python, [peerScript], peerEnv),
    steps: values.more ? run(python, [stepsScript, 'roberta-base', 'llama-1b'], peerEnv) : '',
  };
  for (const row of ROWS) {
    const m = peerOut[row.script].match(row.peer);
    if (!m) throw new Error(`peer output has no row for ${row.name}:\n${peerOut[row.script]}`);
    keep('peer', row.name, (row.tokens * 1000) / Number(m[1]));
  }
  // Rows that differ only in their peer share one run of ours.
  const ours = new Map();
  for (const row of ROWS) {
    const key = `${row.shape}:${row.method}`;
    if (!ours.has(key)) {
      process.stderr.write(`round ${r + 1}/${rounds}: sharelora ${row.name}\n`);
      const steps = String(row.steps ?? 3);
      const args = ['bench', '--train', row.shape, '--method', row.method, '--steps', steps, '--json'];
      ours.set(key, JSON.parse(run('node', [cli, ...args])).train[0]);
    }
    keep('ours', row.name, ours.get(key).tokensPerSec);
    best.oursPeak[row.name] = ours.get(key).peakBytes;
  }
  process.stderr.write(`round ${r + 1}/${rounds}: matmul\n`);
  keep('peer', 'matmul', Number(run(python, ['-c', NUMPY], peerEnv)));
  const k = JSON.parse(run('node', [cli, 'bench', '--json']));
  keep('ours', 'matmul', k.matmul[0].gflops);
}

const rows = [
  ...ROWS.map((row) => ({
    what: `${row.name} (tokens/s)`,
    peer: best.peer[row.name],
    ours: best.ours[row.name],
    oursPeakMiB: best.oursPeak[row.name] / 2 ** 20,
  })),
  { what: '1024³ fp32 matmul (GFLOP/s), vs numpy/OpenBLAS', peer: best.peer.matmul, ours: best.ours.matmul },
].map((x) => ({ ...x, ratio: x.ours / x.peer }));
const result = { cpu, isa, cores, rounds, rows };
if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`${cpu}, ${isa}, ${result.cores} cores; best of ${rounds} interleaved rounds each`);
  for (const x of rows) {
    console.log(
      `${x.what.padEnd(50)} PyTorch/OpenBLAS ${x.peer.toFixed(1).padStart(8)}  sharelora ${x.ours.toFixed(1).padStart(8)}  ratio ${x.ratio.toFixed(2)}x`,
    );
  }
}

if (values.svg)
  writeFileSync(values.svg, barChart(rows, `sharelora ÷ peer on ${cpu} (${isa}, ${result.cores} cores)`));

/** Horizontal bars of each row's ratio, with the parity line at 1×. */
function barChart(rs, title) {
  const w = 720;
  const left = 330;
  const bar = 26;
  const top = 48;
  const h = top + rs.length * (bar + 14) + 30;
  const max = Math.max(1.2, ...rs.map((x) => x.ratio)) * 1.1;
  const x = (v) => left + ((w - left - 20) * v) / max;
  const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const bars = rs
    .map((r, i) => {
      const y = top + i * (bar + 14);
      return `<text x="${left - 8}" y="${y + bar / 2 + 5}" text-anchor="end">${esc(r.what)}</text>
<rect x="${left}" y="${y}" width="${x(r.ratio) - left}" height="${bar}" fill="${r.ratio >= 1 ? '#2b8a3e' : '#1c7ed6'}"/>
<text x="${x(r.ratio) + 6}" y="${y + bar / 2 + 5}">${r.ratio.toFixed(2)}×</text>`;
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="${w / 2}" y="22" text-anchor="middle" font-weight="bold">${esc(title)}</text>
${bars}
<line x1="${x(1)}" y1="${top - 8}" x2="${x(1)}" y2="${h - 24}" stroke="#c92a2a" stroke-dasharray="4 3"/>
<text x="${x(1)}" y="${h - 8}" text-anchor="middle" fill="#c92a2a">parity (1×)</text>
</svg>
`;
}
