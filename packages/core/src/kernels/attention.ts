/**
 * WGSL for fused ("flash") scaled dot-product attention: scores and probabilities are never stored.
 *
 * Forward: one invocation per query row streams over its visible keys with an online softmax
 * (running max m, running sum l, output accumulator rescaled when m grows) and writes the output
 * row and the row's log-sum-exp L = m + log(l) for the backward pass. Causal rows stop at their
 * last visible key, so the masked half of the work is skipped.
 *
 * Backward recomputes each probability from L: p = exp(s - L). One pass per query row gives
 * delta = dO·O and dQ = scale · Σ_j p (dO·V_j - delta) K_j; a second pass per key row gives
 * dV = Σ_i p dO_i and dK = scale · Σ_i p (dO_i·V - delta_i) Q_i over the query rows (of every
 * query head in its GQA group) that see the key. Neither needs atomics.
 *
 * A row that sees no key outputs 0 and stores L = FLT_MAX, so every recomputed p is exp(-huge) = 0.
 * Head sizes are compile-time constants (part of the pipeline key); q and the accumulators live in
 * per-invocation arrays of vec4 when both head sizes are multiples of 4, of scalars otherwise.
 */
import { storageDecl } from './common.js';

export const ATTN_WG = 64;
export const FLT_MAX = '3.4028234663852886e38';

export interface AttnShape {
  D: number;
  Dv: number;
  /** 'none' or the key padding mask's dtype. */
  mask: 'none' | 'f32' | 'i32';
  /** Subgroup width W of the broadcast kernels (attention-subgroup.ts); 0 for the per-lane kernels here. */
  sg: number;
}

/** Lanes per element of the per-invocation arrays: 4 (vec4) when both head sizes allow it. */
function width(s: AttnShape): 1 | 4 {
  return s.D % 4 === 0 && s.Dv % 4 === 0 ? 4 : 1;
}

export function attnKey(kind: string, s: AttnShape): string {
  return `attn_${kind}:${s.D}:${s.Dv}:${s.mask}:${s.sg}`;
}

/** Uniform fields every attention pass reads. */
export function attnUniforms(d: {
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  S: number;
  causal: boolean;
  scale: number;
}): Array<readonly [string, 'u32' | 'i32' | 'f32', number]> {
  return [
    ['b', 'u32', d.B],
    ['hq', 'u32', d.Hq],
    ['g', 'u32', d.Hq / d.Hkv],
    ['t', 'u32', d.T],
    ['s', 'u32', d.S],
    // Query t (absolute position t + S - T) sees keys j <= t + off when causal.
    ['off', 'i32', d.S - d.T],
    ['causal', 'u32', d.causal ? 1 : 0],
    ['scale', 'f32', d.scale],
  ];
}

export interface Decl {
  name: string;
  /** Elements per row, in floats. */
  kind: 'qk' | 'v' | 'row' | 'mask';
  access: 'read' | 'read_write';
}

export function prelude(s: AttnShape, decls: Decl[]): { src: string; T: string; nq: number; nv: number } {
  const w = width(s);
  const T = w === 4 ? 'vec4<f32>' : 'f32';
  const lines = decls.map((d, i) =>
    storageDecl(
      i,
      d.name,
      d.kind === 'mask' ? (s.mask === 'none' ? 'f32' : s.mask) : d.kind === 'row' ? 'f32' : T,
      d.access,
    ),
  );
  const hidden = s.mask === 'none' ? 'false' : `M[b * P.s + j] == ${s.mask}(0)`;
  return {
    src: `${s.sg ? 'enable subgroups;\n' : ''}${lines.join('\n')}
PARAMS
const NQ: u32 = ${s.D / w}u;
const NV: u32 = ${s.Dv / w}u;
fn dotv(a: ${T}, b: ${T}) -> f32 { return ${w === 4 ? 'dot(a, b)' : 'a * b'}; }
fn key_hidden(b: u32, j: u32) -> bool { return ${hidden}; }
/** Keys [0, end) visible to query t by the causal rule. */
fn key_end(t: u32) -> u32 {
  if (P.causal == 0u) { return P.s; }
  return u32(clamp(i32(t) + P.off + 1, 0, i32(P.s)));
}
/** First query row that sees key j by the causal rule. */
fn query_start(j: u32) -> u32 {
  if (P.causal == 0u) { return 0u; }
  return u32(clamp(i32(j) - P.off, 0, i32(P.t)));
}
`,
    T,
    nq: s.D / w,
    nv: s.Dv / w,
  };
}

const MAIN = `@compute @workgroup_size(${ATTN_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.y * nwg.x + wid.x) * ${ATTN_WG}u + lid;`;

/** Forward: Q, K, V, [M] -> O, L. One invocation per query row r = (b·Hq + h)·T + t. */
export function attnForwardWgsl(s: AttnShape): string {
  const { src, T } = prelude(s, FWD_DECLS(s));
  return `${src}
${MAIN}
  if (gi >= P.b * P.hq * P.t) { return; }
  let t = gi % P.t;
  let bh = gi / P.t;
  let row = gi;
${QUERY_ROW(T)}
  var acc: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { acc[d] = ${T}(0.0); }
  var m = -${FLT_MAX};
  var l = 0.0;
  let end = key_end(t);
  for (var j = 0u; j < end; j++) {
    if (key_hidden(b, j)) { continue; }
    let kb = (kvh * P.s + j) * NQ;
    var sc = 0.0;
    for (var d = 0u; d < NQ; d++) { sc += dotv(q[d], K[kb + d]); }
    if (sc > m) {
      let c = exp(m - sc);
      l *= c;
      for (var d = 0u; d < NV; d++) { acc[d] *= c; }
      m = sc;
    }
    let p = exp(sc - m);
    l += p;
    let vb = (kvh * P.s + j) * NV;
    for (var d = 0u; d < NV; d++) { acc[d] += p * V[vb + d]; }
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var d = 0u; d < NV; d++) { O[gi * NV + d] = acc[d] * inv; }
  L[gi] = select(${FLT_MAX}, m + log(l), l > 0.0);
}`;
}

