import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { runKernel, storageDecl } from '../kernels/common.js';
import { rowKernel, rowsPerGroup, runRowKernel } from '../kernels/rows.js';
import { record } from '../record.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this contribute no loss and no gradient (default -100, as PyTorch). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' for per-row losses [N]. */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * A lane's share of a row: element i, or with `vec` (C a multiple of 4) vec4 i of X. On a CPU
 * adapter a storage access costs about the same for a vec4 as for a float, so rows are read as vec4s
 * whenever they can be.
 */
const LOOP = (vec: boolean) => `for (var i = lid; i < ${vec ? 'P.c / 4u' : 'P.c'}; i += ROW_WG)`;
/** The row's first element (vec4 with `vec`), and the element of its target t. */
const rowBase = (vec: boolean) => `let base = row * ${vec ? '(P.c / 4u)' : 'P.c'};`;
const targetLogit = (vec: boolean) => (vec ? 'X[base + u32(t) / 4u][u32(t) % 4u]' : 'X[base + u32(t)]');
// Shared by both row kernels: the row's status. Out-of-range targets cannot be reported without a
// readback, so they yield NaN (loss and gradient row) instead of reading out of bounds.
const TARGET = `  let t = TG[row];
  let ignored = t == P.ignore;
  let invalid = !ignored && (t < 0 || u32(t) >= P.c);`;

