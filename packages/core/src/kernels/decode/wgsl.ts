/**
 * WGSL for single-token decoding (T = 1): phases that a workgroup of one subgroup runs over a
 * grid-stride range of work units (output rows, heads, pairs). The same phase text is either a
 * kernel of its own (many workgroups, one dispatch per phase) or one step of a fused kernel that
 * runs a whole token in one workgroup per sequence, with storageBarrier() between phases. The
 * fused form exists because on lavapipe every dispatch costs about 45 µs of host and thread-pool
 * time: a tiny model's token is a few hundred µs of arithmetic spread over 30+ dispatches.
 *
 * Names every phase may use (declared by decodeKernel):
 *   A      the activation arena, array<vec4<f32>>, read through aget/aset by element
 *   S      per-sequence state, array<u32>: a header (sampling settings), then 4 words per row
 *          (token, position, prompt length, done) and each row's token history
 *   lane   subgroup invocation id; LANES lanes per workgroup
 *   row    the sequence (workgroup_id.y); blk0/nblk the workgroup's slot in the unit grid
 *   st     the row's state words, loaded uniformly at the start
 *   rb     the row's arena base (elements)
 * Matrix-vector products give each lane one output row: the input vector, the same for every lane,
 * is loaded once as a vec4 panel spread over the lanes and handed out by subgroupBroadcast with a
 * constant lane, so each lane issues only its own row's weight loads (see matmul/wgsl.ts for why
 * per-lane loads set the speed on llvmpipe).
 */

export type WeightDType = 'f32' | 'f16' | 'bf16';

/** A weight matrix [N, K] (row-major) inside a bound buffer. */
export interface WeightRef {
  /** Binding name: f32 buffers are array<vec4<f32>>, half ones array<vec2<u32>>. */
  buf: string;
  /** WGSL u32 expression: element offset of row 0 (a multiple of 4 when `K % 4 == 0`). */
  off: string;
  dtype: WeightDType;
}

/** WGSL type of a weight buffer's elements. */
export function weightArrayType(dtype: WeightDType): string {
  return dtype === 'f32' ? 'vec4<f32>' : 'vec2<u32>';
}

const c4 = (n: number) => Math.ceil(n / 4);

