import { assertDType } from '../dtype.js';
import { storageDecl } from '../kernels/common.js';
import { rowKernel, rowsPerGroup, runRowKernel } from '../kernels/rows.js';
import { record } from '../record.js';
import { Tensor } from '../tensor.js';

const IO2 = `${storageDecl(0, 'X', 'f32', 'read')}\n${storageDecl(1, 'Y', 'f32', 'read_write')}\nPARAMS`;
const IO3 = `${storageDecl(0, 'Y', 'f32', 'read')}\n${storageDecl(1, 'G', 'f32', 'read')}\n${storageDecl(2, 'DX', 'f32', 'read_write')}\nPARAMS`;
const LOOP = `for (var i = lid; i < P.n; i += ROW_WG)`;

/**
 * Row-wise (log-)softmax over the last axis. A row whose entries are all -inf (fully masked attention)
 * gives zeros rather than NaN.
 */
function rowSoftmax(x: Tensor, log: boolean): Tensor {
  assertDType(x.dtype, ['f32'], log ? 'logSoftmax' : 'softmax');
  const n = x.shape[x.rank - 1] ?? 1;
  const rows = n === 0 ? 0 : x.size / n;
  const y = Tensor.empty(x.shape, 'f32');
  const rpw = rowsPerGroup(rows);
  if (rows > 0) {
    runRowKernel(
      {
        key: `softmax:${log}:r${rpw}`,
        wgsl: () =>
          rowKernel(
            IO2,
            `  let base = row * P.n;
  var m = -3.4028234663852886e38;
  ${LOOP} { m = max(m, X[base + i]); }
  m = wg_max(m, lid);
  var s = 0.0;
  ${LOOP} { s += exp(X[base + i] - m); }
  s = wg_sum(s, lid);
  let dead = m <= -3.4028234663852886e38;
  let lse = m + log(s);
  ${LOOP} { ${log ? 'Y[base + i] = select(X[base + i] - lse, 0.0, dead);' : 'Y[base + i] = select(exp(X[base + i] - m) / s, 0.0, dead);'} }`,
            rpw,
          ),
        inputs: [x],
        outputs: [y],
        uniforms: [['n', 'u32', n]],
      },
      rows,
      new Map([
        [x, n],
        [y, n],
      ]),
      rpw,
    );
  }
  return record(y, log ? 'log_softmax' : 'softmax', [x], (g) => {
    const dx = Tensor.empty(x.shape, 'f32');
    // softmax: dx = y * (g - sum(g*y)); log-softmax: dx = g - exp(y) * sum(g)
    runRowKernel(
      {
        key: `softmax_bwd:${log}:r${rpw}`,
        wgsl: () =>
          rowKernel(
            IO3,
            `  let base = row * P.n;
  var s = 0.0;
  ${LOOP} { s += ${log ? 'G[base + i]' : 'G[base + i] * Y[base + i]'}; }
  s = wg_sum(s, lid);
  ${LOOP} { ${log ? 'DX[base + i] = G[base + i] - exp(Y[base + i]) * s;' : 'DX[base + i] = Y[base + i] * (G[base + i] - s);'} }`,
            rpw,
          ),
        inputs: [y, g],
        outputs: [dx],
        uniforms: [['n', 'u32', n]],
      },
      rows,
      new Map([
        [y, n],
        [g, n],
        [dx, n],
      ]),
      rpw,
    );
    return [dx];
  });
}

/**
 * Softmax over the last axis of an f32 tensor of any rank, each row independently (the maximum is
 * subtracted first, so large logits do not overflow). A row whose entries are all -Infinity (a
 * fully masked attention row) gives zeros rather than NaN. Gradient: y·(g - Σ g·y) per row.
 */
export const softmax = (x: Tensor): Tensor => rowSoftmax(x, false);
/**
 * log(softmax(x)) over the last axis, computed as x - logsumexp(x), which stays finite where the
 * composition of {@link log} and {@link softmax} would underflow to -Infinity. A row of all
 * -Infinity gives zeros. Gradient: g - softmax(x)·Σg per row. For a classification loss,
 * {@link crossEntropy} fuses this with the target lookup.
 */
export const logSoftmax = (x: Tensor): Tensor => rowSoftmax(x, true);
