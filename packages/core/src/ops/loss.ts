import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { runKernel, storageDecl } from '../kernels/common.js';
import { rowKernel, rowsPerGroup, runRowKernel } from '../kernels/rows.js';
import { record } from '../record.js';
import { getDevice } from '../runtime.js';
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
 * How the kernels read (and write) a row of C elements: 'v4' as vec4s (C a multiple of 4); 'u4' as
 * the vec4s wholly inside the row plus the up to 3 elements before and after them (C not a multiple
 * of 4, so rows start mid-vec4, like GPT-2's 50,257 logits); 's' element by element. On a CPU adapter
 * a storage access costs about the same for a vec4 as for a float, so rows are read as vec4s
 * whenever they can be. The arrays are vec4s in both vec4 modes.
 */
type RowMode = 'v4' | 'u4' | 's';

/** WGSL: the row's start, and in 'u4' its whole vec4s [a0, a1) and the lone elements around them. */
const rowSpan = (mode: RowMode) =>
  mode === 's'
    ? 'let base = row * P.c;'
    : mode === 'v4'
      ? 'let base = row * (P.c / 4u);'
      : `let s = row * P.c;
  let a0 = (s + 3u) / 4u;
  let a1 = (s + P.c) / 4u;
  let head = a0 * 4u - s;
  let tail = s + P.c - a1 * 4u;`;

/**
 * WGSL: a loop over the row, with `vec(v, i, col)` for each vec4 v (at vec4 index i, its first
 * column col) and `one(x, e, col)` for each lone element x (at element index e). A lane takes every
 * ROW_WG-th vec4 (or element), and in 'u4' lane l the l-th element before and after them.
 */
function overRow(
  mode: RowMode,
  vec: (v: string, i: string, col: string) => string,
  one: (x: string, e: string, col: string) => string,
): string {
  if (mode === 's')
    return `for (var i = lid; i < P.c; i += ROW_WG) { ${one('X[base + i]', 'base + i', 'i')} }`;
  if (mode === 'v4')
    return `for (var i = lid; i < P.c / 4u; i += ROW_WG) { ${vec('X[base + i]', 'base + i', 'i * 4u')} }`;
  const lone = (e: string, col: string) => `{ let e = ${e}; ${one('X[e >> 2u][e & 3u]', 'e', col)} }`;
  return `for (var i = a0 + lid; i < a1; i += ROW_WG) { ${vec('X[i]', 'i', 'i * 4u - s')} }
  if (lid < head) ${lone('s + lid', 'lid')}
  if (lid < tail) ${lone('a1 * 4u + lid', 'a1 * 4u + lid - s')}`;
}

/** WGSL: the logit of target t in the row. */
const targetLogit = (mode: RowMode) =>
  mode === 's'
    ? 'X[base + u32(t)]'
    : mode === 'v4'
      ? 'X[base + u32(t) / 4u][u32(t) % 4u]'
      : 'X[(s + u32(t)) >> 2u][(s + u32(t)) & 3u]';

/**
 * The row mode for [N, C] tensors. 'u4' binds them as vec4s: each binding is rounded up to whole
 * vec4s, which its buffer must hold (pooled buffers do), and must fit one binding.
 */
function rowMode(tensors: readonly Tensor[], N: number, C: number): RowMode {
  if (C % 4 === 0) return 'v4';
  const bytes = Math.ceil((N * C) / 4) * 16;
  const room = tensors.every((t) => bytes <= t.buffer.size);
  return C >= 8 && room && bytes <= getDevice().maxBindingBytes ? 'u4' : 's';
}

/** A binding of t's buffer for the mode: in 'u4' rounded up to whole vec4s. */
const rowBinding = (t: Tensor, mode: RowMode): Tensor | GPUBufferBinding =>
  mode === 'u4' ? { buffer: t.buffer, offset: 0, size: Math.ceil(t.size / 4) * 16 } : t;

/**
 * WGSL shared by the cross-entropy row kernels: the row's target t and its status. Out-of-range
 * targets cannot be reported without a readback, so they yield NaN (loss and gradient row) instead
 * of reading out of bounds.
 */
export const CROSS_ENTROPY_TARGET = `  let t = TG[row];
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
  const fwdMode = rowMode([logits], N, C);
  if (N > 0) {
    runRowKernel(
      {
        key: `xent_fwd:r${rpw}${fwdMode === 's' ? '' : `:${fwdMode}`}`,
        wgsl: () =>
          rowKernel(
            `${storageDecl(0, 'X', fwdMode === 's' ? 'f32' : 'vec4<f32>', 'read')}
${storageDecl(1, 'TG', 'i32', 'read')}
${storageDecl(2, 'L', 'f32', 'read_write')}
${storageDecl(3, 'LSE', 'f32', 'read_write')}
PARAMS`,
            `  ${rowSpan(fwdMode)}
  var m = -3.4028234663852886e38;
  ${overRow(
    fwdMode,
    (v) => `let v = ${v}; m = max(m, max(max(v.x, v.y), max(v.z, v.w)));`,
    (x) => `m = max(m, ${x});`,
  )}
  m = wg_max(m, lid);
  var sum = 0.0;
  ${overRow(
    fwdMode,
    (v) => `let p = exp(${v} - vec4<f32>(m)); sum += p.x + p.y + p.z + p.w;`,
    (x) => `sum += exp(${x} - m);`,
  )}
  let lse = m + log(wg_sum(sum, lid));
${CROSS_ENTROPY_TARGET}
  if (lid == 0u) {
    LSE[row] = lse;
    if (ignored) { L[row] = 0.0; } else if (invalid) { L[row] = P.nan; } else { L[row] = lse - ${targetLogit(fwdMode)}; }
  }`,
            rpw,
          ),
        inputs: [rowBinding(logits, fwdMode), targets],
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
    const mode = rowMode([logits, dx], N, C);
    const X = mode === 's' ? 'f32' : 'vec4<f32>';
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
        key: `xent_bwd:${reduction}:r${rpw}${mode === 's' ? '' : `:${mode}`}`,
        wgsl: () =>
          rowKernel(
            `${storageDecl(0, 'X', X, 'read')}
${storageDecl(1, 'TG', 'i32', 'read')}
${storageDecl(2, 'LSE', 'f32', 'read')}
${storageDecl(3, 'G', 'f32', 'read')}
${reduction === 'mean' ? storageDecl(4, 'CNT', 'f32', 'read') : ''}
${storageDecl(reduction === 'mean' ? 5 : 4, 'DX', X, 'read_write')}
PARAMS`,
            `  ${rowSpan(mode)}
${CROSS_ENTROPY_TARGET}
  let gs = ${gRow};
  let lse = LSE[row];
  ${overRow(
    mode,
    (v, i, col) => `let k = i32(${col});
    let onehot = vec4<f32>(vec4<i32>(k, k + 1, k + 2, k + 3) == vec4<i32>(t));
    let d = (exp(${v} - vec4<f32>(lse)) - onehot) * gs;
    DX[${i}] = select(select(d, vec4<f32>(P.nan), invalid), vec4<f32>(0.0), ignored);`,
    (x, e, col) => `let d = (exp(${x} - lse) - select(0.0, 1.0, i32(${col}) == t)) * gs;
    ${mode === 's' ? `DX[${e}]` : `DX[${e} >> 2u][${e} & 3u]`} = select(select(d, P.nan, invalid), 0.0, ignored);`,
  )}`,
            rpw,
          ),
        inputs: [
          rowBinding(logits, mode),
          targets,
          lse,
          g,
          ...(reduction === 'mean' ? [count as Tensor] : []),
        ],
        outputs: [rowBinding(dx, mode)],
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
