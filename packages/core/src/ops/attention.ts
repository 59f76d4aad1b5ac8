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
  BWD_KV_DECLS,
  BWD_Q_DECLS,
  FWD_DECLS,
  headsFirst,
  type RowLayout,
  rowUniforms,
  timeFirst,
} from '../kernels/attention.js';
import {
  attnBackwardKVSgWgsl,
  attnBackwardQSgWgsl,
  attnForwardSgWgsl,
  attnKeyRows,
  attnRows,
} from '../kernels/attention-subgroup.js';
import { grid, packUniforms, type UniformField } from '../kernels/common.js';
import { matmulPath, SCRATCH_ROLES } from '../kernels/matmul/run-texture.js';
import { TEX_WIDTH } from '../kernels/matmul/texture.js';
import { subgroupWidth } from '../kernels/rows.js';
import { record } from '../record.js';
import { getDevice } from '../runtime.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';

/** Options of {@link scaledDotProductAttention}; all but `axes` also apply to {@link packedQkvAttention}. */
export interface AttentionOptions {
  /** Query i (absolute position i + S - T) attends keys j <= i + S - T; T < S is the KV-cache case. */
  causal?: boolean;
  /** [B, S], f32 or i32: non-zero = attend to that key, 0 = padding. Combines with `causal`. */
  keyPaddingMask?: Tensor;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
  /**
   * Axis order of q, k, v and the output: 'bhtd' (default) is [B, H, T, D]; 'bthd' is [B, T, H, D],
   * the projections' own output reshaped, so no permute is needed on either side.
   */
  axes?: 'bhtd' | 'bthd';
}

/**
 * Scaled dot-product attention: q [B,Hq,T,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv] -> [B,Hq,T,Dv]
 * (with axes 'bthd': q [B,T,Hq,D], k [B,S,Hkv,D], v [B,S,Hkv,Dv] -> [B,T,Hq,Dv]).
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
  const tf = opts.axes === 'bthd';
  const dims = (t: Tensor) => (tf ? [t.shape[0], t.shape[2], t.shape[1], t.shape[3]] : t.shape);
  const [B, Hq, T, D] = dims(q);
  const [Bk, Hkv, S, Dk] = dims(k);
  const [Bv, Hv, Sv, Dv] = dims(v);
  if (Bk !== B || Bv !== B || Hv !== Hkv || Sv !== S || Dk !== D) {
    const order = tf ? '[B,T,Hq,D], [B,S,Hkv,D], [B,S,Hkv,Dv]' : '[B,Hq,T,D], [B,Hkv,S,D], [B,Hkv,S,Dv]';
    throw new ShapeError(
      `attention: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} do not match (${order})`,
    );
  }
  const rows = (H: number, L: number) => (tf ? timeFirst(H, L) : headsFirst(H, L));
  return fusedAttention({
    B,
    Hq,
    Hkv,
    T,
    S,
    D,
    Dv,
    inputs: [q, k, v],
    rows: { q: rows(Hq, T), k: rows(Hkv, S), v: rows(Hkv, S), o: rows(Hq, T) },
    outShape: tf ? [B, T, Hq, Dv] : [B, Hq, T, Dv],
    opts,
  });
}

/**
 * Options of {@link packedQkvAttention}: the head counts that split the packed last dim, plus the
 * mask and scale options of {@link AttentionOptions}.
 */
export interface PackedAttentionOptions extends Omit<AttentionOptions, 'axes'> {
  /** Query heads. */
  heads: number;
  /** Key/value heads (default: heads); must divide `heads` (grouped-query attention), else {@link ShapeError}. */
  kvHeads?: number;
}

/**
 * Attention straight from a fused q|k|v projection: qkv [B, T, (Hq + 2·Hkv)·D], each position's
 * row holding its Hq query heads, then Hkv key heads, then Hkv value heads -> [B, T, Hq·D]. Same
 * kernels as scaledDotProductAttention (self-attention, S = T), reading the three parts in place:
 * no slices, no head permutes, and one [B, T, (Hq + 2·Hkv)·D] gradient.
 */
