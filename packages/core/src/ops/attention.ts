import { record } from '../autograd.js';
import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import {
  ATTN_WG,
  type AttnShape,
  attnBackwardKVWgsl,
  attnBackwardQWgsl,
  attnForwardWgsl,
  attnKey,
  attnUniforms,
} from '../kernels/attention.js';
import {
  attnBackwardKVSgWgsl,
  attnBackwardQSgWgsl,
  attnForwardSgWgsl,
} from '../kernels/attention-subgroup.js';
import { grid, runKernel } from '../kernels/common.js';
import { subgroupWidth } from '../kernels/rows.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';

export interface AttentionOptions {
  /** Query i (absolute position i + S - T) attends keys j <= i + S - T; T < S is the KV-cache case. */
  causal?: boolean;
  /** [B, S], f32 or i32: 1 = attend to that key, 0 = padding. */
  keyPaddingMask?: Tensor;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
}

/**
 * Scaled dot-product attention: q [B,Hq,T,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv] -> [B,Hq,T,Dv].
 *
 * Fused (see kernels/attention.ts): the [B,Hq,T,S] scores are never stored, so memory is O(rows)
 * beyond q, k, v and the output, causal rows skip their hidden keys, and the backward pass
 * recomputes probabilities from each row's log-sum-exp. Grouped-query attention reads kv head
 * h / (Hq/Hkv) for query head h without copying K/V; dK and dV sum over the group. Query rows with
 * every key hidden output 0 (and get zero gradients).
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
  const dims = {
    B,
    Hq,
    Hkv,
    T,
    S,
    causal: opts.causal ?? false,
    scale: opts.scale ?? 1 / Math.sqrt(D),
  };
  const sg = subgroupWidth();
  const shape: AttnShape = { D, Dv, mask: mask ? (mask.dtype as 'f32' | 'i32') : 'none', sg };
  // Subgroup kernels: one workgroup of sg lanes per block of sg rows of one head.
  const qGrid = sg ? grid(B * Hq * Math.ceil(T / sg) * sg, sg) : grid(B * Hq * T, ATTN_WG);
  const kvGrid = sg ? grid(B * Hkv * Math.ceil(S / sg) * sg, sg) : grid(B * Hkv * S, ATTN_WG);
  const uniforms = attnUniforms(dims);
  const maskIn = mask ? [mask] : [];
  const out = Tensor.empty([B, Hq, T, Dv], 'f32');
  const lse = Tensor.empty([B * Hq * T], 'f32');
  const rows = B * Hq * T;
  runKernel({
    key: attnKey('fwd', shape),
    wgsl: () => (sg ? attnForwardSgWgsl(shape) : attnForwardWgsl(shape)),
    inputs: [q, k, v, ...maskIn],
    outputs: [out, lse],
    uniforms,
    workgroups: qGrid,
  });
  const recorded = record(out, 'attention', [q, k, v], (g) => {
    const dq = Tensor.empty(q.shape, 'f32');
    const dk = Tensor.empty(k.shape, 'f32');
    const dv = Tensor.empty(v.shape, 'f32');
    const delta = Tensor.empty([rows], 'f32');
    runKernel({
      key: attnKey('bwd_q', shape),
      wgsl: () => (sg ? attnBackwardQSgWgsl(shape) : attnBackwardQWgsl(shape)),
      inputs: [q, k, v, ...maskIn, g, lse, out],
      outputs: [dq, delta],
      uniforms,
      workgroups: qGrid,
    });
    runKernel({
      key: attnKey('bwd_kv', shape),
      wgsl: () => (sg ? attnBackwardKVSgWgsl(shape) : attnBackwardKVWgsl(shape)),
      inputs: [q, k, v, ...maskIn, g, lse, delta],
      outputs: [dk, dv],
      uniforms,
      workgroups: kvGrid,
    });
    delta.dispose();
    return [dq, dk, dv];
  });
  if (!recorded.node) lse.dispose();
  return recorded;
}
