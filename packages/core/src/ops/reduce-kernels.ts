import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import { rowGrid, rowKernel } from '../kernels/rows.js';
import { fmt, normAxis, numel, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';

/**
 * The reduction kernels, without autograd: reduce.ts builds the differentiable ops on them, and
 * the broadcasting ops' backward rules (elementwise, matmul) sum gradients back to an operand's
 * shape with sumToShape. Neither of those imports the other through this module.
 */

export type ReduceOp = 'sum' | 'max';

/** Reduces `x` over `axis`, dropping it. Long contiguous axes get a workgroup per row. */
export function reduceRaw(op: ReduceOp, x: Tensor, axis: number): Tensor {
  assertDType(x.dtype, ['f32'], op);
  const a = normAxis(axis, x.rank, op);
  const outer = numel(x.shape.slice(0, a));
  const len = x.shape[a];
  const inner = numel(x.shape.slice(a + 1));
  const out = Tensor.empty([...x.shape.slice(0, a), ...x.shape.slice(a + 1)], 'f32');
  if (out.size === 0) return out;
  const init = op === 'sum' ? '0.0' : '-3.4028234663852886e38';
  const comb = op === 'sum' ? 'acc + v' : 'max(acc, v)';
  const uniforms = [
    ['rows', 'u32', outer * inner],
    ['len', 'u32', len],
    ['inner', 'u32', inner],
  ] as const;
  if (inner === 1) {
    runKernel({
      key: `reduce_row:${op}`,
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'X', 'f32', 'read')}\n${storageDecl(1, 'out', 'f32', 'read_write')}\nPARAMS`,
          `  var acc = ${init};
  for (var i = lid; i < P.len; i += ROW_WG) { let v = X[row * P.len + i]; acc = ${comb}; }
  let r = wg_${op}(acc, lid);
  if (lid == 0u) { out[row] = r; }`,
        ),
      inputs: [x],
      outputs: [out],
      uniforms: [...uniforms],
      workgroups: rowGrid(outer),
    });
  } else {
    runKernel({
      key: `reduce_col:${op}`,
      wgsl: () => `${storageDecl(0, 'X', 'f32', 'read')}
${storageDecl(1, 'out', 'f32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.rows) { return; }
  let o = gi / P.inner;
  let j = gi % P.inner;
  var acc = ${init};
  for (var i = 0u; i < P.len; i++) { let v = X[(o * P.len + i) * P.inner + j]; acc = ${comb}; }
  out[gi] = acc;
}`,
      inputs: [x],
      outputs: [out],
      uniforms: [...uniforms],
      workgroups: grid(outer * inner),
    });
  }
  return out;
}

export function keptShape(shape: Shape, axis: number): number[] {
  const s = [...shape];
  s[axis] = 1;
  return s;
}

/** Sums `g` down to `shape` (the inverse of broadcasting `shape` up to g.shape). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (shape.length > g.rank)
    throw new ShapeError(`sumToShape: ${fmt(shape)} has more dims than ${fmt(g.shape)}`);
  let cur = g.view(g.shape);
  const lead = g.rank - shape.length;
  if (lead > 0) {
    const flat = cur.view([numel(g.shape.slice(0, lead)), numel(g.shape.slice(lead))]);
    const r = reduceRaw('sum', flat, 0);
    flat.dispose();
    cur.dispose();
    cur = r.view(g.shape.slice(lead));
    r.dispose();
  }
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && cur.shape[i] !== 1) {
      const r = reduceRaw('sum', cur, i);
      const k = r.view(keptShape(cur.shape, i));
      r.dispose();
      cur.dispose();
      cur = k;
    } else if (shape[i] !== cur.shape[i]) {
      throw new ShapeError(`sumToShape: cannot reduce ${fmt(g.shape)} to ${fmt(shape)}`);
    }
  }
  return cur;
}
