import { assertDType, isHalf } from '../dtype.js';
import { DTypeError, ShapeError } from '../errors.js';
import { grid, HALF_BITS, main1d, runKernel, storageDecl } from '../kernels/common.js';
import { record } from '../record.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { zeros } from './creation.js';

/** Options of {@link embedding}. */
export interface EmbeddingGatherOptions {
  /**
   * Subtracted from every id first: `weight` holds rows [offset, offset + V) of a larger table (one
   * block of a vocabulary split over several tensors). Default 0.
   */
  offset?: number;
  /** The row an id outside the table gets: 'nan' (default) or 'zero' (a block's ids held elsewhere). */
  outside?: 'nan' | 'zero';
}

/**
 * Row gather: out[..., :] = weight[ids[...] - offset, :] for weight [V, D] and i32 ids of any shape.
 *
 * An id outside [0, V) cannot be reported without a readback, so its output row is NaN (never an
 * out-of-bounds read): a tokenizer/vocabulary mismatch then surfaces as a NaN loss instead of silently
 * training on a wrong row. Such ids contribute no gradient. Validate ids on the CPU where they are
 * known if an exception is preferred. With `outside: 'zero'` their rows are zero instead, so the
 * gathers of a table's blocks (each with its offset) sum to the gather of the whole table.
 *
 * Backward is a deterministic scatter-add (no float atomics): pass 1 counts each id's occurrences
 * (integer atomics, exact); pass 2 links each position of a repeated id to the next position with
 * that id and flags first occurrences; pass 3 gives each (first occurrence, column) one thread that
 * sums the gradient rows along that chain in position order. Rows of ids never seen are zero. Cost
 * for N ids of which R are repeats: O(N + R·N) integer comparisons (an id seen once needs no scan,
 * so gathering distinct rows, as a causal LM's logitsToKeep does, is linear), O(N·D) additions and
 * an O(V·D) zero fill of dW.
 *
 * A frozen f16/bf16 weight (a base weight kept in half precision) is gathered from directly, each
 * element decoded exactly to f32: no f32 copy of the table is made.
 */
