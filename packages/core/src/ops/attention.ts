import { record } from '../autograd.js';
import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { runKernel, storageDecl } from '../kernels/common.js';
import { ROW_WG, rowGrid, rowKernel } from '../kernels/rows.js';
import { getDevice } from '../runtime.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { matmul } from './matmul.js';
import { concat, reshape, sliceAxis } from './shape-ops.js';

export interface AttentionOptions {
  /** Query i (absolute position i + S - T) attends keys j <= i + S - T; T < S is the KV-cache case. */
  causal?: boolean;
  /** [B, S], f32 or i32: 1 = attend to that key, 0 = padding. */
  keyPaddingMask?: Tensor;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
}

/**
 * Masked score: the softmax of a row whose max is -FLT_MAX is defined as 0, and finite values keep the
 * kernel clear of inf arithmetic.
 */
const MASKED = '-3.4028234663852886e38';
const LOOP = `for (var j = lid; j < P.s; j += ${ROW_WG}u)`;

/**
 * Fused softmax(scores * scale + mask) over the key axis of scores [B, H, T, S], one workgroup per
 * query row. Key j is hidden from query i when causal and j > i + S - T, or when the padding mask is 0.
 * Fusing saves two [B,H,T,S] intermediates and their dispatches; backward needs only the probabilities.
 */
