/**
 * WGSL for single-token decoding (T = 1): phases that a workgroup of one subgroup runs over a
 * grid-stride range of work units (output rows, heads, pairs). The same phase text is either a
 * kernel of its own (many workgroups, one dispatch per phase) or one step of a fused kernel that
 * runs a whole token in one workgroup per sequence, with storageBarrier() between phases. The
 * fused form exists because on lavapipe every dispatch costs about 45 µs of host and thread-pool
 * time: a tiny model's token is a few hundred µs of arithmetic spread over 30+ dispatches.
 *
 * Sizes and offsets are runtime words of P (see params.ts), the attention's head dim excepted:
 * lavapipe turns each per-lane load site into a gather with bounds checks, so code unrolled or
 * repeated per shape multiplies its compile time (a stories260K step with every shape baked in took
 * 20-50 s of CPU to compile), and a fixed text lets one pipeline serve every batch and capacity.
 *
 * Names every phase may use (declared by decodeKernel):
 *   P      the parameter words, array<u32>; batch and capacity are its header words
 *   A      the activation arena, array<vec4<f32>>, read through aget/aset by element
 *   S      per-sequence state, array<u32>: a header (sampling settings), then ROW_WORDS per row
 *          (token, position, prompt length, done, stream) and each row's token history
 *   lane   subgroup invocation id; LANES lanes per workgroup
 *   row    the sequence (workgroup_id.y); blk0/nblk the workgroup's slot in the unit grid
 *   st     the row's state words, loaded uniformly at the start
 *   rb     the row's arena base (elements)
 * Matrix-vector products give each lane MV_ROWS output rows and walk their vec4 groups in a loop;
 * the input vector's group is the same for every lane, a uniform load.
 */
import { HALF_READS } from '../half-reads.js';
import { LIN } from '../matmul/texture.js';
import type { Expr } from './params.js';

export type WeightDType = 'f32' | 'f16' | 'bf16';

/**
 * A weight matrix [N, K] inside a bound buffer, each row padded with zeros to a multiple of 4
 * elements (so that a row is whole vec4 groups).
 */
export interface WeightRef {
  /** Binding name: f32 buffers are array<vec4<f32>>, half ones array<vec2<u32>>. */
  buf: string;
  /** Element offset of row 0, a multiple of 4. */
  off: Expr;
  dtype: WeightDType;
  /**
   * f32 only: the binding is a weight texture (see uploadWeightTexture) rather than a buffer.
   * llvmpipe fetches a texel for all lanes in one SIMD call but turns a per-lane buffer load into
   * a scalar loop: a stories260K-sized product runs 2-2.5x faster from a texture.
   */
  texture?: boolean;
}

/** Element i of an f32 buffer (array<vec4<f32>>) or weight texture named `buf`. */
function f32At(buf: string, texture: boolean | undefined, i: string): string {
  return texture
    ? `textureLoad(${buf}, lin((${i}) >> 2u))[(${i}) & 3u]`
    : `${buf}[(${i}) >> 2u][(${i}) & 3u]`;
}

/** WGSL type of a weight buffer's elements. */
export function weightArrayType(dtype: WeightDType): string {
  return dtype === 'f32' ? 'vec4<f32>' : 'vec2<u32>';
}

const c4 = (n: number) => Math.ceil(n / 4);

