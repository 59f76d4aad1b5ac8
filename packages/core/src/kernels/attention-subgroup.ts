/**
 * Fused attention kernels for devices with subgroups: the math of attention.ts, but a workgroup is
 * one subgroup of W lanes working on W·R consecutive rows of one head (lane l: rows l + W·r), so
 * the rows of the other side (keys for a query row, queries for a key row) are the same for every
 * lane. They are read in blocks of W: lane l loads row j0 + l, and each row reaches every lane by
 * subgroupBroadcast with a constant lane (a register shuffle), instead of every lane loading every
 * row. On a CPU adapter (lavapipe) a storage load at a per-lane address costs tens of instructions
 * per component, so this divides the load work by W, and each loaded row then serves R rows
 * (attnRows, attnKeyRows).
 *
 * Every lane runs every block (subgroup operations need uniform control flow): rows past the end
 * and keys a row may not see contribute p = 0.
 */
import {
  type AttnShape,
  BWD_KV_DECLS,
  BWD_Q_DECLS,
  bwdKVQuery,
  bwdKVState,
  bwdKVStore,
  bwdQKey,
  bwdQState,
  bwdQStore,
  FLT_MAX,
  FWD_DECLS,
  fwdState,
  fwdStore,
  prelude,
  queryHead,
  queryQ,
} from './attention.js';

/**
 * Rows per lane: each row of the other side a lane loads and broadcasts then serves this many of
 * its own, so the loads and broadcasts per (query, key) pair, and the workgroups, are divided by
 * it. Heads of up to 16 take 4: their per-row state is a few registers, and on lavapipe (AVX2) the
 * stories260K shape's forward went from 4.0-4.3 to 3.3-3.5 ms against 2 rows (dQ 4.7-5.0 -> 4.6-4.7,
 * dK/dV the same). Wider heads keep 2: a 64-wide head's per-row state (q and its accumulator,
 * 32 vec4s) already exceeds the registers.
 */
export const attnRows = (s: Pick<AttnShape, 'D' | 'Dv'>): number => (Math.max(s.D, s.Dv) <= 16 ? 4 : 2);

/**
 * Key rows per lane of the dK/dV pass. Its per-row state is twice the query passes' (k, v, dK and
 * dV), so heads over 32 take one: on lavapipe (AVX-512), best of four alternated runs, the pass
 * took 8.29 against 10.84 ms at GPT-2 small's shape (4 x 12 heads x 128, head size 64) and 16.8
 * against 21.35 ms at 2 x 16 x 256; head size 128 the same either way (13.03 against 12.71), head
 * size 32 slower (9.59 against 6.95 ms), so it keeps 2.
 */
export const attnKeyRows = (s: Pick<AttnShape, 'D' | 'Dv'>): number => {
  const d = Math.max(s.D, s.Dv);
  return d <= 16 ? 4 : d <= 32 ? 2 : 1;
};

function mainSg(W: number): string {
  return `@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = wid.y * nwg.x + wid.x;`;
}

/** `f(r)` for each of a lane's R rows. */
const perRow = (R: number, f: (r: number) => string) => Array.from({ length: R }, (_, r) => f(r)).join('\n');

/** `body(jj)` for each constant lane jj < W, each in its own scope. */
function unroll(W: number, body: (jj: number) => string): string {
  return Array.from({ length: W }, (_, jj) => `  {\n${body(jj)}\n  }`).join('\n');
}

/**
 * The workgroup's W·R consecutive query rows t0.. of head bh; this lane's rows tq0, tq1, ..
 * (t0 + l + W·r, clamped), each with its causal end and pre-scaled q.
 */
const queryRows = (W: number, R: number, T: string) => `  let nb = (P.t + ${W * R - 1}u) / ${W * R}u;
  if (blk >= P.b * P.hq * nb) { return; }
  let bh = blk / nb;
  let t0 = (blk % nb) * ${W * R}u;
${queryHead}
${perRow(
  R,
  (r) => `  let tq${r} = min(t0 + ${W * r}u + lid, P.t - 1);
  let end${r} = key_end(tq${r});
