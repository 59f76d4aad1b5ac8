import { record } from '../autograd.js';
import { assertDType, type DType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { f16Enable, grid, main1d, runKernel, storageDecl, uarr } from '../kernels/common.js';
import { contiguousStrides, fmt, normAxis, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { zeros } from './creation.js';

/** bf16 is packed two elements to a word, which the kernels that move single elements do not handle. */
const MOVABLE: readonly DType[] = ['f32', 'i32', 'f16'];

/** Same data, new shape (a view: no copy). One dim may be -1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  return record(x.view(shape), 'reshape', [x], (g) => [g.view(x.shape)]);
}

/** Permutes axes (copies into the new layout). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    throw new ShapeError(`permute: [${perm.join(', ')}] is not a permutation of ${x.rank} axes`);
  }
  assertDType(x.dtype, MOVABLE, 'permute');
  const outShape = perm.map((p) => x.shape[p]);
  const inStrides = contiguousStrides(x.shape);
  const out = Tensor.empty(outShape, x.dtype);
  if (out.size > 0) {
    runKernel({
      key: `permute:${x.dtype}:${x.rank}`,
      wgsl: () => `${f16Enable([x.dtype])}${storageDecl(0, 'X', x.dtype, 'read')}
${storageDecl(1, 'Y', x.dtype, 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  var rem = gi;
  var src = 0u;
  for (var d = ${x.rank - 1}; d >= 0; d--) {
    let dim = ${uarr('oshape', 'u32(d)')};
    src += (rem % dim) * ${uarr('istr', 'u32(d)')};
    rem = rem / dim;
  }
  Y[gi] = X[src];
}`,
      inputs: [x],
      outputs: [out],
      uniforms: [
        ['n', 'u32', out.size],
        ['oshape', 'vec4u', outShape],
        ['istr', 'vec4u', perm.map((p) => inStrides[p])],
      ],
      workgroups: grid(out.size),
    });
  }
  const inv = perm.map((_, i) => perm.indexOf(i));
  return record(out, 'permute', [x], (g) => [permute(g, inv)]);
}

/** Swaps two axes (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const i = normAxis(a, x.rank, 'transpose');
  const j = normAxis(b, x.rank, 'transpose');
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

/**
 * Copies x[..., start:start+len, ...] (along `axis`) into out[..., dstStart:dstStart+len, ...], or the
 * reverse when `scatter` is set. Both concat and slice (and their gradients) are built from this.
 */
function copyBlock(
  src: Tensor,
  dst: Tensor,
  axis: number,
  srcStart: number,
  dstStart: number,
  len: number,
): void {
  const outer = src.shape.slice(0, axis).reduce((p, q) => p * q, 1);
  const inner = src.shape.slice(axis + 1).reduce((p, q) => p * q, 1);
  const n = outer * len * inner;
  if (n === 0) return;
  runKernel({
    key: `copy_block:${src.dtype}`,
    wgsl: () => `${f16Enable([src.dtype])}${storageDecl(0, 'S', src.dtype, 'read')}
${storageDecl(1, 'D', src.dtype, 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let j = gi % P.inner;
  let t = gi / P.inner;
  let i = t % P.len;
  let o = t / P.len;
  D[(o * P.dlen + P.dstart + i) * P.inner + j] = S[(o * P.slen + P.sstart + i) * P.inner + j];
}`,
    inputs: [src],
    outputs: [dst],
    uniforms: [
      ['n', 'u32', n],
      ['inner', 'u32', inner],
      ['len', 'u32', len],
      ['slen', 'u32', src.shape[axis]],
      ['sstart', 'u32', srcStart],
      ['dlen', 'u32', dst.shape[axis]],
      ['dstart', 'u32', dstStart],
    ],
    workgroups: grid(n),
  });
}

/** Concatenates along `axis`; all other dims must match. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: no tensors');
  const first = xs[0];
  assertDType(first.dtype, MOVABLE, 'concat');
  const a = normAxis(axis, first.rank, 'concat');
  for (const t of xs) {
    if (
      t.rank !== first.rank ||
      t.dtype !== first.dtype ||
      t.shape.some((d, i) => i !== a && d !== first.shape[i])
    ) {
      throw new ShapeError(
        `concat: ${fmt(t.shape)} (${t.dtype}) does not match ${fmt(first.shape)} (${first.dtype}) along axis ${a}`,
      );
    }
  }
  const outShape = [...first.shape];
  outShape[a] = xs.reduce((s, t) => s + t.shape[a], 0);
  const out = Tensor.empty(outShape, first.dtype);
  let off = 0;
  const offsets: number[] = [];
  for (const t of xs) {
    offsets.push(off);
    copyBlock(t, out, a, 0, off, t.shape[a]);
    off += t.shape[a];
  }
  return record(out, 'concat', xs, (g) =>
    xs.map((t, k) => (t.requiresGrad ? sliceAxis(g, a, offsets[k], offsets[k] + t.shape[a]) : null)),
  );
}

/** x[start:end] along one axis (a copy). */
export function sliceAxis(x: Tensor, axis: number, start: number, end: number): Tensor {
  assertDType(x.dtype, MOVABLE, 'slice');
  const a = normAxis(axis, x.rank, 'slice');
  const dim = x.shape[a];
  const s = start < 0 ? start + dim : start;
  const e = end < 0 ? end + dim : Math.min(end, dim);
  if (s < 0 || s > e || e > dim)
    throw new ShapeError(`slice: [${start}, ${end}) out of range for axis ${a} of ${fmt(x.shape)}`);
  const outShape = [...x.shape];
  outShape[a] = e - s;
  const out = Tensor.empty(outShape, x.dtype);
  copyBlock(x, out, a, s, 0, e - s);
  return record(out, 'slice', [x], (g) => {
    const gx = zeros(x.shape);
    copyBlock(g, gx, a, 0, s, e - s);
    return [gx];
  });
}

/** Slices every axis: starts/ends per axis (negative counts from the end). */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  if (starts.length !== x.rank || ends.length !== x.rank)
    throw new ShapeError(`slice: need ${x.rank} starts and ends`);
  let cur = x;
  for (let a = 0; a < x.rank; a++) {
    const dim = x.shape[a];
    const s = starts[a] < 0 ? starts[a] + dim : starts[a];
    const e = ends[a] < 0 ? ends[a] + dim : Math.min(ends[a], dim);
    if (s === 0 && e === dim) continue;
    const next = sliceAxis(cur, a, s, e);
    if (cur !== x) cur.dispose();
    cur = next;
  }
  return cur === x ? reshape(x, x.shape) : cur;
}
