import { record } from '../record.js';
import { normAxis, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { zeros } from './creation.js';
import {
  add as addOp,
  div as divOp,
  equal as equalOp,
  mul as mulOp,
  scale as scaleOp,
} from './elementwise.js';
import { keptShape, reduceRaw } from './reduce-kernels.js';

export { sumToShape } from './reduce-kernels.js';

/** Sum over `axis` (all axes when omitted). */
export function sum(x: Tensor, axis?: number, keepDims = false): Tensor {
  if (axis === undefined) {
    const flat = x.view([x.size]);
    const r = sum(flat, 0, false);
    flat.dispose();
    const out = keepDims ? r.view(x.shape.map(() => 1)) : r.view([]);
    r.dispose();
    return record(out, 'sum_all', [x], (g) => [broadcastTo(g, x.shape)]);
  }
  const a = normAxis(axis, x.rank, 'sum');
  const raw = reduceRaw('sum', x, a);
  const out = keepDims ? raw.view(keptShape(x.shape, a)) : raw;
  if (keepDims) raw.dispose();
  return record(out, 'sum', [x], (g) => {
    const gk = g.view(keptShape(x.shape, a));
    const r = broadcastTo(gk, x.shape);
    gk.dispose();
    return [r];
  });
}

/** Mean over `axis` (all axes when omitted). */
export function mean(x: Tensor, axis?: number, keepDims = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis(axis, x.rank, 'mean')];
  const s = sum(x, axis, keepDims);
  const out = scaleOp(s, 1 / n);
  s.dispose();
  return out;
}

/** Max over `axis`; the gradient is shared equally among tied maxima. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  const a = normAxis(axis, x.rank, 'max');
  const raw = reduceRaw('max', x, a);
  const kept = raw.view(keptShape(x.shape, a));
  const out = keepDims ? kept : raw;
  return record(out, 'max', [x], (g) => {
    const mask = equalOp(x, kept);
    const cnt = reduceRaw('sum', mask, a);
    const gk = g.view(keptShape(x.shape, a));
    const cntK = cnt.view(keptShape(x.shape, a));
    const share = divOp(gk, cntK);
    const r = mulOp(mask, share);
    for (const t of [mask, cnt, gk, cntK, share]) t.dispose();
    return [r];
  });
}

/** Materialises `x` broadcast to `shape` (differentiable). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  const z = zeros(shape);
  const out = addOp(z, x);
  z.dispose();
  return out;
}
