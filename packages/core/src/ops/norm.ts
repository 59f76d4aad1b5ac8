import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { storageDecl } from '../kernels/common.js';
import { rowKernel, rowsPerGroup, rowWidth, runRowKernel } from '../kernels/rows.js';
import { record } from '../record.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';
import { sum } from './reduce.js';
import { sumOnto } from './sum-onto.js';

/**
 * Most elements (vec4s) of a row a lane keeps in registers (see access). On lavapipe (AVX2) keeping
 * 2 made a [2048, 64] norm's forward pass 0.39–0.43 instead of 0.48–0.72 ms; 4 was no clearer
 * ([1024, 128]), 8 and more were slower ([512, 768], 24 per lane: 1.2–1.7 against 0.82–0.84 ms).
 */
const MAX_KEPT = 2;

/**
 * Rows of a multiple of 4 are read and written as vec4: on a CPU adapter (lavapipe) a load at a
 * per-lane address costs about half as much per float as four scalar loads.
 */
function access(n: number) {
  const v4 = n % 4 === 0;
  const len = v4 ? n / 4 : n;
  /**
   * Elements (vec4s) per lane when the lane keeps its share of a row in registers, read once and
   * used by every pass over the row (0: too many, the passes read the row again): lane l holds
   * elements l + k·ROW_WG, k < kept. On a CPU adapter each storage read is a loop over the lanes.
   */
  const perLane = Math.ceil(len / rowWidth());
  const kept = perLane <= MAX_KEPT ? perLane : 0;
  return {
    v4,
    kept,
    /** `f(k, i)` for each kept element k of the lane, i its index in the row, where i is in it. */
    each: (f: (k: number, i: string) => string) =>
      Array.from(
        { length: kept },
        (_, k) => `  { let i = lid + ${k}u * ROW_WG; if (i < ${v4 ? 'P.n / 4u' : 'P.n'}) { ${f(k, 'i')} } }`,
      ).join('\n'),
    T: v4 ? 'vec4<f32>' : 'f32',
    /** Loop over this lane's elements (vec4s) of the row; `base` is the row's first. */
    LOOP: `for (var i = lid; i < ${v4 ? 'P.n / 4u' : 'P.n'}; i += ROW_WG)`,
    base: `row * ${v4 ? 'P.n / 4u' : 'P.n'}`,
    /** Sum of an element's components, and the dot product of two elements. */
    total: (e: string) => (v4 ? `dot(${e}, vec4<f32>(1.0))` : e),
    dot: (a: string, b: string) => (v4 ? `dot(${a}, ${b})` : `${a} * ${b}`),
  };
}

function rowsOf(x: Tensor, gamma: Tensor, op: string): { n: number; rows: number } {
  assertDType(x.dtype, ['f32'], op);
  const n = x.shape[x.rank - 1];
  if (gamma.rank !== 1 || gamma.shape[0] !== n) {
    throw new ShapeError(
      `${op}: weight ${fmt(gamma.shape)} does not match last dim of input ${fmt(x.shape)}`,
    );
  }
  return { n, rows: x.size / n };
}

/** Sums a [rows, n] product over rows: the gamma/beta gradients. */
function columnSum(t: Tensor, n: number): Tensor {
  const flat = t.view([t.size / n, n]);
  const r = sum(flat, 0);
  flat.dispose();
  return r;
}

type Access = ReturnType<typeof access>;

/** The norm's row body reading the row from X on each pass: RMS norm twice, a layer norm three times. */
const normReread = (a: Access, centered: boolean, hasBeta: boolean) => `  let base = ${a.base};
${
  centered
    ? `  var s = 0.0;
  ${a.LOOP} { s += ${a.total('X[base + i]')}; }
  let mu = wg_sum(s, lid) / f32(P.n);`
    : '  let mu = 0.0;'
}
  var v = 0.0;
  ${a.LOOP} { let d = X[base + i] - mu; v += ${a.dot('d', 'd')}; }
  let r = inverseSqrt(wg_sum(v, lid) / f32(P.n) + P.eps);
${hasBeta ? '' : '  // No beta: its binding (gamma again) is read once so that the layout keeps it.\n  let zero = 0.0 * Bt[0];\n'}  ${a.LOOP} { let h = (X[base + i] - mu) * r; XH[base + i] = h; Y[base + i] = h * Gm[i] + ${hasBeta ? 'Bt[i]' : 'zero'}; }
  if (lid == 0u) { RS[row] = r; }`;

