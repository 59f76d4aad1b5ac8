import { assertDType, BYTES_PER_ELEMENT, type DType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { f16Enable, grid, main1d, runKernel, storageDecl, uarr } from '../kernels/common.js';
import { record } from '../record.js';
import { getDevice } from '../runtime.js';
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

/** Window starts are rounded down to this many elements: 256 bytes or more for every dtype here. */
const WINDOW_ALIGN = 128;

/**
 * Copies src[..., srcStart:srcStart+len, ...] (along `axis`) into dst[..., dstStart:dstStart+len, ...].
 * Both concat and slice (and their gradients) are built from this.
 * A source or destination over the storage binding limit is copied in windows: groups of whole
 * outer slabs, or ranges along `axis` within one slab, each binding only the span it touches.
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
  if (outer * len * inner === 0) return;
  const slen = src.shape[axis];
  const dlen = dst.shape[axis];
  const room = Math.floor(getDevice().maxBindingBytes / BYTES_PER_ELEMENT[src.dtype]) - WINDOW_ALIGN;
  // [o0, o1, i0, i1): outer slabs and positions along the axis of one window.
  const windows: Array<[number, number, number, number]> = [];
  const slab = Math.max(slen, dlen) * inner;
  const whole = src.size <= room && dst.size <= room;
  if (whole) windows.push([0, outer, 0, len]);
  else if (slab <= room) {
    const per = Math.floor(room / slab);
    for (let o = 0; o < outer; o += per) windows.push([o, Math.min(outer, o + per), 0, len]);
  } else {
    // Too wide even for one slab: the dispatch reports the limit when one row of `inner` is.
    const per = Math.max(1, Math.floor(room / inner));
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < len; i += per) windows.push([o, o + 1, i, Math.min(len, i + per)]);
  }
  for (const [o0, o1, i0, i1] of windows) {
    // First and one-past-last elements touched in each tensor, and the bindings covering them.
    const span = (t: Tensor, stride: number, start: number): [GPUBufferBinding, number] => {
      const first = (o0 * stride + start + i0) * inner;
      if (whole) return [t.binding(), first];
      const end = ((o1 - 1) * stride + start + i1) * inner;
      const from = Math.floor(first / WINDOW_ALIGN) * WINDOW_ALIGN;
      return [t.window(from, end - from), first - from];
    };
    const [sBind, sBase] = span(src, slen, srcStart);
    const [dBind, dBase] = span(dst, dlen, dstStart);
    const n = (o1 - o0) * (i1 - i0) * inner;
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
  D[P.dbase + (o * P.dlen + i) * P.inner + j] = S[P.sbase + (o * P.slen + i) * P.inner + j];
}`,
      inputs: [sBind],
      outputs: [dBind],
      uniforms: [
        ['n', 'u32', n],
        ['inner', 'u32', inner],
        ['len', 'u32', i1 - i0],
        ['slen', 'u32', slen],
        ['dlen', 'u32', dlen],
        ['sbase', 'u32', sBase],
        ['dbase', 'u32', dBase],
      ],
      workgroups: grid(n),
    });
  }
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