/**
 * Cross entropy of logits [N, C] against i32 class targets [N], with PyTorch semantics: per row
 * logsumexp(logits) - logits[target], 0 for ignored rows; 'mean' divides by the number of
 * non-ignored targets (NaN when all are ignored, as PyTorch). A target outside [0, C) that is not
 * ignoreIndex makes that row's loss (hence a reduced loss) NaN. One fused kernel per row keeps only
 * the row's logsumexp for backward, which is (softmax - onehot(target)) · g (/ count for 'mean').
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  assertDType(logits.dtype, ['f32'], 'crossEntropy logits');
  assertDType(targets.dtype, ['i32'], 'crossEntropy targets');
  if (logits.rank !== 2)
    throw new ShapeError(`crossEntropy: logits must be [N, C], got ${fmt(logits.shape)}`);
  const [N, C] = logits.shape;
  if (targets.rank !== 1 || targets.shape[0] !== N)
    throw new ShapeError(`crossEntropy: targets must be [${N}], got ${fmt(targets.shape)}`);
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  if (!Number.isInteger(ignore))
    throw new ShapeError(`crossEntropy: ignoreIndex ${ignore} must be an integer`);

  const losses = Tensor.empty([N], 'f32');
  const lse = Tensor.empty([N], 'f32');
  const common = [
    ['c', 'u32', C],
    ['ignore', 'i32', ignore],
    ['nan', 'f32', Number.NaN],
  ] as const;
  const rpw = rowsPerGroup(N);
  const vec = C % 4 === 0;
  const X = vec ? 'vec4<f32>' : 'f32';
  if (N > 0) {
    runRowKernel(
      {
        key: `xent_fwd:r${rpw}${vec ? ':v4' : ''}`,
        wgsl: () =>
          rowKernel(
            `${storageDecl(0, 'X', X, 'read')}
${storageDecl(1, 'TG', 'i32', 'read')}
${storageDecl(2, 'L', 'f32', 'read_write')}
${storageDecl(3, 'LSE', 'f32', 'read_write')}
PARAMS`,
            `  ${rowBase(vec)}
  var m = -3.4028234663852886e38;
  ${LOOP(vec)} { let v = X[base + i]; m = max(m, ${vec ? 'max(max(v.x, v.y), max(v.z, v.w))' : 'v'}); }
  m = wg_max(m, lid);
  var s = 0.0;
  ${LOOP(vec)} { let e = exp(X[base + i] - ${X}(m)); s += ${vec ? 'e.x + e.y + e.z + e.w' : 'e'}; }
  let lse = m + log(wg_sum(s, lid));
${TARGET}
  if (lid == 0u) {
    LSE[row] = lse;
    if (ignored) { L[row] = 0.0; } else if (invalid) { L[row] = P.nan; } else { L[row] = lse - ${targetLogit(vec)}; }
  }`,
            rpw,
          ),
        inputs: [logits, targets],
        outputs: [losses, lse],
        uniforms: [...common],
      },
      N,
      new Map([
        [logits, C],
        [targets, 1],
        [losses, 1],
        [lse, 1],
      ]),
      rpw,
    );
  }

  // 'sum'/'mean': one workgroup adds the row losses in a fixed order (deterministic) and counts the
  // non-ignored targets, which the 'mean' backward needs.
  let out = losses;
  let count: Tensor | null = null;
  if (reduction !== 'none') {
    out = Tensor.empty([], 'f32');
    count = Tensor.empty([1], 'f32');
    runKernel({
      key: `xent_reduce:${reduction}`,
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'L', 'f32', 'read')}
${storageDecl(1, 'TG', 'i32', 'read')}
${storageDecl(2, 'OUT', 'f32', 'read_write')}
${storageDecl(3, 'CNT', 'f32', 'read_write')}
PARAMS`,
          `  var s = 0.0;
  var k = 0.0;
  for (var i = lid; i < P.n; i += ROW_WG) { s += L[i]; k += select(1.0, 0.0, TG[i] == P.ignore); }
  s = wg_sum(s, lid);
  k = wg_sum(k, lid);
  if (lid == 0u) {
    CNT[0] = k;
    ${reduction === 'mean' ? 'OUT[0] = select(s / k, P.nan, k == 0.0);' : 'OUT[0] = s;'}
  }`,
        ),
      inputs: [losses, targets],
      outputs: [out, count],
      uniforms: [
        ['rows', 'u32', 1],
        ['n', 'u32', N],
        ['ignore', 'i32', ignore],
        ['nan', 'f32', Number.NaN],
      ],
      workgroups: [1, 1, 1],
    });
    losses.dispose();
  }

  const result = record(out, 'cross_entropy', [logits], (g) => {
    const dx = Tensor.empty(logits.shape, 'f32');
    if (N === 0) return [dx];
    // Upstream factor per row: g[row] ('none'), g[0] ('sum') or g[0] / count ('mean').
    const gRow = reduction === 'none' ? 'G[row]' : reduction === 'sum' ? 'G[0]' : 'G[0] / CNT[0]';
    const perRow = new Map<Tensor, number>([
      [logits, C],
      [targets, 1],
      [lse, 1],
      [dx, C],
    ]);
    if (reduction === 'none') perRow.set(g, 1);
    runRowKernel(
      {
        key: `xent_bwd:${reduction}:r${rpw}${vec ? ':v4' : ''}`,
        wgsl: () =>
          rowKernel(
            `${storageDecl(0, 'X', X, 'read')}
${storageDecl(1, 'TG', 'i32', 'read')}
${storageDecl(2, 'LSE', 'f32', 'read')}
${storageDecl(3, 'G', 'f32', 'read')}
${reduction === 'mean' ? storageDecl(4, 'CNT', 'f32', 'read') : ''}
${storageDecl(reduction === 'mean' ? 5 : 4, 'DX', X, 'read_write')}
PARAMS`,
            `  ${rowBase(vec)}
${TARGET}
  let gs = ${gRow};
  let lse = LSE[row];
  ${LOOP(vec)} {
    ${
      vec
        ? `let k = i32(i * 4u);
    let onehot = vec4<f32>(vec4<i32>(k, k + 1, k + 2, k + 3) == vec4<i32>(t));`
        : 'let onehot = select(0.0, 1.0, i32(i) == t);'
    }
    let d = (exp(X[base + i] - ${X}(lse)) - onehot) * gs;
    DX[base + i] = select(select(d, ${X}(P.nan), invalid), ${X}(0.0), ignored);
  }`,
            rpw,
          ),
        inputs: reduction === 'mean' ? [logits, targets, lse, g, count as Tensor] : [logits, targets, lse, g],
        outputs: [dx],
        uniforms: [...common],
      },
      N,
      perRow,
      rpw,
    );
    return [dx];
  });
  if (!result.node) {
    lse.dispose();
    count?.dispose();
  }
  return result;
}