/**
 * Declares `${name}0 ..` for the lane's kept elements, set by `read(i)` where the row has element i
 * (zero past its end).
 */
const keep = (a: Access, name: string, read: (i: string) => string) =>
  `${Array.from({ length: a.kept }, (_, k) => `  var ${name}${k} = ${a.T}(0.0);`).join('\n')}
${a.each((k, i) => `${name}${k} = ${read(i)};`)}
`;

/** The lane's share of the weights (and bias), read once per workgroup for the kept-row body. */
const normWeights = (a: Access, hasBeta: boolean) =>
  keep(a, 'gm', (i) => `Gm[${i}]`) +
  // No beta: its binding (gamma again) is read once so that the layout keeps it.
  keep(a, 'bt', (i) => (hasBeta ? `Bt[${i}]` : `${a.T}(0.0 * Bt[0])`));

/**
 * The norm's row body with the lane's share of the row kept in registers: the row is read once,
 * and the sums, in the same order as normReread's, give the same values to the bit.
 */
const normKept = (a: Access, centered: boolean) => `  let base = ${a.base};
${keep(a, 'x', (i) => `X[base + ${i}]`)}${
  centered
    ? `  var s = 0.0;
${a.each((k) => `s += ${a.total(`x${k}`)};`)}
  let mu = wg_sum(s, lid) / f32(P.n);`
    : '  let mu = 0.0;'
}
  var v = 0.0;
${a.each((k) => `let d = x${k} - mu; v += ${a.dot('d', 'd')};`)}
  let r = inverseSqrt(wg_sum(v, lid) / f32(P.n) + P.eps);
${a.each((k, i) => `let h = (x${k} - mu) * r; XH[base + ${i}] = h; Y[base + ${i}] = h * gm${k} + bt${k};`)}
  if (lid == 0u) { RS[row] = r; }`;

/**
 * Shared forward of both norms: one workgroup per row computes the statistics, writes y, the
 * normalised input xhat and 1/std per row (kept for the backward pass). `centered` = layer norm
 * (subtract the mean, biased variance as PyTorch); otherwise RMS norm (LLaMA).
 */