${queryQ(T, `${r}`, `tq${r}`)}`,
)}`;

/** Whether this lane's row r sees key jj of the block (h: the key's broadcast hidden flag). */
const sees = (r: number, jj: number, h = 'hj') => `j0 + ${jj}u < end${r} && ${h} == 0u`;

/**
 * Loop over the keys the workgroup's query rows see, W at a time: lane l loads key j0 + l (K, V
 * and its hidden flag) into kl, vl and hl; `body` then runs once per block.
 */
const keyBlockLoop = (
  W: number,
  R: number,
  T: string,
  body: string,
) => `  // Causal visibility grows with t: the workgroup's last row sees the most keys.
  let block_end = key_end(min(t0 + ${W * R - 1}u, P.t - 1));
  var kl: array<${T}, NQ>;
  var vl: array<${T}, NV>;
  var kj: array<${T}, NQ>;
  var vj: array<${T}, NV>;
  for (var j0 = 0u; j0 < block_end; j0 += ${W}u) {
    let jl = min(j0 + lid, P.s - 1);
    let kb = k_at(kvh, jl);
    let vb = v_at(kvh, jl);
    for (var d = 0u; d < NQ; d++) { kl[d] = load_K(kb + d); }
    for (var d = 0u; d < NV; d++) { vl[d] = load_V(vb + d); }
    let hl = select(0u, 1u, key_hidden(b, jl));
${body}
  }`;

/** Key jj of the block broadcast into kj (and vj), and its hidden flag into hj. */
const broadcastKey = (jj: number, withValue: boolean) =>
  `    for (var d = 0u; d < NQ; d++) { kj[d] = subgroupBroadcast(kl[d], ${jj}u); }
${withValue ? `    for (var d = 0u; d < NV; d++) { vj[d] = subgroupBroadcast(vl[d], ${jj}u); }\n` : ''}    // Broadcast before any short-circuit: subgroup operations need uniform control flow.
    let hj = subgroupBroadcast(hl, ${jj}u);`;

const kj = (d: string) => `kj[${d}]`;
const vj = (d: string) => `vj[${d}]`;

/**
 * Whether the forward pass takes a lane's rows one at a time in each key block, after broadcasting
 * all W keys, rather than each key for all of the lane's rows. Row by row, only one row's q,
 * accumulators and scores are live at a time: with 4 rows of head size 8 the lane's state (about
 * 100 values) far exceeds the 16 vector registers of AVX2, and llvmpipe spent about a quarter of
 * the forward's instructions moving it to and from the stack. On lavapipe (AVX2), alternated in one
 * process, the stories260K shape's forward (head size 8) took 0.86-0.89 of the time, head size 32
 * 0.90; head size 64 took 1.07 (its keys' broadcast rows are the larger state), so it keeps the
 * key-by-key order.
 */
const fwdRowsOuter = (s: Pick<AttnShape, 'D' | 'Dv'>): boolean => Math.max(s.D, s.Dv) <= 32;

/** Forward: row r's score against key k (visible or not) into `sb`. */
const fwdScore = (r: number, k: (d: string) => string, visible: string, sb: string) => `      var sc = 0.0;
      for (var d = 0u; d < NQ; d++) { sc += dotv(q${r}[d], ${k('d')}); }
      ${sb} = select(-${FLT_MAX}, sc, ${visible});`;

/** Forward: row r's online-softmax state rescaled to the running max over the block's scores `sb`. */
const fwdRescale = (r: number, W: number, sb: string) => `      var mb = m${r};
      for (var i = 0u; i < ${W}u; i++) { mb = max(mb, ${sb}[i]); }
      // exp(m - mb) is 0 the first time a row sees a key (m = -FLT_MAX), 1 while it sees none.
      let c = exp(m${r} - mb);
      l${r} *= c;
      for (var d = 0u; d < NV; d++) { acc${r}[d] *= c; }
      m${r} = mb;`;

