import { backward } from './autograd.js';
import { textureMatmulAvailable } from './kernels/matmul/run-texture.js';
import { add, exp, gelu, layerNorm, matmul, mul, softmax, sum, tensor } from './ops/index.js';
import { getDevice, tidy } from './runtime.js';
import type { Tensor } from './tensor.js';

/** One kernel's result in {@link selfCheck}. */
export interface SelfCheckResult {
  /** The kernel checked, e.g. 'matmul' or 'softmax'. */
  op: string;
  /** max |gpu - cpu| / max |cpu| (Infinity when the GPU gave NaN) */
  relError: number;
  /** relError is within selfCheck's tolerance (default 1e-4). */
  ok: boolean;
}

/** Small deterministic pseudo-random values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function relError(gpu: ArrayLike<number>, cpu: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < cpu.length; i++) {
    const d = Math.abs(gpu[i] - cpu[i]);
    num = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(num, d);
    den = Math.max(den, Math.abs(cpu[i]));
  }
  return num / Math.max(den, 1e-30);
}

function cpuMatmul(
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  transB: boolean,
): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * (transB ? b[n * K + k] : b[k * N + n]);
      c[m * N + n] = s;
    }
  return c;
}

/**
 * Runs the main kernels on this adapter against straightforward float64 CPU loops (WebGPU
 * implementations differ; this is what `sharelora doctor` reports). Sizes avoid tile multiples.
 */
export async function selfCheck(tolerance = 1e-4): Promise<SelfCheckResult[]> {
  getDevice();
  const results: SelfCheckResult[] = [];
  const check = async (op: string, run: () => Tensor, cpu: ArrayLike<number>) => {
    const t = tidy(run);
    const err = relError(await t.data(), cpu);
    t.dispose();
    results.push({ op, relError: err, ok: err <= tolerance });
  };
  const [M, K, N] = [67, 45, 33];
  const a = values(M * K, 1);
  const b = values(K * N, 2);
  await check('matmul', () => matmul(tensor(a, [M, K]), tensor(b, [K, N])), cpuMatmul(a, b, M, K, N, false));
  await check(
    'matmul (B transposed)',
    () => matmul(tensor(a, [M, K]), tensor(b, [N, K]), { transB: true }),
    cpuMatmul(a, b, M, K, N, true),
  );
  if (textureMatmulAvailable()) {
    // Large products on CPU adapters pack their operands into textures: check that path too.
    const dev = getDevice();
    const mode = dev.matmulTextures;
    dev.matmulTextures = 'always';
    try {
      await check(
        'matmul (packed textures)',
        () => matmul(tensor(a, [M, K]), tensor(b, [N, K]), { transB: true }),
        cpuMatmul(a, b, M, K, N, true),
      );
    } finally {
      dev.matmulTextures = mode;
    }
  }
  const x = values(5 * 77, 3);
  await check(
    'add (broadcast)',
    () => add(tensor(x, [5, 77]), tensor(x.subarray(0, 77), [77])),
    Array.from(x, (v, i) => v + x[i % 77]),
  );
  await check(
    'gelu',
    () => gelu(tensor(x, [5, 77])),
    Array.from(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))),
  );
  const sm: number[] = [];
  for (let r = 0; r < 5; r++) {
    const row = Array.from(x.subarray(r * 77, r * 77 + 77));
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    for (const v of row) sm.push(Math.exp(v - m) / z);
  }
  await check('softmax', () => softmax(tensor(x, [5, 77])), sm);
  const ln: number[] = [];
  for (let r = 0; r < 5; r++) {
    const row = Array.from(x.subarray(r * 77, r * 77 + 77));
    const mu = row.reduce((s, v) => s + v, 0) / 77;
    const vr = row.reduce((s, v) => s + (v - mu) ** 2, 0) / 77;
    for (const v of row) ln.push((v - mu) / Math.sqrt(vr + 1e-5));
  }
  await check(
    'layerNorm',
    () => layerNorm(tensor(x, [5, 77]), tensor(new Float32Array(77).fill(1), [77]), null),
    ln,
  );
  // Backward: d/dx sum(exp(x) * x) = exp(x) * (1 + x)
  await check(
    'autograd (exp·x)',
    () => {
      const xt = tensor(x, [5, 77]);
      xt.requiresGrad = true;
      backward(sum(mul(exp(xt), xt)));
      const g = xt.grad as Tensor;
      xt.grad = null;
      return g;
    },
    Array.from(x, (v) => Math.exp(v) * (1 + v)),
  );
  return results;
}