function normForward(
  op: string,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor | null,
  eps: number,
  centered: boolean,
): Tensor {
  const { n, rows } = rowsOf(x, gamma, op);
  const y = Tensor.empty(x.shape, 'f32');
  const xhat = Tensor.empty(x.shape, 'f32');
  const rstd = Tensor.empty([rows], 'f32');
  const hasBeta = beta !== null;
  const a = access(n);
  const rpw = rowsPerGroup(rows);
  runRowKernel(
    {
      key: `norm:${centered}:${hasBeta}:${a.v4 ? 'v4' : 's'}:r${rpw}${a.kept ? `:k${a.kept}` : ''}`,
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'X', a.T, 'read')}
${storageDecl(1, 'Gm', a.T, 'read')}
${storageDecl(2, 'Bt', a.T, 'read')}
${storageDecl(3, 'Y', a.T, 'read_write')}
${storageDecl(4, 'XH', a.T, 'read_write')}
${storageDecl(5, 'RS', 'f32', 'read_write')}
PARAMS`,
          a.kept ? normKept(a, centered) : normReread(a, centered, hasBeta),
          rpw,
          a.kept ? normWeights(a, hasBeta) : '',
        ),
      inputs: [x, gamma, beta ?? gamma],
      outputs: [y, xhat, rstd],
      uniforms: [
        ['n', 'u32', n],
        ['eps', 'f32', eps],
      ],
    },
    rows,
    new Map([
      [x, n],
      [y, n],
      [xhat, n],
      [rstd, 1],
    ]),
    rpw,
  );
  const inputs = beta ? [x, gamma, beta] : [x, gamma];
  const grads = (g: Tensor, [px, pg, pb]: readonly (Tensor | null)[] = []) => {
    // x's gradient from other uses (a residual stream's) is added by the dx pass itself.
    const dx = x.requiresGrad ? normBackward(g, gamma, xhat, rstd, n, rows, centered, px ?? null) : null;
    const dg = gamma.requiresGrad ? sumOnto(pg ?? null, productColumnSum(g, xhat, n)) : null;
    const db = beta?.requiresGrad ? sumOnto(pb ?? null, columnSum(g, n)) : null;
    return beta ? [dx, dg, db] : [dx, dg];
  };
  const out = record(y, op, inputs, (g) => grads(g), grads);
  if (!out.node) {
    xhat.dispose();
    rstd.dispose();
  }
  return out;
}

/** Layer normalisation over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta (biased variance, as PyTorch). */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor | null, eps = 1e-5): Tensor {
  return normForward('layer_norm', x, gamma, beta, eps, true);
}

/** RMS normalisation over the last axis (LLaMA): x / sqrt(mean(x^2) + eps) * gamma. */
export function rmsNorm(x: Tensor, gamma: Tensor, eps = 1e-6): Tensor {
  return normForward('rms_norm', x, gamma, null, eps, false);
}

function productColumnSum(g: Tensor, xhat: Tensor, n: number): Tensor {
  const p = mul(g, xhat);
  const r = columnSum(p, n);
  p.dispose();
  return r;
}

/** The backward row statistics from the sums s1 (of d = dy·gamma; layer norm only) and s2 (of d·xhat). */
const normBwdStats = (centered: boolean) => `  let m1 = ${centered ? 'wg_sum(s1, lid) / f32(P.n)' : '0.0'};
  let m2 = wg_sum(s2, lid) / f32(P.n);
  let r = RS[row];`;

/** The norm's backward row body reading dy, gamma and xhat on each pass (with `acc`, plus ACC). */
const normBwdReread = (a: Access, centered: boolean, acc: boolean) => `  let base = ${a.base};
  // RMS norm has no mean to subtract: only layer norm sums d.
  var s1 = 0.0;
  var s2 = 0.0;
  ${a.LOOP} { let d = G[base + i] * Gm[i];${centered ? ` s1 += ${a.total('d')};` : ''} s2 += ${a.dot('d', 'XH[base + i]')}; }
${normBwdStats(centered)}
  ${a.LOOP} { DX[base + i] = ${acc ? 'ACC[base + i] + ' : ''}r * (G[base + i] * Gm[i] - m1 - XH[base + i] * m2); }`;

/** The backward row body with the lane's dy and xhat kept in registers (gamma in `gm`, the prologue's). */
const normBwdKept = (a: Access, centered: boolean, acc: boolean) => `  let base = ${a.base};
${keep(a, 'g', (i) => `G[base + ${i}]`)}${keep(a, 'xh', (i) => `XH[base + ${i}]`)}  var s1 = 0.0;
  var s2 = 0.0;
${a.each((k) => `let d = g${k} * gm${k};${centered ? ` s1 += ${a.total('d')};` : ''} s2 += ${a.dot('d', `xh${k}`)};`)}
${normBwdStats(centered)}
${a.each((k, i) => `DX[base + ${i}] = ${acc ? `ACC[base + ${i}] + ` : ''}r * (g${k} * gm${k} - m1 - xh${k} * m2);`)}`;

/**
 * dx for both norms, with d = g * gamma: layer norm  dx = rstd * (d - mean(d) - xhat * mean(d * xhat));
 * RMS norm  dx = rstd * (d - xhat * mean(d * xhat)). With `prior`, prior + dx.
 */
function normBackward(
  g: Tensor,
  gamma: Tensor,
  xhat: Tensor,
  rstd: Tensor,
  n: number,
  rows: number,
  centered: boolean,
  prior: Tensor | null = null,
): Tensor {
  const dx = Tensor.empty(g.shape, 'f32');
  const a = access(n);
  const acc = prior ? [prior] : [];
  const rpw = rowsPerGroup(rows);
  runRowKernel(
    {
      key: `norm_bwd:${centered}:${a.v4 ? 'v4' : 's'}:r${rpw}${a.kept ? `:k${a.kept}` : ''}${prior ? ':acc' : ''}`,
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'G', a.T, 'read')}
${storageDecl(1, 'Gm', a.T, 'read')}
${storageDecl(2, 'XH', a.T, 'read')}
${storageDecl(3, 'RS', 'f32', 'read')}
${prior ? storageDecl(4, 'ACC', a.T, 'read') : ''}
${storageDecl(prior ? 5 : 4, 'DX', a.T, 'read_write')}
PARAMS`,
          a.kept ? normBwdKept(a, centered, prior !== null) : normBwdReread(a, centered, prior !== null),
          rpw,
          a.kept ? keep(a, 'gm', (i) => `Gm[${i}]`) : '',
        ),
      inputs: [g, gamma, xhat, rstd, ...acc],
      outputs: [dx],
      uniforms: [['n', 'u32', n]],
    },
    rows,
    new Map([[g, n], [xhat, n], [rstd, 1], [dx, n], ...acc.map((t) => [t, n] as [Tensor, number])]),
    rpw,
  );
  return dx;
}