export function packedQkvAttention(qkv: Tensor, opts: PackedAttentionOptions): Tensor {
  assertDType(qkv.dtype, ['f32'], 'attention qkv');
  const Hq = opts.heads;
  const Hkv = opts.kvHeads ?? Hq;
  const R = Hq + 2 * Hkv;
  if (qkv.rank !== 3 || !(Hq > 0) || !(Hkv > 0) || qkv.shape[2] % R !== 0) {
    throw new ShapeError(`attention: packed qkv must be [B, T, (${Hq} + 2·${Hkv})·D], got ${fmt(qkv.shape)}`);
  }
  const [B, T, W] = qkv.shape;
  const D = W / R;
  return fusedAttention({
    B,
    Hq,
    Hkv,
    T,
    S: T,
    D,
    Dv: D,
    inputs: [qkv],
    rows: { q: timeFirst(R, T), k: timeFirst(R, T, Hq), v: timeFirst(R, T, Hq + Hkv), o: timeFirst(Hq, T) },
    outShape: [B, T, Hq * D],
    opts,
  });
}

interface FusedAttention {
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  Dv: number;
  /** q, k, v; or one packed tensor holding all three. */
  inputs: [Tensor, Tensor, Tensor] | [Tensor];
  rows: { q: RowLayout; k: RowLayout; v: RowLayout; o: RowLayout };
  outShape: number[];
  opts: Omit<AttentionOptions, 'axes'>;
}

/** Each pass's bindings and kernels: the subgroup one and the per-lane one. */
const PASSES = {
  fwd: { decls: FWD_DECLS, sg: attnForwardSgWgsl, lanes: attnForwardWgsl },
  bwd_q: { decls: BWD_Q_DECLS, sg: attnBackwardQSgWgsl, lanes: attnBackwardQWgsl },
  bwd_kv: { decls: BWD_KV_DECLS, sg: attnBackwardKVSgWgsl, lanes: attnBackwardKVWgsl },
};

/**
 * Records one attention pass on `operands`, bound in the order of its declarations (inputs, then
 * outputs). The read operands named in `shape.tex` (two distinct tensors at most) are copied into
 * the matmul's scratch textures and bound as textures; the uniforms follow the operands.
 */
function runPass(
  kind: keyof typeof PASSES,
  shape: AttnShape,
  operands: readonly Tensor[],
  uniforms: readonly UniformField[],
  workgroups: [number, number, number],
): void {
  const dev = getDevice();
  const pass = PASSES[kind];
  const names = pass.decls(shape).map((d) => d.name);
  const packed = packUniforms(uniforms);
  const buffers: GPUBufferBinding[] = [];
  const bufferSlots: number[] = [];
  const textures: Array<{ binding: number; texture: GPUTexture }> = [];
  const copied = new Map<Tensor, GPUTexture>();
  operands.forEach((t, i) => {
    if (!shape.tex?.includes(names[i])) {
      buffers.push(t.binding());
      bufferSlots.push(i);
      return;
    }
    let texture = copied.get(t);
    if (!texture) {
      const texels = t.size / 4;
      texture = dev.storageTexture(SCRATCH_ROLES[copied.size], TEX_WIDTH, Math.ceil(texels / TEX_WIDTH));
      dev.copyToTexture(t.buffer, 0, texture, texels);
      copied.set(t, texture);
    }
    textures.push({ binding: i, texture });
  });
  const wgsl = () => (shape.sg ? pass.sg(shape) : pass.lanes(shape));
  dev.dispatch({
    key: attnKey(kind, shape),
    wgsl: () => wgsl().replace('PARAMS', packed.struct.replace('BINDING', String(operands.length))),
    buffers,
    layout: { buffers: bufferSlots, uniforms: operands.length },
    uniforms: packed.data,
    textures,
    workgroups,
  });
}