/** A WGSL f32 literal (a bare integer would be an i32). */
const flt = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${x}`);

/**
 * Output rows per lane in a matrix-vector product: four independent gathers in flight per input load
 * (about 1.35x over one on stories260K; eight rows compile twice as long for no gain).
 */
const MV_ROWS = 4;

/** Elements 4g..4g+3 of weight w as a vec4, g counted in vec4 groups from w.off. */
function wVec(w: WeightRef, g: string): string {
  if (w.texture) return `textureLoad(${w.buf}, lin((${w.off}) / 4u + ${g}))`;
  const at = `${w.buf}[(${w.off}) / 4u + ${g}]`;
  if (w.dtype === 'f32') return at;
  if (w.dtype === 'f16') return `f16x4(${at})`;
  return `bf16x4(${at})`;
}

/** Element i of weight w as f32. */
function wScalar(w: WeightRef, i: string): string {
  if (w.dtype === 'f32') return f32At(w.buf, w.texture, i);
  const word = `${w.buf}[(${i}) >> 2u][((${i}) >> 1u) & 1u]`;
  const bits = `((${word} >> (((${i}) & 1u) * 16u)) & 0xffffu)`;
  return w.dtype === 'bf16' ? `bitcast<f32>(${bits} << 16u)` : `unpack2x16float(${bits}).x`;
}

export interface MatvecPhase {
  /** Weights [N, K]; two of them (gate, up) make a SwiGLU product silu(w0·x) * (w1·x). */
  w: readonly [WeightRef] | readonly [WeightRef, WeightRef];
  N: Expr;
  K: Expr;
  /** Arena offset (elements, per row, a multiple of 4) of the input vector, zero past K up to a multiple of 4. */
  x: Expr;
  /** Arena offset of the output. */
  y: Expr;
  /** 'set' writes y, 'add' adds to it (a residual connection); `addIf` adds where it is nonzero. */
  mode: 'set' | 'add' | { addIf: Expr };
  /**
   * RMSNorm of the input: its weight (f32 [K], padded like a row), epsilon (an f32 expression) and,
   * optionally, a runtime flag: where it is zero the input is used as it is.
   */
  norm?: { g: WeightRef; eps: string; when?: Expr };
  /**
   * The input is silu(x) * x' with x' at arena offset `up` (a multiple of 4): the SwiGLU of a
   * gate/up product that wrote both halves. Where `when` is zero, x is used as it is.
   */
  gated?: { up: Expr; when?: Expr };
  /** Arena offset (a multiple of 4) of K elements where a normed or gated input is built first. */
  scratch?: Expr;
}

/**
 * y = W·x (+ y), optionally of RMSNorm(x) or of a gated input, and with a SwiGLU pair of weights.
 * A normed or gated input is built once in the scratch (then a barrier), so that the weight loop
 * is gathers and FMAs only; the runtime flags let one copy of the code serve every product of a
 * step, and each copy is a dozen gather sites for lavapipe to compile.
 */
export function matvecPhase(p: MatvecPhase): string {
  // acc{i}_{j}: weight i, the lane's j-th row (rows n0 + lane + j·LANES).
  const rows = Array.from({ length: MV_ROWS }, (_, j) => j);
  const acc = (i: number, j: number) => `acc${i}_${j}`;
  const flag = (f: Expr | undefined) => (f ? `(${f}) != 0u` : 'true');
  const L = [
    `{
  let mv_k4 = (${p.K} + 3u) / 4u;
  var mv_x = (rb + ${p.x}) / 4u;`,
  ];
  if (p.norm || p.gated) {
    if (!p.scratch) throw new Error('matvecPhase: a normed or gated input needs a scratch offset');
    const steps: string[] = [];
    if (p.norm) steps.push(`if (${flag(p.norm.when)}) { v = v * inv_rms * ${wVec(p.norm.g, 'k')}; }`);
    if (p.gated)
      steps.push(`if (${flag(p.gated.when)}) { v = silu4(v) * A[(rb + ${p.gated.up}) / 4u + k]; }`);
    if (p.norm)
      L.push(`  var ss = 0.0;
  for (var k = 0u; k < mv_k4; k++) { let v = A[mv_x + k]; ss += dot(v, v); }
  let inv_rms = inverseSqrt(ss / f32(${p.K}) + ${p.norm.eps});`);
    L.push(`  let mv_s = (rb + ${p.scratch}) / 4u;
  for (var k = lane; k < mv_k4; k += LANES) {
    var v = A[mv_x + k];
    ${steps.join('\n    ')}
    A[mv_s + k] = v;
  }
  mv_x = mv_s;
  storageBarrier();`);
  }
  L.push(`  for (var n0 = blk0 * LANES * ${MV_ROWS}u; n0 < ${p.N}; n0 += nblk * LANES * ${MV_ROWS}u) {`);
  for (const j of rows) {
    L.push(`    let wrow${j} = min(n0 + lane + ${j}u * LANES, ${p.N} - 1u) * mv_k4;`);
    L.push(`    ${p.w.map((_, i) => `var ${acc(i, j)} = vec4<f32>(0.0);`).join(' ')}`);
  }
  L.push(`    for (var k = 0u; k < mv_k4; k++) {
      let xv = A[mv_x + k];`);
  for (const [i, w] of p.w.entries())
    for (const j of rows) L.push(`      ${acc(i, j)} = fma(${wVec(w, `wrow${j} + k`)}, xv, ${acc(i, j)});`);
  L.push('    }');
  const sum = (a: string) => `(${a}.x + ${a}.y + ${a}.z + ${a}.w)`;
  const prev =
    p.mode === 'set'
      ? ''
      : p.mode === 'add'
        ? 'aget(yi) + '
        : `select(0.0, aget(yi), (${p.mode.addIf}) != 0u) + `;
  for (const j of rows) {
    const val = p.w.length === 2 ? `silu_f(${sum(acc(0, j))}) * ${sum(acc(1, j))}` : sum(acc(0, j));
    L.push(`    if (n0 + lane + ${j}u * LANES < ${p.N}) {
      let yi = rb + ${p.y} + n0 + lane + ${j}u * LANES;
      aset(yi, ${prev}${val});
    }`);
  }
  L.push(`  }
}`);
  return L.join('\n');
}

/** x = E[token]: row `st.x` of the embedding [V, C] (rows padded like any weight). */
export function embedPhase(p: { e: WeightRef; C: Expr; V: Expr; x: Expr }): string {
  return `{
  if (st.x < ${p.V} && blk0 == 0u) {
    let e0 = ${p.e.off} + st.x * ((${p.C} + 3u) & ~3u);
    for (var c = lane; c < ${p.C}; c += LANES) { aset(rb + ${p.x} + c, ${wScalar(p.e, 'e0 + c')}); }
  }
}`;
}

/** Shape of the attention over a cache [B, Hkv, capacity, Dp] (Dp = head dim rounded up to 4). */
export interface CacheShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Positions each sequence's cache holds. */
  capacity: number;
}

/** Elements per layer of a K (or V) cache for B sequences. */
export function cacheElements(c: CacheShape, B: number): number {
  return B * c.kvHeads * c.capacity * c4(c.headDim) * 4;
}

/** The attention's head counts and head dim as runtime words (the capacity is P's header word). */
export interface HeadsExpr {
  heads: Expr;
  kvHeads: Expr;
  headDim: Expr;
}

export interface RopeCachePhase extends HeadsExpr {
  /** Arena offsets of this token's q [H·D], k and v [Hkv·D]. */
  q: Expr;
  k: Expr;
  v: Expr;
  /** Rotated leading dims of each head (even, <= head dim); pairs (i, i + R/2) (rotate-half). */
  rotaryDim: Expr;
  /** Table of cos, sin per (position, pair): f32 [capacity, R/2, 2] at element offset `off` of `buf`. */
  table: { buf: string; off: Expr; texture?: boolean };
  /** K and V cache bindings and the element offset of this layer in them. */
  kc: string;
  vc: string;
  cacheOff: Expr;
}

/** Rotates q in place, and writes the rotated k and the v of the current position into the cache. */
export function ropeCachePhase(p: RopeCachePhase): string {
  const tab = (i: string) => f32At(p.table.buf, p.table.texture, `${p.table.off} + ${i}`);
  const cell = (kh: string, d: string) =>
    `${p.cacheOff} + ((row * rc_hkv + ${kh}) * capacity + pos) * rc_dp + ${d}`;
  const put = (buf: string, at: string, v: string) => `{ let e = ${at}; ${buf}[e >> 2u][e & 3u] = ${v}; }`;
  return `{
  let pos = st.y;
  let rc_d = ${p.headDim};
  let rc_hkv = ${p.kvHeads};
  let rc_dp = (rc_d + 3u) & ~3u;
  let r2 = ${p.rotaryDim} / 2u;
  let nq = ${p.heads} * r2;
  let nk = rc_hkv * (rc_d - r2);
  for (var u = blk0 * LANES + lane; u < nq + nk + rc_hkv * rc_d; u += nblk * LANES) {
    if (u < nq + nk) {
      let isq = u < nq;
      let w = select(u - nq, u, isq);
      let per = select(rc_d - r2, r2, isq);
      let h = w / per;
      let i = w % per;
      let base = rb + select(${p.k}, ${p.q}, isq) + h * rc_d;
      if (i < r2) {
        let cs = vec2<f32>(${tab('(pos * r2 + i) * 2u')}, ${tab('(pos * r2 + i) * 2u + 1u')});
        let x1 = aget(base + i);
        let x2 = aget(base + i + r2);
        let y1 = x1 * cs.x - x2 * cs.y;
        let y2 = x2 * cs.x + x1 * cs.y;
        if (isq) { aset(base + i, y1); aset(base + i + r2, y2); }
        else { ${put(p.kc, cell('h', 'i'), 'y1')} ${put(p.kc, cell('h', 'i + r2'), 'y2')} }
      } else {
        // Dims past the rotary ones pass through (keys only: q keeps them in place).
        let d = i + r2;
        ${put(p.kc, cell('h', 'd'), 'aget(base + d)')}
      }
    } else {
      let w = u - nq - nk;
      ${put(p.vc, cell('w / rc_d', 'w % rc_d'), `aget(rb + ${p.v} + w)`)}
    }
  }
}`;
}

export interface AttendPhase {
  heads: Expr;
  kvHeads: Expr;
  /**
   * Head dim, compiled in: each lane keeps q and its weighted sum of V in registers (D/4 vec4s each),
   * so one pass over the positions does the whole softmax. It is the one size in the text, so a
   * kernel serves the models of one head dim.
   */
  headDim: number;
  /** Arena offsets of q [H·D] (already rotated) and of the output [H·D]. */
  q: Expr;
  out: Expr;
  kc: string;
  vc: string;
  cacheOff: Expr;
}

/**
 * softmax(q·Kᵀ/√D)·V over positions 0..pos of the row's cache, one head per unit. Lanes take
 * positions in turn with an online softmax each (running max, sum and weighted V in registers), and
 * merge across lanes at the end; grouped-query heads read their key/value head h / (H / Hkv).
 */
export function attendPhase(p: AttendPhase): string {
  const D = p.headDim;
  const D4 = c4(D);
  const g = Array.from({ length: D4 }, (_, j) => j);
  const qv = (j: number) =>
    `vec4<f32>(${[0, 1, 2, 3].map((c) => (4 * j + c < D ? `aget(qb + ${4 * j + c}u)` : '0.0')).join(', ')})`;
  return `{
  let pos = st.y;
  let at_h = ${p.heads};
  let at_hkv = ${p.kvHeads};
  for (var h = blk0; h < at_h; h += nblk) {
    let qb = rb + ${p.q} + h * ${D}u;
    ${g.map((j) => `let q${j} = ${qv(j)};`).join(' ')}
    let kb0 = (${p.cacheOff}) / 4u + (row * at_hkv + h / (at_h / at_hkv)) * capacity * ${D4}u;
    var m = -3.0e38;
    var l = 0.0;
    ${g.map((j) => `var o${j} = vec4<f32>(0.0);`).join(' ')}
    for (var t = lane; t <= pos; t += LANES) {
      let kb = kb0 + t * ${D4}u;
      let s = (${g.map((j) => `dot(q${j}, ${p.kc}[kb + ${j}u])`).join(' + ')}) * ${flt(1 / Math.sqrt(D))};
      let mn = max(m, s);
      let c = exp(m - mn);
      let e = exp(s - mn);
      l = l * c + e;
      ${g.map((j) => `o${j} = o${j} * c + e * ${p.vc}[kb + ${j}u];`).join('\n      ')}
      m = mn;
    }
    let mx = subgroupMax(m);
    let f = exp(m - mx);
    let tot = subgroupAdd(l * f);
    ${g.map((j) => `let r${j} = subgroupAdd(o${j} * f) / tot;`).join(' ')}
    if (lane == 0u) {
      let ob = rb + ${p.out} + h * ${D}u;
      ${Array.from({ length: D }, (_, d) => `aset(ob + ${d}u, r${d >> 2}[${d & 3}]);`).join(' ')}
    }
  }
}`;
}

/** Words of S before the rows: top-k, top-p (f32 bits), 1/temperature (f32 bits), seed. */
export const STATE_HEADER = 4;
/** State words per row: token, position, prompt length, done, sampling stream id (then unused). */
export const ROW_WORDS = 8;

/** Offset in S of row b's token history (capacity words). */
export function historyOffset(B: number, capacity: number, b: number): number {
  return STATE_HEADER + ROW_WORDS * B + b * capacity;
}

/**
 * Picks the row's next token from logits at arena offset `logits` and advances its state: inside the
 * prompt the next prompt token is taken as is; after it, the argmax (greedy) or a draw from the
 * temperature / top-k / top-p distribution. Sampling finds the top-k and top-p cut-offs by bisection
 * over the order-preserving u32 keys of the logits (32 passes each, exact, no sort), keeps every
 * token at or above them, and draws by inverse CDF in id order with a uniform from a hash of
 * (seed, the row's stream id, position), so a seed reproduces a run whatever the chunking or batch.
 */
export function samplePhase(p: { V: Expr; logits: Expr; greedy: boolean }): string {
  const V = p.V;
  const lg = (i: string) => `aget(rb + ${p.logits} + ${i})`;
  const hist = `${STATE_HEADER}u + ${ROW_WORDS}u * batch + row * capacity`;
  const greedy = `
    var best = -3.4e38;
    var bi = 0xffffffffu;
    for (var v = lane; v < ${V}; v += LANES) {
      let x = ${lg('v')};
      if (x > best || (bi == 0xffffffffu && x == best)) { best = x; bi = v; }
    }
    let top = subgroupMax(best);
    chosen = subgroupMin(select(0xffffffffu, bi, best == top && bi != 0xffffffffu));
    if (chosen == 0xffffffffu) { chosen = 0u; }`;
  const sample = `
    let topk = S[0];
    let topp = bitcast<f32>(S[1]);
    let invt = bitcast<f32>(S[2]);
    var mxv = -3.4e38;
    for (var v = lane; v < ${V}; v += LANES) { let x = ${lg('v')}; if (x == x) { mxv = max(mxv, x); } }
    let mx = subgroupMax(mxv);
    // Largest key with at least topk logits at or above it.
    var kcut = 0u;
    if (topk > 0u && topk < ${V}) {
      for (var bit = 31i; bit >= 0i; bit--) {
        let cand = kcut | (1u << u32(bit));
        var n = 0u;
        for (var v = lane; v < ${V}; v += LANES) { let x = ${lg('v')}; n += select(0u, 1u, x == x && okey(x) >= cand); }
        if (subgroupAdd(n) >= topk) { kcut = cand; }
      }
    }
    var mass = 0.0;
    for (var v = lane; v < ${V}; v += LANES) { mass += pw(${lg('v')}, mx, invt, kcut); }
    let total = subgroupAdd(mass);
    // Largest key whose tokens at or above it hold at least topp of the mass.
    var pbits = 0u;
    if (topp < 1.0) {
      for (var bit = 31i; bit >= 0i; bit--) {
        let cand = pbits | (1u << u32(bit));
        var s = 0.0;
        for (var v = lane; v < ${V}; v += LANES) { s += pw(${lg('v')}, mx, invt, max(cand, kcut)); }
        if (subgroupAdd(s) >= topp * total) { pbits = cand; }
      }
    }
    let pcut = max(pbits, kcut);
    // Inverse CDF in id order: lanes own contiguous id ranges, a prefix sum finds the range.
    let per = (${V} + LANES - 1u) / LANES;
    let lo = lane * per;
    let hi = min(${V}, lo + per);
    var part = 0.0;
    for (var v = lo; v < hi; v++) { part += pw(${lg('v')}, mx, invt, pcut); }
    let before = subgroupExclusiveAdd(part);
    let kept = subgroupAdd(part);
    let goal = uhash(S[3], S[${STATE_HEADER}u + row * ${ROW_WORDS}u + 4u], st.y) * kept;
    var pick = 0xffffffffu;
    var last = 0u;
    if (goal >= before && goal < before + part) {
      var cum = before;
      for (var v = lo; v < hi; v++) {
        let w = pw(${lg('v')}, mx, invt, pcut);
        cum += w;
        if (w > 0.0) { last = v; }
        if (w > 0.0 && cum > goal && pick == 0xffffffffu) { pick = v; }
      }
    }
    for (var v = lane; v < ${V}; v += LANES) { if (pw(${lg('v')}, mx, invt, pcut) > 0.0) { last = max(last, v); } }
    chosen = subgroupMin(pick);
    // Rounding can leave the goal a hair past the last kept token.
    if (chosen == 0xffffffffu) { chosen = subgroupMax(last); }`;
  return `{
  var chosen = 0u;
  if (st.y + 1u >= st.z) {${p.greedy ? greedy : sample}
  }
  if (lane == 0u) {
    let next = st.y + 1u;
    if (next < capacity) {
      let h = ${hist};
      let tok = select(chosen, S[h + next], next < st.z);
      S[h + next] = tok;
      S[${STATE_HEADER}u + row * ${ROW_WORDS}u] = tok;
      S[${STATE_HEADER}u + row * ${ROW_WORDS}u + 1u] = next;
    } else {
      S[${STATE_HEADER}u + row * ${ROW_WORDS}u + 3u] = 1u;
    }
  }
}`;
}

const SAMPLE_FNS = `
fn okey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
// Unnormalised probability of a logit kept by cut-off key c (0 for NaN and below the cut).
fn pw(x: f32, mx: f32, invt: f32, c: u32) -> f32 {
  return select(0.0, exp((x - mx) * invt), x == x && okey(x) >= c);
}
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
// Uniform in [0, 1) from (seed, stream, position), 24 bits.
fn uhash(seed: u32, stream: u32, pos: u32) -> f32 {
  return f32(pcg(pcg(pcg(seed) ^ stream) ^ pos) >> 8u) / 16777216.0;
}`;

export interface DecodeBinding {
  name: string;
  /** Element type of a storage buffer (array<type>), or 'texture' for a weight texture. */
  type: string;
  access: 'read' | 'read_write';
}

/**
 * A complete kernel: binding 0 is P (the parameter words, see DecodeParams), then `bindings` in
 * order, then the body's phases. The state of the workgroup's row is read once through workgroup
 * memory (uniform for barriers and subgroup operations); finished rows return at once.
 */
export function decodeKernel(opts: {
  lanes: number;
  bindings: readonly DecodeBinding[];
  /** Phases in order (see inOrder). */
  body: string;
}): string {
  const decls = [{ name: 'P', type: 'u32', access: 'read' }, ...opts.bindings]
    .map((b, i) =>
      b.type === 'texture'
        ? `@group(0) @binding(${i}) var ${b.name}: texture_storage_2d<rgba32float, read>;`
        : `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`,
    )
    .join('\n');
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
${decls}
const LANES: u32 = ${opts.lanes}u;
var<workgroup> wg_state: vec4<u32>;
fn aget(i: u32) -> f32 { return A[i >> 2u][i & 3u]; }
fn aset(i: u32, v: f32) { A[i >> 2u][i & 3u] = v; }
fn silu_f(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
fn silu4(x: vec4<f32>) -> vec4<f32> { return x / (1.0 + exp(-x)); }
${HALF_READS}
${opts.bindings.some((b) => b.type === 'texture') ? LIN : ''}
${SAMPLE_FNS}
@compute @workgroup_size(${opts.lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let row = wid.y;
  let blk0 = wid.x;
  let nblk = nwg.x;
  if (lane == 0u) {
    let o = ${STATE_HEADER}u + row * ${ROW_WORDS}u;
    wg_state = vec4<u32>(S[o], S[o + 1u], S[o + 2u], S[o + 3u]);
  }
  let st = workgroupUniformLoad(&wg_state);
  if (st.w != 0u) { return; }
  let batch = P[1u];
  let capacity = P[2u];
  let rb = row * P[0u];
${opts.body}
}`;
}

/** Phases one after another: each sees what the ones before it wrote to storage. */
export function inOrder(phases: readonly string[]): string {
  return phases.join('\nstorageBarrier();\n');
}
