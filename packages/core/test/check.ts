import { expect } from 'vitest';
import * as core from '../src/node.js';
import { assertClose, vjpFiniteDiff } from './reference/gradcheck.js';
import { type F64, Rng, randn, roundToF32 } from './reference/ndarray.js';

export const FWD_TOL = 1e-4;
export const BWD_TOL = 1e-4;

export function upload(x: F64, requiresGrad = true): core.Tensor {
  const t = core.tensor(x.toFloat32(), x.shape);
  t.requiresGrad = requiresGrad;
  return t;
}

/**
 * Runs `gpu` on float32-rounded `inputs` and checks the output against the float64 reference `ref`,
 * then checks every input's gradient of sum(out * upstream) against central finite differences of `ref`.
 */
export async function checkOp(
  label: string,
  gpu: (xs: core.Tensor[]) => core.Tensor,
  ref: (xs: F64[]) => F64,
  inputs: F64[],
  opts: {
    seed?: number;
    fwdTol?: number;
    bwdTol?: number;
    grad?: boolean;
    /** Analytic float64 reference gradients (for large inputs where finite differences are too slow). */
    refGrad?: (xs: F64[], upstream: F64) => F64[];
  } = {},
): Promise<void> {
  const xs = inputs.map(roundToF32);
  const expected = ref(xs);
  const ts = xs.map((x) => upload(x, opts.grad !== false));
  const out = gpu(ts);
  expect(out.shape, `${label}: shape`).toEqual(expected.shape);
  assertClose(await out.data(), expected, opts.fwdTol ?? FWD_TOL, `${label} forward`);
  if (opts.grad === false) {
    for (const t of [out, ...ts]) t.dispose();
    return;
  }
  const up = roundToF32(randn(expected.shape, new Rng(opts.seed ?? 99)));
  const upT = upload(up, false);
  core.backward(out, upT);
  const refGrads = opts.refGrad ? opts.refGrad(xs, up) : vjpFiniteDiff(ref, xs, up);
  for (let i = 0; i < ts.length; i++) {
    const g = ts[i].grad;
    if (!g) throw new Error(`${label}: input ${i} got no gradient`);
    expect(g.shape, `${label}: grad ${i} shape`).toEqual(xs[i].shape);
    assertClose(await g.data(), refGrads[i], opts.bwdTol ?? BWD_TOL, `${label} backward input ${i}`);
  }
  for (const t of [out, upT, ...ts]) t.dispose();
}

/** Random shapes with sizes that are not multiples of common tile sizes. */
export function oddShapes(rng: Rng, rank: number, count: number, maxDim = 9): number[][] {
  const shapes: number[][] = [];
  for (let c = 0; c < count; c++) shapes.push(Array.from({ length: rank }, () => 1 + rng.int(maxDim)));
  return shapes;
}