/**
 * Whether the subgroup kernels read the rows they broadcast from textures: on CPU adapters where
 * the matmul packs its operands into textures, for vec4 rows whose tensors fit a scratch texture.
 */
function texturesSuit(shape: AttnShape, tensors: readonly Tensor[]): boolean {
  if (!shape.sg || shape.D % 4 !== 0 || shape.Dv % 4 !== 0 || matmulPath() !== 'textures') return false;
  const rows = getDevice().limits.maxTextureDimension2D;
  return tensors.every((t) => t.size / 4 <= TEX_WIDTH * rows);
}

/** The forward pass and its backward on any row layout; gradients take their inputs' shapes. */
function fusedAttention(a: FusedAttention): Tensor {
  const { B, Hq, Hkv, T, S, opts } = a;
  if (Hkv === 0 || Hq % Hkv !== 0)
    throw new ShapeError(`attention: ${Hq} query heads are not a multiple of ${Hkv} kv heads`);
  const mask = opts.keyPaddingMask;
  if (mask) {
    assertDType(mask.dtype, ['f32', 'i32'], 'attention keyPaddingMask');
    if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== S) {
      throw new ShapeError(`attention: keyPaddingMask must be [${B}, ${S}], got ${fmt(mask.shape)}`);
    }
  }
  const packed = a.inputs.length === 1;
  const [q, k, v]: Tensor[] = packed ? [a.inputs[0], a.inputs[0], a.inputs[0]] : a.inputs;
  const sg = subgroupWidth();
  const shape: AttnShape = {
    D: a.D,
    Dv: a.Dv,
    mask: mask ? (mask.dtype as 'f32' | 'i32') : 'none',
    sg,
    packed,
  };
  // Subgroup kernels: one workgroup of sg lanes per block of sg·R rows of one head.
  const R = attnRows(shape);
  const RK = attnKeyRows(shape);
  const qGrid = sg ? grid(B * Hq * Math.ceil(T / (sg * R)) * sg, sg) : grid(B * Hq * T, ATTN_WG);
  const kvGrid = sg ? grid(B * Hkv * Math.ceil(S / (sg * RK)) * sg, sg) : grid(B * Hkv * S, ATTN_WG);
  const uniforms = [
    ...attnUniforms({
      B,
      Hq,
      Hkv,
      T,
      S,
      causal: opts.causal ?? false,
      scale: opts.scale ?? 1 / Math.sqrt(a.D),
    }),
    ...rowUniforms(a.rows),
  ];
  const maskIn = mask ? [mask] : [];
  const out = Tensor.empty(a.outShape, 'f32');
  const lse = Tensor.empty([B * Hq * T], 'f32');
  const rows = B * Hq * T;
  // The query passes broadcast key and value rows, the key/value pass query and dO rows.
  const byKeys: AttnShape = { ...shape, tex: texturesSuit(shape, [k, v]) ? ['K', 'V'] : [] };
  runPass('fwd', byKeys, [q, k, v, ...maskIn, out, lse], uniforms, qGrid);
  const recorded = record(out, 'attention', a.inputs, (g) => {
    const dq = Tensor.empty(q.shape, 'f32');
    const dk = packed ? dq : Tensor.empty(k.shape, 'f32');
    const dv = packed ? dq : Tensor.empty(v.shape, 'f32');
    const delta = Tensor.empty([rows], 'f32');
    runPass('bwd_q', byKeys, [q, k, v, ...maskIn, g, lse, out, dq, delta], uniforms, qGrid);
    const byQueries: AttnShape = { ...shape, tex: texturesSuit(shape, [q, g]) ? ['Q', 'DO'] : [] };
    const dkv = packed ? [dk] : [dk, dv];
    runPass('bwd_kv', byQueries, [q, k, v, ...maskIn, g, lse, delta, ...dkv], uniforms, kvGrid);
    delta.dispose();
    return packed ? [dq] : [dq, dk, dv];
  });
  if (!recorded.node) lse.dispose();
  return recorded;
}
