/**
 * Float64 building blocks of the CPU reference forwards: plain loops over Float64Array, written from
 * the formulas, sharing nothing with the WGSL kernels. One sequence at a time (vectors per position).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsReader } from '@sharelora/core/node';

export type Vec = Float64Array;

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

/** Every tensor of a model directory (single file or index + shards), as float64. */
export async function readWeights(dir: string): Promise<Map<string, RefTensor>> {
  let files = ['model.safetensors'];
  try {
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    files = [...new Set(Object.values(index.weight_map as Record<string, string>))];
  } catch {
    // no index: a single file
  }
  const out = new Map<string, RefTensor>();
  for (const f of files) {
    const r = await SafetensorsReader.open(join(dir, f));
    for (const k of r.keys())
      out.set(k, { shape: [...r.info(k).shape], data: Float64Array.from(await r.read(k)) });
    await r.close();
  }
  return out;
}

/** y = W·x for W stored [out, in] (nn.Linear), plus bias. */
export function linear(W: RefTensor, x: Vec, b?: RefTensor): Vec {
  const [rows, cols] = W.shape;
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = b ? b.data[r] : 0;
    for (let c = 0; c < cols; c++) s += W.data[r * cols + c] * x[c];
    y[r] = s;
  }
  return y;
}

/** y = x·W for W stored [in, out] (GPT-2's Conv1D), plus bias. */
export function conv1d(W: RefTensor, x: Vec, b?: RefTensor): Vec {
  const [rows, cols] = W.shape;
  const y = new Float64Array(cols);
  for (let c = 0; c < cols; c++) y[c] = b ? b.data[c] : 0;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[c] += x[r] * W.data[r * cols + c];
  return y;
}

export function row(t: RefTensor, i: number): Vec {
  const n = t.shape[1];
  return t.data.slice(i * n, (i + 1) * n);
}

export function addVec(a: Vec, b: Vec): Vec {
  return a.map((v, i) => v + b[i]);
}

export function layerNorm(x: Vec, g: RefTensor, b: RefTensor, eps: number): Vec {
  const mu = x.reduce((s, v) => s + v, 0) / x.length;
  const varc = x.reduce((s, v) => s + (v - mu) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mu) / Math.sqrt(varc + eps)) * g.data[i] + b.data[i]);
}

export function rmsNorm(x: Vec, g: RefTensor, eps: number): Vec {
  const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * g.data[i]);
}

/** erf to ~1e-13: its Maclaurin series below 3, the asymptotic expansion of erfc above. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 80; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  const inv = 1 / (a * a);
  const erfc =
    (Math.exp(-a * a) / (a * Math.sqrt(Math.PI))) * (1 - inv / 2 + (3 * inv * inv) / 4 - (15 * inv ** 3) / 8);
  return Math.sign(x) * (1 - erfc);
}

export const ACT: Record<string, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  relu: (x) => Math.max(x, 0),
  silu: (x) => x / (1 + Math.exp(-x)),
};

export interface AttentionSpec {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  causal: boolean;
  /** Per key position: 1 = attend, 0 = padding. */
  keep?: readonly number[];
}

/**
 * Multi-head attention of one sequence: q[t] holds all query heads, k[j]/v[j] all kv heads; query
 * head h reads kv head floor(h / (heads / kvHeads)). Query t sits at key position t + S - T. A query
 * that may see no key outputs zeros (the value is never used: such rows are padding).
 */
export function attention(q: Vec[], k: Vec[], v: Vec[], s: AttentionSpec): Vec[] {
  const T = q.length;
  const S = k.length;
  const D = s.headDim;
  const group = s.heads / s.kvHeads;
  return q.map((qt, t) => {
    const out = new Float64Array(s.heads * D);
    for (let h = 0; h < s.heads; h++) {
      const kh = Math.floor(h / group);
      const visible: number[] = [];
      for (let j = 0; j < S; j++) {
        if (s.causal && j > t + S - T) continue;
        if (s.keep && !s.keep[j]) continue;
        visible.push(j);
      }
      if (!visible.length) continue;
      const scores = visible.map((j) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qt[h * D + d] * k[j][kh * D + d];
        return dot * s.scale;
      });
      const m = Math.max(...scores);
      const w = scores.map((x) => Math.exp(x - m));
      const z = w.reduce((a, b) => a + b, 0);
      visible.forEach((j, n) => {
        for (let d = 0; d < D; d++) out[h * D + d] += (w[n] / z) * v[j][kh * D + d];
      });
    }
    return out;
  });
}

/** Mean next-token cross entropy of logits [B][T][V] against labels (shifted; -100 ignored). */
export function causalLoss(logits: Vec[][], labels: number[][]): number {
  let sum = 0;
  let n = 0;
  logits.forEach((rowLogits, b) => {
    for (let t = 0; t + 1 < rowLogits.length; t++) {
      const y = labels[b][t + 1];
      if (y === -100) continue;
      const l = rowLogits[t];
      const m = Math.max(...l);
      sum += m + Math.log(l.reduce((s, x) => s + Math.exp(x - m), 0)) - l[y];
      n++;
    }
  });
  return sum / n;
}