/** Forward: row r's probability for score `sc` added to l, and times value row v to acc. */
const fwdAccumulate = (
  r: number,
  sc: string,
  v: (d: string) => string,
) => `      let p = select(0.0, exp(${sc} - m${r}), ${sc} > -${FLT_MAX});
      l${r} += p;
      for (var d = 0u; d < NV; d++) { acc${r}[d] += p * ${v('d')}; }`;

/** One key block of the forward, key by key: each broadcast key serves all of the lane's rows. */
function fwdKeysOuter(W: number, R: number): string {
  return `${perRow(R, (r) => `    var sb${r}: array<f32, ${W}>;`)}
${unroll(
  W,
  (jj) => `${broadcastKey(jj, false)}
${perRow(
  R,
  (r) => `    {
${fwdScore(r, kj, sees(r, jj), `sb${r}[${jj}]`)}
    }`,
)}`,
)}
${perRow(
  R,
  (r) => `    {
${fwdRescale(r, W, `sb${r}`)}
    }`,
)}
${unroll(
  W,
  (jj) => `    for (var d = 0u; d < NV; d++) { vj[d] = subgroupBroadcast(vl[d], ${jj}u); }
${perRow(
  R,
  (r) => `    {
${fwdAccumulate(r, `sb${r}[${jj}]`, vj)}
    }`,
)}`,
)}`;
}

/** One key block of the forward, row by row, with every key of the block broadcast first. */
function fwdRowsOuterBlock(W: number, R: number, T: string): string {
  const keys = Array.from({ length: W }, (_, jj) => jj);
  const kb = (jj: number) => (d: string) => `kb${jj}[${d}]`;
  const vb = (jj: number) => (d: string) => `vb${jj}[${d}]`;
  return `${keys
    .map(
      (jj) => `    var kb${jj}: array<${T}, NQ>;
    var vb${jj}: array<${T}, NV>;
    for (var d = 0u; d < NQ; d++) { kb${jj}[d] = subgroupBroadcast(kl[d], ${jj}u); }
    for (var d = 0u; d < NV; d++) { vb${jj}[d] = subgroupBroadcast(vl[d], ${jj}u); }
    let h${jj} = subgroupBroadcast(hl, ${jj}u);`,
    )
    .join('\n')}
${perRow(
  R,
  (r) => `    {
      var sb: array<f32, ${W}>;
${keys.map((jj) => `      {\n${fwdScore(r, kb(jj), sees(r, jj, `h${jj}`), `sb[${jj}]`)}\n      }`).join('\n')}
${fwdRescale(r, W, 'sb')}
${keys.map((jj) => `      {\n${fwdAccumulate(r, `sb[${jj}]`, vb(jj))}\n      }`).join('\n')}
    }`,
)}`;
}

/**
 * Forward: Q, K, V, [M] -> O, L. Per block of W keys: the scores of a row first, then one
 * online-softmax rescale of the row to the block's running max, then the probabilities and value
 * rows (key by key for all rows, or row by row: fwdRowsOuter). Rescaling once per block instead of
 * once per key that raises the max saves an exp, a pass over acc and a divergent branch per key.
 */
export function attnForwardSgWgsl(s: AttnShape): string {
  const W = s.sg;
  const R = attnRows(s);
  const { src, T } = prelude(s, FWD_DECLS(s));
  return `${src}
${mainSg(W)}
${queryRows(W, R, T)}
${perRow(R, (r) => fwdState(T, `${r}`))}
${keyBlockLoop(W, R, T, fwdRowsOuter(s) ? fwdRowsOuterBlock(W, R, T) : fwdKeysOuter(W, R))}
${perRow(
  R,
  (r) => `  if (t0 + ${W * r}u + lid < P.t) {
${fwdStore(`${r}`, `tq${r}`, `bh * P.t + tq${r}`)}
  }`,
)}
}`;
}

