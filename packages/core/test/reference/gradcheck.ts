/**
 * Finite-difference reference gradients and comparison helpers.
 */

import { F64, unravelIndex } from './ndarray.js';

type Numeric = ArrayLike<number> | F64;

function values(x: Numeric): ArrayLike<number> {
  return x instanceof F64 ? x.data : x;
}

function shapeOf(x: Numeric): number[] {
  return x instanceof F64 ? x.shape : [x.length];
}

/**
 * Vector-Jacobian product by central differences: for every element of every
 * input, d/dx sum(f(inputs) * upstream). Integer arguments (ids, targets) belong
 * in f's closure, not in `inputs`.
 *
 * The step is h * max(1, |x|) so large entries get a relative step; the divisor
 * is the step actually represented in float64 (xp - xm), not 2h, which removes
 * the representation error of x ± h. With h = 1e-6 the truncation error is
 * O(h^2) and the rounding error ~1e-16 * |F| / h, giving ~1e-8 relative accuracy
 * for smooth f. Inputs are left unchanged.
 */
export function vjpFiniteDiff(f: (inputs: F64[]) => F64, inputs: F64[], upstream: F64, h = 1e-6): F64[] {
  const work = inputs.map((x) => x.clone());
  const objective = (): number => {
    const y = f(work);
    if (y.shape.join() !== upstream.shape.join()) {
      throw new Error(`f output shape [${y.shape}] != upstream shape [${upstream.shape}]`);
    }
    let s = 0;
    for (let i = 0; i < y.size; i++) s += y.data[i] * upstream.data[i];
    return s;
  };
  return work.map((x) => {
    const grad = new F64(x.shape);
    for (let i = 0; i < x.size; i++) {
      const x0 = x.data[i];
      const step = h * Math.max(1, Math.abs(x0));
      const xp = x0 + step;
      const xm = x0 - step;
      x.data[i] = xp;
      const fp = objective();
      x.data[i] = xm;
      const fm = objective();
      x.data[i] = x0;
      grad.data[i] = (fp - fm) / (xp - xm);
    }
    return grad;
  });
}

/** Smallest denominator for relErr, so an all-zero reference compares absolutely. */
const TINY = 1e-30;

/** max|a - b| / max(max|b|, tiny): error relative to the reference's scale. */
export function relErr(a: Numeric, b: Numeric): number {
  const av = values(a);
  const bv = values(b);
  if (av.length !== bv.length) throw new Error(`relErr length mismatch ${av.length} vs ${bv.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < av.length; i++) {
    const d = Math.abs(av[i] - bv[i]);
    num = Number.isNaN(d) || d > num ? d : num;
    den = Math.max(den, Math.abs(bv[i]));
  }
  return num / Math.max(den, TINY);
}

/**
 * Throws unless relErr(actual, expected) <= tol. Any NaN (or an infinity not
 * matched exactly) fails. The message names the label, both shapes, the error and
 * the worst index with both values, which is usually enough to spot a layout bug.
 */
export function assertClose(actual: Numeric, expected: Numeric, tol: number, label: string): void {
  const av = values(actual);
  const ev = values(expected);
  const shapes = `actual shape [${shapeOf(actual)}], expected shape [${shapeOf(expected)}]`;
  if (av.length !== ev.length) {
    throw new Error(`${label}: length ${av.length} != ${ev.length} (${shapes})`);
  }
  let worst = -1;
  let worstDiff = -1;
  let scale = 0;
  for (let i = 0; i < av.length; i++) {
    const same = av[i] === ev[i];
    const d = same ? 0 : Math.abs(av[i] - ev[i]);
    const bad = Number.isNaN(d) ? Infinity : d;
    if (bad > worstDiff) {
      worstDiff = bad;
      worst = i;
    }
    if (Number.isFinite(ev[i])) scale = Math.max(scale, Math.abs(ev[i]));
  }
  const err = worstDiff / Math.max(scale, TINY);
  if (!(err <= tol)) {
    const where = expected instanceof F64 ? ` (index [${unravelIndex(worst, expected.shape)}])` : '';
    throw new Error(
      `${label}: relErr ${err.toExponential(3)} > tol ${tol.toExponential(1)}; ` +
        `worst flat index ${worst}${where}: actual ${av[worst]}, expected ${ev[worst]}; ` +
        `max|expected| ${scale}; ${shapes}`,
    );
  }
}
