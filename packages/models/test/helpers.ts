import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Device, init, noGrad, shutdown, type Tensor, tensor, tidy } from '@sharelora/core/node';
import { afterAll, beforeAll } from 'vitest';
import type { Vec } from './reference/math.js';

/** GPU tests run on a real adapter (lavapipe without a GPU); a missing adapter fails them. */
export function useDevice(): () => Device {
  let dev: Device | null = null;
  beforeAll(async () => {
    dev = await init();
  });
  afterAll(() => shutdown());
  return () => dev as Device;
}

/** A fresh temporary directory per test file, removed afterwards. */
export function useTmp(prefix: string): () => string {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `sharelora-${prefix}-`));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return () => dir;
}

export const ids = (rows: number[][]): Tensor =>
  tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'i32');

/** Runs fn without autograd and returns its result's data. */
export async function run(fn: () => Tensor): Promise<Float32Array> {
  const out = noGrad(() => tidy(fn));
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return data;
}

/**
 * max |gpu - ref| / max |ref| over the rows [b][t] of ref (flattened [B, T, V] on the GPU side) that
 * `use` selects (default all).
 */
export function relErr(
  gpu: Float32Array,
  ref: Vec[][],
  use: (b: number, t: number) => boolean = () => true,
): number {
  let diff = 0;
  let scale = 0;
  const T = ref[0].length;
  const V = ref[0][0].length;
  for (const [b, seq] of ref.entries()) {
    for (const [t, vec] of seq.entries()) {
      if (!use(b, t)) continue;
      for (const [v, r] of vec.entries()) {
        diff = Math.max(diff, Math.abs(gpu[(b * T + t) * V + v] - r));
        scale = Math.max(scale, Math.abs(r));
      }
    }
  }
  return diff / scale;
}

/** Largest relative error each test observed, printed at the end of the file. */
export function errorLog(): (name: string, err: number) => number {
  const seen: Array<[string, number]> = [];
  afterAll(() => {
    for (const [n, e] of seen) console.log(`max relative error ${e.toExponential(2)}  ${n}`);
  });
  return (name, err) => {
    seen.push([name, err]);
    return err;
  };
}