/** Backward per query row: Q, K, V, [M], dO, L, O -> dQ, delta. */
export function attnBackwardQSgWgsl(s: AttnShape): string {
  const W = s.sg;
  const R = attnRows(s);
  const { src, T } = prelude(s, BWD_Q_DECLS(s));
  return `${src}
${mainSg(W)}
${queryRows(W, R, T)}
${perRow(R, (r) => bwdQState(T, `${r}`, `tq${r}`, `bh * P.t + tq${r}`))}
${keyBlockLoop(
  W,
  R,
  T,
  unroll(
    W,
    (jj) => `${broadcastKey(jj, true)}
${perRow(R, (r) => `    {\n${bwdQKey(kj, vj, `select(0.0, exp(sc - lse${r}), ${sees(r, jj)})`, `${r}`)}\n    }`)}`,
  ),
)}
${perRow(
  R,
  (r) => `  if (t0 + ${W * r}u + lid < P.t) {
${bwdQStore(`${r}`, `bh * P.t + tq${r}`)}
  }`,
)}
}`;
}

/**
 * Backward per key row: Q, K, V, [M], dO, L, delta -> dK, dV, with key rows of one kv head per
 * workgroup (lane l: rows j0 + l + W·r).
 */
export function attnBackwardKVSgWgsl(s: AttnShape): string {
  const W = s.sg;
  const R = attnKeyRows(s);
  const { src, T } = prelude(s, BWD_KV_DECLS(s));
  return `${src}
${mainSg(W)}
  let hkv = P.hq / P.g;
  let nb = (P.s + ${W * R - 1}u) / ${W * R}u;
  if (blk >= P.b * hkv * nb) { return; }
  let bkv = blk / nb;
  let j0 = (blk % nb) * ${W * R}u;
  let b = bkv / hkv;
${perRow(
  R,
  (r) => `  let jk${r} = min(j0 + ${W * r}u + lid, P.s - 1);
${bwdKVState(T, `${r}`, `jk${r}`)}
  let mine${r} = !key_hidden(b, jk${r});
  let first${r} = query_start(jk${r});`,
)}
  // Causal visibility starts later for later keys: the workgroup's first key sees the most queries.
  let block_first = query_start(j0);
  var ql: array<${T}, NQ>;
  var gl: array<${T}, NV>;
  var qt: array<${T}, NQ>;
  var gt: array<${T}, NV>;
  let h0 = b * P.hq + (bkv % hkv) * P.g;
  for (var h = h0; h < h0 + P.g; h++) {
    for (var tq = block_first - block_first % ${W}u; tq < P.t; tq += ${W}u) {
      let tl = min(tq + lid, P.t - 1);
      let r = h * P.t + tl;
      let qr = q_at(h, tl);
      let orow = o_at(h, tl);
      for (var d = 0u; d < NQ; d++) { ql[d] = load_Q(qr + d); }
      for (var d = 0u; d < NV; d++) { gl[d] = load_DO(orow + d); }
      let lsel = L[r];
      let dl = DELTA[r];
${unroll(
  W,
  (jj) => `      for (var d = 0u; d < NQ; d++) { qt[d] = subgroupBroadcast(ql[d], ${jj}u); }
      for (var d = 0u; d < NV; d++) { gt[d] = subgroupBroadcast(gl[d], ${jj}u); }
      let t = tq + ${jj}u;
      let lse = subgroupBroadcast(lsel, ${jj}u);
      let dlt = subgroupBroadcast(dl, ${jj}u);
${perRow(
  R,
  (r) => `      {
${bwdKVQuery(
  (d) => `qt[${d}]`,
  (d) => `gt[${d}]`,
  'lse',
  'dlt',
  `mine${r} && t < P.t && t >= first${r}`,
  `${r}`,
)}
      }`,
)}`,
)}
    }
  }
${perRow(
  R,
  (r) => `  if (j0 + ${W * r}u + lid < P.s) {
${bwdKVStore(s, `${r}`)}
  }`,
)}
}`;
}