function maskedSoftmax(
  x: Tensor,
  dims: { H: number; T: number; S: number },
  scale: number,
  causal: boolean,
  mask?: Tensor,
): Tensor {
  const y = Tensor.empty(x.shape, 'f32');
  const rows = dims.S === 0 ? 0 : x.size / dims.S;
  if (rows > 0) {
    const mt = mask ? mask.dtype : 'none';
    runKernel({
      key: `attn_softmax:${mt}`,
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'X', 'f32', 'read')}
${mask ? storageDecl(1, 'M', mask.dtype, 'read') : ''}
${storageDecl(mask ? 2 : 1, 'Y', 'f32', 'read_write')}
PARAMS
fn score(row: u32, j: u32) -> f32 {
  let i = row % P.t;
  let b = row / (P.t * P.h);
  var hidden = P.causal != 0u && i32(j) > i32(i) + P.off;
  ${mask ? `hidden = hidden || M[b * P.s + j] == ${mask.dtype}(0);` : ''}
  return select(X[row * P.s + j] * P.scale, ${MASKED}, hidden);
}`,
          `  let base = row * P.s;
  var m = ${MASKED};
  ${LOOP} { m = max(m, score(row, j)); }
  m = wg_max(m, lid);
  var z = 0.0;
  ${LOOP} { z += exp(score(row, j) - m); }
  z = wg_sum(z, lid);
  let dead = m <= ${MASKED};
  ${LOOP} { let v = score(row, j); Y[base + j] = select(exp(v - m) / z, 0.0, dead || v <= ${MASKED}); }`,
        ),
      inputs: mask ? [x, mask] : [x],
      outputs: [y],
      uniforms: [
        ['rows', 'u32', rows],
        ['s', 'u32', dims.S],
        ['t', 'u32', dims.T],
        ['h', 'u32', dims.H],
        ['off', 'i32', dims.S - dims.T],
        ['causal', 'u32', causal ? 1 : 0],
        ['scale', 'f32', scale],
      ],
      workgroups: rowGrid(rows),
    });
  }
  return record(y, 'attn_softmax', [x], (g) => {
    // d(scores) = scale * y * (g - sum(g * y)); hidden keys have y = 0 and get 0.
    const dx = Tensor.empty(x.shape, 'f32');
    if (rows === 0) return [dx];
    runKernel({
      key: 'attn_softmax_bwd',
      wgsl: () =>
        rowKernel(
          `${storageDecl(0, 'Y', 'f32', 'read')}
${storageDecl(1, 'G', 'f32', 'read')}
${storageDecl(2, 'DX', 'f32', 'read_write')}
PARAMS`,
          `  let base = row * P.s;
  var acc = 0.0;
  ${LOOP} { acc += G[base + j] * Y[base + j]; }
  acc = wg_sum(acc, lid);
  ${LOOP} { DX[base + j] = P.scale * Y[base + j] * (G[base + j] - acc); }`,
        ),
      inputs: [y, g],
      outputs: [dx],
      uniforms: [
        ['rows', 'u32', rows],
        ['s', 'u32', dims.S],
        ['scale', 'f32', scale],
      ],
      workgroups: rowGrid(rows),
    });
    return [dx];
  });
}

/**
 * Scaled dot-product attention: q [B,Hq,T,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv] -> [B,Hq,T,Dv].
 *
 * Grouped-query attention without copying K/V: query heads hk*G .. hk*G+G-1 (G = Hq/Hkv) share kv
 * head hk and are contiguous in q, so q is viewed as [B, Hkv, G*T, D] and multiplied against k
 * directly; matmul's backward then sums the group's gradients into dK/dV. Scores and probabilities
 * are materialised ([B,Hq,T,S] each, O(T·S) memory per head, not a flash kernel); scale, mask and
 * softmax are one fused kernel. Query rows with every key hidden output 0 (and get zero gradients).
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    assertDType(t.dtype, ['f32'], `attention ${name}`);
    if (t.rank !== 4) throw new ShapeError(`attention: ${name} must be rank 4, got ${fmt(t.shape)}`);
  }
  const [B, Hq, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  const [Bv, Hv, Sv, Dv] = v.shape;
  if (Bk !== B || Bv !== B || Hv !== Hkv || Sv !== S || Dk !== D) {
    throw new ShapeError(
      `attention: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} do not match ([B,Hq,T,D], [B,Hkv,S,D], [B,Hkv,S,Dv])`,
    );
  }
  if (Hkv === 0 || Hq % Hkv !== 0)
    throw new ShapeError(`attention: ${Hq} query heads are not a multiple of ${Hkv} kv heads`);
  const mask = opts.keyPaddingMask;
  if (mask) {
    assertDType(mask.dtype, ['f32', 'i32'], 'attention keyPaddingMask');
    if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== S) {
      throw new ShapeError(`attention: keyPaddingMask must be [${B}, ${S}], got ${fmt(mask.shape)}`);
    }
  }
  const parts = attentionInParts(q, k, v, opts);
  if (parts) return parts;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const causal = opts.causal ?? false;
  const G = Hq / Hkv;

  const qg = reshape(q, [B, Hkv, G * T, D]);
  const raw = matmul(qg, k, { transB: true });
  const probs = maskedSoftmax(raw, { H: Hq, T, S }, scale, causal, mask);
  const og = matmul(probs, v);
  const out = reshape(og, [B, Hq, T, Dv]);
  // Without a tape nothing refers to the intermediates; with one, backward still reads them.
  if (!out.node) for (const t of [qg, raw, probs, og]) t.dispose();
  return out;
}

/**
 * The scores and probabilities ([B, Hq, T, S] floats) must each fit one storage binding. When they do
 * not, attention runs on parts that do: batch rows, else groups of kv heads (with their query heads),
 * else groups of the query heads sharing one kv head. Every (row, head) is independent, so the joined
 * output equals the whole one, and autograd flows through the slices and the concat. Returns null
 * when no split is needed.
 */
function attentionInParts(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor | null {
  const [B, Hq, T] = q.shape;
  const [, Hkv, S] = k.shape;
  const G = Hq / Hkv;
  const limit = getDevice().maxBindingBytes;
  const bytes = (rows: number, heads: number) => rows * heads * T * S * 4;
  if (bytes(B, Hq) <= limit) return null;
  if (bytes(1, 1) > limit) {
    throw new ShapeError(
      `attention: one head's ${T}×${S} scores exceed this adapter's storage binding limit (${limit} bytes); shorten the sequence`,
    );
  }
  const mask = opts.keyPaddingMask;
  // Split `size` entries of `axis` into parts of `step`; a kv-head group takes its G query heads.
  let axis: number;
  let step: number;
  let size: number;
  if (B > 1) {
    [axis, size, step] = [0, B, Math.max(1, Math.floor(limit / bytes(1, Hq)))];
  } else if (Hkv > 1) {
    [axis, size, step] = [1, Hkv, Math.max(1, Math.floor(limit / bytes(1, G)))];
  } else {
    [axis, size, step] = [1, Hq, Math.floor(limit / bytes(1, 1))];
  }
  const outs: Tensor[] = [];
  for (let a = 0; a < size; a += step) {
    const b = Math.min(size, a + step);
    const pieces: Tensor[] = [];
    const cut = (t: Tensor, from: number, to: number) => {
      const piece = sliceAxis(t, axis, from, to);
      pieces.push(piece);
      return piece;
    };
    let out: Tensor;
    if (axis === 0) {
      out = scaledDotProductAttention(cut(q, a, b), cut(k, a, b), cut(v, a, b), {
        ...opts,
        keyPaddingMask: mask && cut(mask, a, b),
      });
    } else if (Hkv > 1) {
      out = scaledDotProductAttention(cut(q, a * G, b * G), cut(k, a, b), cut(v, a, b), opts);
    } else {
      out = scaledDotProductAttention(cut(q, a, b), k, v, opts);
    }
    // Without a tape nothing refers to the slices once their part is computed.
    if (!out.node) for (const t of pieces) t.dispose();
    outs.push(out);
  }
  const joined = concat(outs, axis);
  if (!joined.node) for (const t of outs) t.dispose();
  return joined;
}
