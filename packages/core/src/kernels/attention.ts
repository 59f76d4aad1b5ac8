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
 * Rows are addressed through strides (rowUniforms): row (b, h, t) of Q, K, V or O starts at
 * row off + b·sb + h·sh + t·st, counted in head-size rows, so the kernels read heads-first
 * [B, H, T, D] tensors, time-first [B, T, H, D] projection outputs and a packed [B, T, (Hq + 2·Hkv)·D]
 * q|k|v projection alike, with no permute or slice copies. The log-sum-exp and delta rows are dense
 * in (b, h, t) order.
 *
 * A row that sees no key outputs 0 and stores L = FLT_MAX, so every recomputed p is exp(-huge) = 0.
 * Head sizes are compile-time constants (part of the pipeline key); q and the accumulators live in
 * per-invocation arrays of vec4 when both head sizes are multiples of 4, of scalars otherwise.
 */
import { storageDecl } from './common.js';
import { LIN } from './matmul/texture.js';

export const ATTN_WG = 64;
export const FLT_MAX = '3.4028234663852886e38';

export interface AttnShape {
  D: number;
  Dv: number;
  /** 'none' or the key padding mask's dtype. */
  mask: 'none' | 'f32' | 'i32';
  /** Subgroup width W of the broadcast kernels (attention-subgroup.ts); 0 for the per-lane kernels here. */
  sg: number;
  /**
   * q, k and v are one packed tensor (and so are their gradients): the key/value backward pass
   * then writes dK and dV through one binding, since a buffer may not be bound writable twice.
   */
  packed: boolean;
  /**
   * Read-only row operands (by binding name: 'Q', 'K', 'V', 'DO') bound as storage textures that
   * hold the tensor's vec4s in order (texel i at lin(i), as the matmul's packed operands), for
   * vec4 rows only. On a CPU adapter a texel load is one SIMD call for all lanes, cheaper than a
   * buffer load at per-lane addresses; the subgroup kernels read the rows they broadcast that way.
   */
  tex?: readonly string[];
}

/** Where the rows of one operand live: row (b, h, t) starts at row off + b·sb + h·sh + t·st. */
export interface RowLayout {
  off: number;
  sb: number;
  sh: number;
  st: number;
}

/** Heads-first [B, H, T, ·] rows. */
export const headsFirst = (H: number, T: number): RowLayout => ({ off: 0, sb: H * T, sh: T, st: 1 });
/** Time-first [B, T, R, ·] rows, heads at R-row offset `off` (R = H, or Hq + 2·Hkv when packed). */
export const timeFirst = (R: number, T: number, off = 0): RowLayout => ({ off, sb: T * R, sh: 1, st: R });

/** Lanes per element of the per-invocation arrays: 4 (vec4) when both head sizes allow it. */
function width(s: AttnShape): 1 | 4 {
  return s.D % 4 === 0 && s.Dv % 4 === 0 ? 4 : 1;
}

export function attnKey(kind: string, s: AttnShape): string {
  return `attn_${kind}:${s.D}:${s.Dv}:${s.mask}:${s.sg}${s.packed ? ':packed' : ''}${s.tex?.length ? `:tex${s.tex.join('')}` : ''}`;
}

type Uniform = readonly [string, 'u32' | 'i32' | 'f32', number];