/** A WGSL f32 literal (a bare integer would be an i32). */
const flt = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${x}`);

/** Element i of weight w as f32. */
function wScalar(w: WeightRef, i: string): string {
  if (w.dtype === 'f32') return `${w.buf}[(${i}) >> 2u][(${i}) & 3u]`;
  const word = `${w.buf}[(${i}) >> 2u][((${i}) >> 1u) & 1u]`;
  const bits = `((${word} >> (((${i}) & 1u) * 16u)) & 0xffffu)`;
  return w.dtype === 'bf16' ? `bitcast<f32>(${bits} << 16u)` : `unpack2x16float(${bits}).x`;
}

/** Elements 4g..4g+3 of row-aligned weight w (K % 4 == 0) as a vec4, g counted from w.off / 4. */
function wVec(w: WeightRef, g: string): string {
  const at = `${w.buf}[(${w.off}) / 4u + ${g}]`;
  if (w.dtype === 'f32') return at;
  if (w.dtype === 'f16') return `dw_f16(${at})`;
  return `dw_bf16(${at})`;
}

const HALF_DECODE = `
fn dw_bf16(u: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(bitcast<f32>(u.x << 16u), bitcast<f32>(u.x & 0xffff0000u), bitcast<f32>(u.y << 16u), bitcast<f32>(u.y & 0xffff0000u));
}
fn dw_f16(u: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); }`;

export interface MatvecPhase {
  /** Weights [N, K]; two of them (gate, up) make a SwiGLU product silu(w0·x) * (w1·x). */
  w: readonly [WeightRef] | readonly [WeightRef, WeightRef];
  N: number;
  K: number;
  /** Arena offset (elements, per row, a multiple of 4) of the input vector, zero past K up to a multiple of 4. */
  x: number;
  /** Arena offset of the output. */
  y: number;
  /** 'set' writes y, 'add' adds to it (a residual connection). */
  mode: 'set' | 'add';
  /** RMSNorm of the input applied on the fly: its weight (f32 [K]) and epsilon. */
  norm?: { g: WeightRef; eps: number };
}

/** y = W·x (+ y), optionally of RMSNorm(x) and with a SwiGLU pair of weights. */
export function matvecPhase(p: MatvecPhase, lanes: number): string {
  const { N, K } = p;
  const K4 = c4(K);
  const aligned = K % 4 === 0;
  const L: string[] = ['{'];
  if (p.norm) {
    L.push(`  var ss = 0.0;
  for (var k = lane; k < ${K4}u; k += LANES) { let v = A[(rb + ${p.x}u) / 4u + k]; ss += dot(v, v); }
  let inv_rms = inverseSqrt(subgroupAdd(ss) / ${K}.0 + ${flt(p.norm.eps)});`);
  }
  const acc = p.w.map((_, i) => `acc${i}`);
  // Row n's vec4 group g: aligned rows load one vec4 (or 4 halves); others gather 4 clamped scalars
  // (the input is zero past K, so what they read there is multiplied by zero).
  const load = (w: WeightRef, n: string, g: string) =>
    aligned
      ? wVec(w, `${n} * ${K4}u + ${g}`)
      : `vec4<f32>(${[0, 1, 2, 3].map((c) => wScalar(w, `${w.off} + min(${n} * ${K}u + 4u * (${g}) + ${c}u, ${N * K - 1}u)`)).join(', ')})`;
  L.push(`  for (var n0 = blk0 * LANES; n0 < ${N}u; n0 += nblk * LANES) {
    let n = min(n0 + lane, ${N - 1}u);
    ${acc.map((a) => `var ${a} = vec4<f32>(0.0);`).join(' ')}
    for (var k0 = 0u; k0 < ${K4}u; k0 += LANES) {
      let kk = k0 + lane;
      var xv = select(vec4<f32>(0.0), A[(rb + ${p.x}u) / 4u + min(kk, ${K4 - 1}u)], kk < ${K4}u);`);
  const g = p.norm?.g;
  if (g) {
    const gv = aligned
      ? `${g.buf}[(${g.off}) / 4u + min(kk, ${K4 - 1}u)]`
      : `vec4<f32>(${[0, 1, 2, 3].map((c) => wScalar(g, `${g.off} + min(4u * kk + ${c}u, ${K - 1}u)`)).join(', ')})`;
    L.push(`      xv = xv * inv_rms * ${gv};`);
  }
  // subgroupBroadcast takes a constant lane: the loop over the panel is unrolled.
  for (let j = 0; j < lanes; j++) {
    L.push(`      {
        let xj = subgroupBroadcast(xv, ${j}u);
        let g = min(k0 + ${j}u, ${K4 - 1}u);`);
    for (const [i, w] of p.w.entries())
      L.push(`        ${acc[i]} = fma(${load(w, 'n', 'g')}, xj, ${acc[i]});`);
    L.push('      }');
  }
  L.push('    }');
  const sum = (a: string) => `(${a}.x + ${a}.y + ${a}.z + ${a}.w)`;
  const val = p.w.length === 2 ? `silu_f(${sum('acc0')}) * ${sum('acc1')}` : sum('acc0');
  L.push(`    if (n0 + lane < ${N}u) {
      let yi = rb + ${p.y}u + n0 + lane;
      aset(yi, ${p.mode === 'add' ? `aget(yi) + ` : ''}${val});
    }
  }
}`);
  return L.join('\n');
}

/** x = E[token] (one row of the embedding, or of one of its row blocks `rows0 ..`). */
export function embedPhase(p: { e: WeightRef; C: number; x: number; rows0: number; rows: number }): string {
  return `{
  let r = st.x - ${p.rows0}u;
  if (st.x >= ${p.rows0}u && r < ${p.rows}u && blk0 == 0u) {
    for (var c = lane; c < ${p.C}u; c += LANES) { aset(rb + ${p.x}u + c, ${wScalar(p.e, `${p.e.off} + r * ${p.C}u + c`)}); }
  }
}`;
}

/** Shape of the attention over a cache [B, Hkv, cap, Dp] (Dp = head dim rounded up to 4). */
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

export interface RopeCachePhase extends CacheShape {
  /** Arena offsets of this token's q [H·D], k and v [Hkv·D]. */
  q: number;
  k: number;
  v: number;
  /** Rotated leading dims of each head (even, <= head dim); pairs (i, i + R/2) (rotate-half). */
  rotaryDim: number;
  /** Table of cos, sin per (position, pair): f32 [capacity, R/2, 2] at element offset `off` of `buf`. */
  table: { buf: string; off: string };
  /** K and V cache bindings and the element offset of this layer in them. */
  kc: string;
  vc: string;
  cacheOff: string;
}

/** Rotates q in place, and writes the rotated k and the v of the current position into the cache. */
export function ropeCachePhase(p: RopeCachePhase): string {
  const { heads: H, kvHeads: Hkv, headDim: D, capacity } = p;
  const R2 = p.rotaryDim / 2;
  const Dp = c4(D) * 4;
  const nq = H * R2;
  const nk = Hkv * (D - R2);
  const total = nq + nk + Hkv * D;
  const tab = (i: string) => `${p.table.buf}[(${p.table.off} + ${i}) >> 2u][(${p.table.off} + ${i}) & 3u]`;
  const cell = (kh: string, d: string) =>
    `${p.cacheOff} + ((row * ${Hkv}u + ${kh}) * ${capacity}u + pos) * ${Dp}u + ${d}`;
  const put = (buf: string, at: string, v: string) => `{ let e = ${at}; ${buf}[e >> 2u][e & 3u] = ${v}; }`;
  return `{
  let pos = st.y;
  for (var u = blk0 * LANES + lane; u < ${total}u; u += nblk * LANES) {
    if (u < ${nq + nk}u) {
      let isq = u < ${nq}u;
      let w = select(u - ${nq}u, u, isq);
      let per = select(${D - R2}u, ${R2}u, isq);
      let h = w / per;
      let i = w % per;
      let base = rb + select(${p.k}u, ${p.q}u, isq) + h * ${D}u;
      if (i < ${R2}u) {
        let cs = vec2<f32>(${tab(`(pos * ${R2}u + i) * 2u`)}, ${tab(`(pos * ${R2}u + i) * 2u + 1u`)});
        let x1 = aget(base + i);
        let x2 = aget(base + i + ${R2}u);
        let y1 = x1 * cs.x - x2 * cs.y;
        let y2 = x2 * cs.x + x1 * cs.y;
        if (isq) { aset(base + i, y1); aset(base + i + ${R2}u, y2); }
        else { ${put(p.kc, cell('h', 'i'), 'y1')} ${put(p.kc, cell('h', `i + ${R2}u`), 'y2')} }
      } else if (!isq && i >= ${R2}u) {
        // Dims past the rotary ones pass through.
        let d = i + ${R2}u;
        ${put(p.kc, cell('h', 'd'), 'aget(base + d)')}
      }
    } else {
      let w = u - ${nq + nk}u;
      ${put(p.vc, cell(`w / ${D}u`, `w % ${D}u`), `aget(rb + ${p.v}u + w)`)}
    }
  }
}`;
}

export interface AttendPhase extends CacheShape {
  /** Arena offsets of q [H·D] (already rotated) and of the output [H·D]. */
  q: number;
  out: number;
  kc: string;
  vc: string;
  cacheOff: string;
}

/**
 * softmax(q·Kᵀ/√D)·V over positions 0..pos of the row's cache, one head per unit. Lanes take
 * positions in turn with an online softmax each (running max, sum and weighted V in registers), and
 * merge across lanes at the end; grouped-query heads read their key/value head h / (H / Hkv).
 */
export function attendPhase(p: AttendPhase): string {
  const { heads: H, kvHeads: Hkv, headDim: D, capacity } = p;
  const D4 = c4(D);
  const g = Array.from({ length: D4 }, (_, j) => j);
  const qv = (j: number) =>
    `vec4<f32>(${[0, 1, 2, 3].map((c) => (4 * j + c < D ? `aget(qb + ${4 * j + c}u)` : '0.0')).join(', ')})`;
  return `{
  let pos = st.y;
  for (var h = blk0; h < ${H}u; h += nblk) {
    let qb = rb + ${p.q}u + h * ${D}u;
    ${g.map((j) => `let q${j} = ${qv(j)};`).join(' ')}
    let kb0 = (${p.cacheOff}) / 4u + (row * ${Hkv}u + h / ${H / Hkv}u) * ${capacity * D4}u;
    var m = -3.0e38;
    var l = 0.0;
    ${g.map((j) => `var o${j} = vec4<f32>(0.0);`).join(' ')}
    for (var t0 = 0u; t0 <= pos; t0 += LANES) {
      let t = t0 + lane;
      if (t <= pos) {
        let kb = kb0 + t * ${D4}u;
        let s = (${g.map((j) => `dot(q${j}, ${p.kc}[kb + ${j}u])`).join(' + ')}) * ${flt(1 / Math.sqrt(D))};
        let mn = max(m, s);
        let c = exp(m - mn);
        let e = exp(s - mn);
        l = l * c + e;
        ${g.map((j) => `o${j} = o${j} * c + e * ${p.vc}[kb + ${j}u];`).join('\n        ')}
        m = mn;
      }
    }
    let mx = subgroupMax(m);
    let f = exp(m - mx);
    let tot = subgroupAdd(l * f);
    ${g.map((j) => `let r${j} = subgroupAdd(o${j} * f) / tot;`).join(' ')}
    if (lane == 0u) {
      let ob = rb + ${p.out}u + h * ${D}u;
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
export function samplePhase(p: {
  V: number;
  logits: number;
  B: number;
  capacity: number;
  greedy: boolean;
}): string {
  const { V, B, capacity } = p;
  const lg = (i: string) => `aget(rb + ${p.logits}u + ${i})`;
  const hist = `${STATE_HEADER + ROW_WORDS * B}u + row * ${capacity}u`;
  const greedy = `
    var best = -3.4e38;
    var bi = 0xffffffffu;
    for (var v = lane; v < ${V}u; v += LANES) {
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
    for (var v = lane; v < ${V}u; v += LANES) { let x = ${lg('v')}; if (x == x) { mxv = max(mxv, x); } }
    let mx = subgroupMax(mxv);
    // Largest key with at least topk logits at or above it.
    var kcut = 0u;
    if (topk > 0u && topk < ${V}u) {
      for (var bit = 31i; bit >= 0i; bit--) {
        let cand = kcut | (1u << u32(bit));
        var n = 0u;
        for (var v = lane; v < ${V}u; v += LANES) { let x = ${lg('v')}; n += select(0u, 1u, x == x && okey(x) >= cand); }
        if (subgroupAdd(n) >= topk) { kcut = cand; }
      }
    }
    var mass = 0.0;
    for (var v = lane; v < ${V}u; v += LANES) { mass += pw(${lg('v')}, mx, invt, kcut); }
    let total = subgroupAdd(mass);
    // Largest key whose tokens at or above it hold at least topp of the mass.
    var pbits = 0u;
    if (topp < 1.0) {
      for (var bit = 31i; bit >= 0i; bit--) {
        let cand = pbits | (1u << u32(bit));
        var s = 0.0;
        for (var v = lane; v < ${V}u; v += LANES) { s += pw(${lg('v')}, mx, invt, max(cand, kcut)); }
        if (subgroupAdd(s) >= topp * total) { pbits = cand; }
      }
    }
    let pcut = max(pbits, kcut);
    // Inverse CDF in id order: lanes own contiguous id ranges, a prefix sum finds the range.
    let per = (${V}u + LANES - 1u) / LANES;
    let lo = lane * per;
    let hi = min(${V}u, lo + per);
    var part = 0.0;
    for (var v = lo; v < hi; v++) { part += pw(${lg('v')}, mx, invt, pcut); }
    let before = subgroupExclusiveAdd(part);
    let kept = subgroupAdd(part);
    let target = uhash(S[3], S[${STATE_HEADER}u + row * ${ROW_WORDS}u + 4u], st.y) * kept;
    var pick = 0xffffffffu;
    var last = 0u;
    if (target >= before && target < before + part) {
      var cum = before;
      for (var v = lo; v < hi; v++) {
        let w = pw(${lg('v')}, mx, invt, pcut);
        cum += w;
        if (w > 0.0) { last = v; }
        if (w > 0.0 && cum > target && pick == 0xffffffffu) { pick = v; }
      }
    }
    for (var v = lane; v < ${V}u; v += LANES) { if (pw(${lg('v')}, mx, invt, pcut) > 0.0) { last = max(last, v); } }
    chosen = subgroupMin(pick);
    // Rounding can leave the target a hair past the last kept token.
    if (chosen == 0xffffffffu) { chosen = subgroupMax(last); }`;
  return `{
  var chosen = 0u;
  if (st.y + 1u >= st.z) {${p.greedy ? greedy : sample}
  }
  if (lane == 0u) {
    let next = st.y + 1u;
    if (next < ${capacity}u) {
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
  type: string;
  access: 'read' | 'read_write';
}

/**
 * A complete kernel: bindings in order, then the body's phases. The state of
 * the workgroup's row is read once through workgroup memory (uniform for barriers and subgroup
 * operations); finished rows return at once.
 */
export function decodeKernel(opts: {
  lanes: number;
  /** Arena elements per row (a multiple of 4). */
  rowStride: number;
  bindings: readonly DecodeBinding[];
  /** Phases in order (see inOrder). */
  body: string;
}): string {
  const decls = opts.bindings
    .map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`)
    .join('\n');
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
${decls}
const LANES: u32 = ${opts.lanes}u;
const ROW_STRIDE: u32 = ${opts.rowStride}u;
var<workgroup> wg_state: vec4<u32>;
fn aget(i: u32) -> f32 { return A[i >> 2u][i & 3u]; }
fn aset(i: u32, v: f32) { A[i >> 2u][i & 3u] = v; }
fn silu_f(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
${HALF_DECODE}
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
  let rb = row * ROW_STRIDE;
${opts.body}
}`;
}

/** Phases one after another: each sees what the ones before it wrote to storage. */
export function inOrder(phases: readonly string[]): string {
  return phases.join('\nstorageBarrier();\n');
}