/** Bindings of the forward pass. */
export const FWD_DECLS = (s: AttnShape): Decl[] => [
  { name: 'Q', kind: 'qk', access: 'read' },
  { name: 'K', kind: 'qk', access: 'read' },
  { name: 'V', kind: 'v', access: 'read' },
  ...(s.mask === 'none' ? [] : [{ name: 'M', kind: 'mask', access: 'read' } as Decl]),
  { name: 'O', kind: 'v', access: 'read_write' },
  { name: 'L', kind: 'row', access: 'read_write' },
];

/** Batch row, kv head and the pre-scaled q of query row `row` of head `bh` (b·Hq + h). */
export const QUERY_ROW = (T: string) => `  let b = bh / P.hq;
  let kvh = b * (P.hq / P.g) + (bh % P.hq) / P.g;
  var q: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { q[d] = Q[row * NQ + d] * P.scale; }`;

export const BWD_INPUTS = (s: AttnShape): Decl[] => [
  { name: 'Q', kind: 'qk', access: 'read' },
  { name: 'K', kind: 'qk', access: 'read' },
  { name: 'V', kind: 'v', access: 'read' },
  ...(s.mask === 'none' ? [] : [{ name: 'M', kind: 'mask', access: 'read' } as Decl]),
  { name: 'DO', kind: 'v', access: 'read' },
  { name: 'L', kind: 'row', access: 'read' },
];

/** Backward, per query row: Q, K, V, [M], dO, L, O -> dQ, delta (= dO·O per row). */
export function attnBackwardQWgsl(s: AttnShape): string {
  const decls: Decl[] = [
    ...BWD_INPUTS(s),
    { name: 'O', kind: 'v', access: 'read' },
    { name: 'DQ', kind: 'qk', access: 'read_write' },
    { name: 'DELTA', kind: 'row', access: 'read_write' },
  ];
  const { src, T } = prelude(s, decls);
  return `${src}
${MAIN}
  if (gi >= P.b * P.hq * P.t) { return; }
  let t = gi % P.t;
  let bh = gi / P.t;
  let row = gi;
${QUERY_ROW(T)}
  var go: array<${T}, NV>;
  var delta = 0.0;
  for (var d = 0u; d < NV; d++) { go[d] = DO[gi * NV + d]; delta += dotv(go[d], O[gi * NV + d]); }
  DELTA[gi] = delta;
  var dq: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { dq[d] = ${T}(0.0); }
  let lse = L[gi];
  let end = key_end(t);
  for (var j = 0u; j < end; j++) {
    if (key_hidden(b, j)) { continue; }
    let kb = (kvh * P.s + j) * NQ;
    var sc = 0.0;
    for (var d = 0u; d < NQ; d++) { sc += dotv(q[d], K[kb + d]); }
    let p = exp(sc - lse);
    let vb = (kvh * P.s + j) * NV;
    var dp = 0.0;
    for (var d = 0u; d < NV; d++) { dp += dotv(go[d], V[vb + d]); }
    let ds = p * (dp - delta) * P.scale;
    for (var d = 0u; d < NQ; d++) { dq[d] += ds * K[kb + d]; }
  }
  for (var d = 0u; d < NQ; d++) { DQ[gi * NQ + d] = dq[d]; }
}`;
}

/** Backward, per key row r = (b·Hkv + kvh)·S + j: Q, K, V, [M], dO, L, delta -> dK, dV. */
export function attnBackwardKVWgsl(s: AttnShape): string {
  const decls: Decl[] = [
    ...BWD_INPUTS(s),
    { name: 'DELTA', kind: 'row', access: 'read' },
    { name: 'DK', kind: 'qk', access: 'read_write' },
    { name: 'DV', kind: 'v', access: 'read_write' },
  ];
  const { src, T } = prelude(s, decls);
  return `${src}
${MAIN}
  let hkv = P.hq / P.g;
  if (gi >= P.b * hkv * P.s) { return; }
  let j = gi % P.s;
  let bkv = gi / P.s;
  let b = bkv / hkv;
  var k: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { k[d] = K[gi * NQ + d]; }
  var v: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { v[d] = V[gi * NV + d]; }
  var dk: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { dk[d] = ${T}(0.0); }
  var dv: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { dv[d] = ${T}(0.0); }
  if (!key_hidden(b, j)) {
    let first = query_start(j);
    // Query heads (bkv % hkv)·G .. +G-1 of batch row b read this kv head.
    let h0 = b * P.hq + (bkv % hkv) * P.g;
    for (var h = h0; h < h0 + P.g; h++) {
      for (var t = first; t < P.t; t++) {
        let r = h * P.t + t;
        let qb = r * NQ;
        var sc = 0.0;
        for (var d = 0u; d < NQ; d++) { sc += dotv(Q[qb + d], k[d]); }
        let p = exp(sc * P.scale - L[r]);
        let ob = r * NV;
        var dp = 0.0;
        for (var d = 0u; d < NV; d++) { let g = DO[ob + d]; dv[d] += p * g; dp += dotv(g, v[d]); }
        let ds = p * (dp - DELTA[r]) * P.scale;
        for (var d = 0u; d < NQ; d++) { dk[d] += ds * Q[qb + d]; }
      }
    }
  }
  for (var d = 0u; d < NQ; d++) { DK[gi * NQ + d] = dk[d]; }
  for (var d = 0u; d < NV; d++) { DV[gi * NV + d] = dv[d]; }
}`;
}