export function embedding(weight: Tensor, ids: Tensor, opts: EmbeddingGatherOptions = {}): Tensor {
  assertDType(weight.dtype, ['f32', 'f16', 'bf16'], 'embedding weight');
  assertDType(ids.dtype, ['i32'], 'embedding ids');
  if (weight.rank !== 2) throw new ShapeError(`embedding: weight must be [V, D], got ${fmt(weight.shape)}`);
  const half = isHalf(weight.dtype) ? weight.dtype : null;
  if (half && weight.requiresGrad)
    throw new DTypeError(
      `embedding: a ${half} weight cannot require grad (half-precision weights are frozen)`,
    );
  const [V, D] = weight.shape;
  const n = ids.size;
  const offset = opts.offset ?? 0;
  if (!Number.isInteger(offset) || Math.abs(offset) >= 2 ** 31)
    throw new ShapeError(`embedding: offset must be an integer within i32, got ${offset}`);
  const out = Tensor.empty([...ids.shape, D], 'f32');
  if (out.size > 0) {
    // LANES invocations per row, each copying every LANES-th element (a vec4 of columns where rows
    // are whole vec4s): the row comes from a shift, where an index split by the runtime width would
    // cost a scalar division per lane on CPUs, and where every per-lane access is a scalar loop, a
    // vec4 moves four columns for the price of one.
    const LANES = 16;
    const v4 = !half && D % 4 === 0;
    const ty = v4 ? 'vec4<f32>' : 'f32';
    const w = v4 ? D / 4 : D;
    runKernel({
      key: `embedding_fwd:${weight.dtype}${v4 ? ':v4' : ''}`,
      wgsl: () => `${storageDecl(0, 'W', half ? 'u32' : ty, 'read')}
${storageDecl(1, 'I', 'i32', 'read')}
${storageDecl(2, 'Y', ty, 'read_write')}
PARAMS
${half ? HALF_BITS : ''}
${main1d()}
  let row = gi / ${LANES}u;
  if (row >= P.n) { return; }
  let id = I[row] - P.off;
  let bad = id < 0 || u32(id) >= P.v;
  for (var c = gi % ${LANES}u; c < P.w; c += ${LANES}u) {
    let k = u32(id) * P.w + c;
    if (bad) { Y[row * P.w + c] = ${ty}(P.fill); continue; }
    ${half ? `Y[row * P.w + c] = bitcast<f32>(${half}_to_f32((W[k >> 1u] >> ((k & 1u) * 16u)) & 0xffffu));` : 'Y[row * P.w + c] = W[k];'}
  }
}`,
      inputs: [weight, ids],
      outputs: [out],
      uniforms: [
        ['n', 'u32', n],
        ['w', 'u32', w],
        ['v', 'u32', V],
        ['off', 'i32', offset],
        ['fill', 'f32', opts.outside === 'zero' ? 0 : Number.NaN],
      ],
      workgroups: grid(n * LANES),
    });
  }
  return record(out, 'embedding', [weight, ids], (g) => {
    const dw = zeros([V, D]);
    if (n === 0 || D === 0) return [dw, null];
    const counts = zeros([V], 'i32');
    runKernel({
      key: 'embedding_counts',
      wgsl: () => `${storageDecl(0, 'I', 'i32', 'read')}
${storageDecl(1, 'CNT', 'atomic<i32>', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let id = I[gi] - P.off;
  if (id >= 0 && u32(id) < P.v) { atomicAdd(&CNT[u32(id)], 1); }
}`,
      inputs: [ids],
      outputs: [counts],
      uniforms: [
        ['n', 'u32', n],
        ['v', 'u32', V],
        ['off', 'i32', offset],
      ],
      workgroups: grid(n),
    });
    // next[p]: the next position with the same id (-1 at the end); head[p]: 1 on a first occurrence.
    const next = Tensor.empty([n], 'i32');
    const head = Tensor.empty([n], 'i32');
    runKernel({
      key: 'embedding_links',
      wgsl: () => `${storageDecl(0, 'I', 'i32', 'read')}
${storageDecl(1, 'CNT', 'i32', 'read')}
${storageDecl(2, 'NX', 'i32', 'read_write')}
${storageDecl(3, 'HD', 'i32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let raw = I[gi];
  let id = raw - P.off;
  // Out-of-range ids get no gradient (pass 3 skips them); an id seen once is its own chain.
  if (id < 0 || u32(id) >= P.v || CNT[u32(id)] == 1) {
    NX[gi] = -1;
    HD[gi] = 1;
    return;
  }
  var first = 1;
  for (var q = 0u; q < gi; q++) { if (I[q] == raw) { first = 0; break; } }
  var nx = -1;
  for (var q = gi + 1u; q < P.n; q++) { if (I[q] == raw) { nx = i32(q); break; } }
  NX[gi] = nx;
  HD[gi] = first;
}`,
      inputs: [ids, counts],
      outputs: [next, head],
      uniforms: [
        ['n', 'u32', n],
        ['v', 'u32', V],
        ['off', 'i32', offset],
      ],
      workgroups: grid(n),
    });
    counts.dispose();
    runKernel({
      key: 'embedding_scatter',
      wgsl: () => `${storageDecl(0, 'G', 'f32', 'read')}
${storageDecl(1, 'I', 'i32', 'read')}
${storageDecl(2, 'NX', 'i32', 'read')}
${storageDecl(3, 'HD', 'i32', 'read')}
${storageDecl(4, 'DW', 'f32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n * P.d) { return; }
  let p = gi / P.d;
  let c = gi % P.d;
  let id = I[p] - P.off;
  if (HD[p] == 0 || id < 0 || u32(id) >= P.v) { return; }
  var acc = 0.0;
  var q = i32(p);
  loop {
    acc += G[u32(q) * P.d + c];
    q = NX[q];
    if (q < 0) { break; }
  }
  DW[u32(id) * P.d + c] = acc;
}`,
      inputs: [g, ids, next, head],
      outputs: [dw],
      uniforms: [
        ['n', 'u32', n],
        ['d', 'u32', D],
        ['v', 'u32', V],
        ['off', 'i32', offset],
      ],
      workgroups: grid(n * D),
    });
    next.dispose();
    head.dispose();
    return [dw, null];
  });
}