/** Row strides of q, k, v and the output (dO has the output's, dQ/dK/dV their inputs'). */
export function rowUniforms(l: { q: RowLayout; k: RowLayout; v: RowLayout; o: RowLayout }): Uniform[] {
  return (['q', 'k', 'v', 'o'] as const).flatMap((n) =>
    (['off', 'sb', 'sh', 'st'] as const).map((f): Uniform => [`${n}_${f}`, 'u32', l[n][f]]),
  );
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
}): Uniform[] {
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

/** Bindings of each pass, in binding order. */
const MASK = (s: AttnShape): Decl[] =>
  s.mask === 'none' ? [] : [{ name: 'M', kind: 'mask', access: 'read' }];
export const FWD_DECLS = (s: AttnShape): Decl[] => [
  { name: 'Q', kind: 'qk', access: 'read' },
  { name: 'K', kind: 'qk', access: 'read' },
  { name: 'V', kind: 'v', access: 'read' },
  ...MASK(s),
  { name: 'O', kind: 'v', access: 'read_write' },
  { name: 'L', kind: 'row', access: 'read_write' },
];
const BWD_INPUTS = (s: AttnShape): Decl[] => [
  { name: 'Q', kind: 'qk', access: 'read' },
  { name: 'K', kind: 'qk', access: 'read' },
  { name: 'V', kind: 'v', access: 'read' },
  ...MASK(s),
  { name: 'DO', kind: 'v', access: 'read' },
  { name: 'L', kind: 'row', access: 'read' },
];
export const BWD_Q_DECLS = (s: AttnShape): Decl[] => [
  ...BWD_INPUTS(s),
  { name: 'O', kind: 'v', access: 'read' },
  { name: 'DQ', kind: 'qk', access: 'read_write' },
  { name: 'DELTA', kind: 'row', access: 'read_write' },
];
export const BWD_KV_DECLS = (s: AttnShape): Decl[] => [
  ...BWD_INPUTS(s),
  { name: 'DELTA', kind: 'row', access: 'read' },
  { name: 'DK', kind: 'qk', access: 'read_write' },
  ...(s.packed ? [] : [{ name: 'DV', kind: 'v', access: 'read_write' } as const]),
];

/** Storage declarations and the helpers every pass uses; T is the element type of the row arrays. */
export function prelude(s: AttnShape, decls: Decl[]): { src: string; T: string } {
  const w = width(s);
  const T = w === 4 ? 'vec4<f32>' : 'f32';
  const tex = new Set(w === 4 ? (s.tex ?? []) : []);
  const lines = decls.map((d, i) =>
    tex.has(d.name)
      ? `@group(0) @binding(${i}) var ${d.name}: texture_storage_2d<rgba32float, read>;`
      : storageDecl(
          i,
          d.name,
          d.kind === 'mask' ? (s.mask === 'none' ? 'f32' : s.mask) : d.kind === 'row' ? 'f32' : T,
          d.access,
        ),
  );
  // load_X(i): element i (a vec4 or a float) of each read row operand X, from its buffer or texture.
  const loaders = decls
    .filter((d) => (d.kind === 'qk' || d.kind === 'v') && d.access === 'read')
    .map(
      (d) =>
        `fn load_${d.name}(i: u32) -> ${T} { return ${tex.has(d.name) ? `textureLoad(${d.name}, lin(i))` : `${d.name}[i]`}; }`,
    );
  if (tex.size > 0) loaders.unshift(LIN);
  const hidden = s.mask === 'none' ? 'false' : `M[b * P.s + j] == ${s.mask}(0)`;
  return {
    src: `${s.sg ? 'enable subgroups;\n' : ''}${lines.join('\n')}
PARAMS
${loaders.join('\n')}
const NQ: u32 = ${s.D / w}u;
const NV: u32 = ${s.Dv / w}u;
fn dotv(a: ${T}, b: ${T}) -> f32 { return ${w === 4 ? 'dot(a, b)' : 'a * b'}; }
/** First element of query/output row t of head bh = b·Hq + h, and of key/value row j of kv head bkv = b·Hkv + h. */
fn q_at(bh: u32, t: u32) -> u32 { return (P.q_off + (bh / P.hq) * P.q_sb + (bh % P.hq) * P.q_sh + t * P.q_st) * NQ; }
fn o_at(bh: u32, t: u32) -> u32 { return (P.o_off + (bh / P.hq) * P.o_sb + (bh % P.hq) * P.o_sh + t * P.o_st) * NV; }
fn k_at(bkv: u32, j: u32) -> u32 {
  let hkv = P.hq / P.g;
  return (P.k_off + (bkv / hkv) * P.k_sb + (bkv % hkv) * P.k_sh + j * P.k_st) * NQ;
}
fn v_at(bkv: u32, j: u32) -> u32 {
  let hkv = P.hq / P.g;
  return (P.v_off + (bkv / hkv) * P.v_sb + (bkv % hkv) * P.v_sh + j * P.v_st) * NV;
}
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
  };
}

/**
 * WGSL snippets both kernel families (per-lane here, subgroup in attention-subgroup.ts) are built
 * from. They differ only in how a row of the other side is read: `at(d)` gives element d of it.
 */
type At = (d: string) => string;

/** A zeroed per-invocation array. */
const zeros = (name: string, T: string, n: 'NQ' | 'NV') =>
  `  var ${name}: array<${T}, ${n}>;
  for (var d = 0u; d < ${n}; d++) { ${name}[d] = ${T}(0.0); }`;

/** Batch row and kv head of query head `bh` (b·Hq + h). */
export const queryHead = `  let b = bh / P.hq;
  let kvh = b * (P.hq / P.g) + (bh % P.hq) / P.g;`;

/**
 * The pre-scaled q of query row `t` of head `bh`. The per-row snippets below name their state with
 * suffix `r`, so a lane can hold several rows (q0, q1, ..); the per-lane kernels use none.
 */
export const queryQ = (T: string, r = '', t = 't') => `  var q${r}: array<${T}, NQ>;
  let qb${r} = q_at(bh, ${t});
  for (var d = 0u; d < NQ; d++) { q${r}[d] = load_Q(qb${r} + d) * P.scale; }`;

/** Forward state: output accumulator, running max and sum. */
export const fwdState = (T: string, r = '') => `${zeros(`acc${r}`, T, 'NV')}
  var m${r} = -${FLT_MAX};
  var l${r} = 0.0;`;

/**
 * Forward, one key: score sc = q·k, then the online-softmax update by `sv` (the score, or -FLT_MAX
 * for a key the row may not see) with probability `p`.
 */
export const fwdKey = (k: At, v: At, sv: string, p: string) => `    var sc = 0.0;
    for (var d = 0u; d < NQ; d++) { sc += dotv(q[d], ${k('d')}); }
    let sv = ${sv};
    if (sv > m) {
      let c = exp(m - sv);
      l *= c;
      for (var d = 0u; d < NV; d++) { acc[d] *= c; }
      m = sv;
    }
    let p = ${p};
    l += p;
    for (var d = 0u; d < NV; d++) { acc[d] += p * ${v('d')}; }`;

/** Stores the output of query row `t` (row index `row` of L). */
export const fwdStore = (
  r = '',
  t = 't',
  row = 'row',
) => `  let inv${r} = select(0.0, 1.0 / l${r}, l${r} > 0.0);
  let ob${r} = o_at(bh, ${t});
  for (var d = 0u; d < NV; d++) { O[ob${r} + d] = acc${r}[d] * inv${r}; }
  L[${row}] = select(${FLT_MAX}, m${r} + log(l${r}), l${r} > 0.0);`;

/** Backward (dQ) state of query row `t` (row index `row`): its dO, delta = dO·O, dQ and log-sum-exp. */
export const bwdQState = (T: string, r = '', t = 't', row = 'row') => `  var go${r}: array<${T}, NV>;
  var delta${r} = 0.0;
  let ob${r} = o_at(bh, ${t});
  for (var d = 0u; d < NV; d++) { go${r}[d] = load_DO(ob${r} + d); delta${r} += dotv(go${r}[d], load_O(ob${r} + d)); }
${zeros(`dq${r}`, T, 'NQ')}
  let lse${r} = L[${row}];`;

/** Backward (dQ), one key with recomputed probability `p` (sc = q·k is in scope before it). */
export const bwdQKey = (k: At, v: At, p: string, r = '') => `    var sc = 0.0;
    for (var d = 0u; d < NQ; d++) { sc += dotv(q${r}[d], ${k('d')}); }
    let p = ${p};
    var dp = 0.0;
    for (var d = 0u; d < NV; d++) { dp += dotv(go${r}[d], ${v('d')}); }
    let ds = p * (dp - delta${r}) * P.scale;
    for (var d = 0u; d < NQ; d++) { dq${r}[d] += ds * ${k('d')}; }`;

export const bwdQStore = (r = '', row = 'row') => `  DELTA[${row}] = delta${r};
  for (var d = 0u; d < NQ; d++) { DQ[qb${r} + d] = dq${r}[d]; }`;

/** Backward (dK, dV) state of key row `j` of kv head bkv: its k and v, zeroed dK and dV. */
export const bwdKVState = (T: string, r = '', j = 'j') => `  let kb${r} = k_at(bkv, ${j});
  let vb${r} = v_at(bkv, ${j});
  var k${r}: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { k${r}[d] = load_K(kb${r} + d); }
  var v${r}: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { v${r}[d] = load_V(vb${r} + d); }
${zeros(`dk${r}`, T, 'NQ')}
${zeros(`dv${r}`, T, 'NV')}`;

/** Backward (dK, dV), one query row with log-sum-exp `lse`, delta `dl` and visibility `vis`. */
export const bwdKVQuery = (
  qv: At,
  g: At,
  lse: string,
  dl: string,
  vis: string,
  r = '',
) => `      var sc = 0.0;
      for (var d = 0u; d < NQ; d++) { sc += dotv(${qv('d')}, k${r}[d]); }
      let p = select(0.0, exp(sc * P.scale - ${lse}), ${vis});
      var dp = 0.0;
      for (var d = 0u; d < NV; d++) { let gd = ${g('d')}; dv${r}[d] += p * gd; dp += dotv(gd, v${r}[d]); }
      let ds = p * (dp - ${dl}) * P.scale;
      for (var d = 0u; d < NQ; d++) { dk${r}[d] += ds * ${qv('d')}; }`;

export const bwdKVStore = (
  s: AttnShape,
  r = '',
) => `  for (var d = 0u; d < NQ; d++) { DK[kb${r} + d] = dk${r}[d]; }
  for (var d = 0u; d < NV; d++) { ${s.packed ? 'DK' : 'DV'}[vb${r} + d] = dv${r}[d]; }`;

const MAIN = `@compute @workgroup_size(${ATTN_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.y * nwg.x + wid.x) * ${ATTN_WG}u + lid;`;

/** Head `bh`, position t and row of the query row this invocation owns. */
const QUERY_INVOCATION = `  if (gi >= P.b * P.hq * P.t) { return; }
  let t = gi % P.t;
  let bh = gi / P.t;
  let row = gi;`;

/** The visible keys of query t, with `kb`/`vb` the offsets of key j's rows. */
const KEY_LOOP = `  let end = key_end(t);
  for (var j = 0u; j < end; j++) {
    if (key_hidden(b, j)) { continue; }
    let kb = k_at(kvh, j);
    let vb = v_at(kvh, j);`;

const kAt: At = (d) => `load_K(kb + ${d})`;
const vAt: At = (d) => `load_V(vb + ${d})`;

/** Forward: Q, K, V, [M] -> O, L. One invocation per query row r = (b·Hq + h)·T + t. */
export function attnForwardWgsl(s: AttnShape): string {
  const { src, T } = prelude(s, FWD_DECLS(s));
  return `${src}
${MAIN}
${QUERY_INVOCATION}
${queryHead}
${queryQ(T)}
${fwdState(T)}
${KEY_LOOP}
${fwdKey(kAt, vAt, 'sc', 'exp(sv - m)')}
  }
${fwdStore()}
}`;
}

/** Backward, per query row: Q, K, V, [M], dO, L, O -> dQ, delta (= dO·O per row). */
export function attnBackwardQWgsl(s: AttnShape): string {
  const { src, T } = prelude(s, BWD_Q_DECLS(s));
  return `${src}
${MAIN}
${QUERY_INVOCATION}
${queryHead}
${queryQ(T)}
${bwdQState(T)}
${KEY_LOOP}
${bwdQKey(kAt, vAt, 'exp(sc - lse)')}
  }
${bwdQStore()}
}`;
}

/** Backward, per key row krow = (b·Hkv + kvh)·S + j: Q, K, V, [M], dO, L, delta -> dK, dV. */
export function attnBackwardKVWgsl(s: AttnShape): string {
  const { src, T } = prelude(s, BWD_KV_DECLS(s));
  return `${src}
${MAIN}
  let hkv = P.hq / P.g;
  if (gi >= P.b * hkv * P.s) { return; }
  let j = gi % P.s;
  let bkv = gi / P.s;
  let b = bkv / hkv;
${bwdKVState(T)}
  if (!key_hidden(b, j)) {
    // Query heads (bkv % hkv)·G .. +G-1 of batch row b read this kv head.
    let h0 = b * P.hq + (bkv % hkv) * P.g;
    for (var h = h0; h < h0 + P.g; h++) {
      for (var t = query_start(j); t < P.t; t++) {
        let r = h * P.t + t;
        let qr = q_at(h, t);
        let orow = o_at(h, t);
${bwdKVQuery(
  (d) => `load_Q(qr + ${d})`,
  (d) => `load_DO(orow + ${d})`,
  'L[r]',
  'DELTA[r]',
  'true',
)}
      }
    }
  }
${bwdKVStore(s)}
}`;
}
