/**
 * Fused attention kernels for devices with subgroups: the math of attention.ts, but a workgroup is
 * one subgroup of W lanes working on W consecutive rows of one head, so the rows of the other side
 * (keys for a query row, queries for a key row) are the same for every lane. They are read in
 * blocks of W: lane l loads row j0 + l, and each row reaches every lane by subgroupBroadcast with a
 * constant lane (a register shuffle), instead of every lane loading every row. On a CPU adapter
 * (lavapipe) a storage load at a per-lane address costs tens of instructions per component, so this
 * divides the load work by W.
 *
 * Every lane runs every block (subgroup operations need uniform control flow): rows past the end
 * and keys a row may not see contribute p = 0.
 */
import {
  type AttnShape,
  BWD_INPUTS,
  type Decl,
  FLT_MAX,
  FWD_DECLS,
  prelude,
  QUERY_ROW,
} from './attention.js';

function mainSg(W: number): string {
  return `@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = wid.y * nwg.x + wid.x;`;
}

/** The workgroup's block of query rows t0.. of head bh; this lane's row `row` and its q. */
const queryBlock = (W: number, T: string) => `  let nb = (P.t + ${W - 1}u) / ${W}u;
  if (blk >= P.b * P.hq * nb) { return; }
  let bh = blk / nb;
  let t0 = (blk % nb) * ${W}u;
  let t = min(t0 + lid, P.t - 1);
  let row = bh * P.t + t;
${QUERY_ROW(T)}`;

/** Opens the loop over key blocks: lane l loads key j0 + l (K, V, hidden flag) for broadcasting. */
const keyBlockLoop = (W: number, T: string) => `  var kl: array<${T}, NQ>;
  var vl: array<${T}, NV>;
  for (var j0 = 0u; j0 < block_end; j0 += ${W}u) {
    let jl = min(j0 + lid, P.s - 1);
    for (var d = 0u; d < NQ; d++) { kl[d] = K[(kvh * P.s + jl) * NQ + d]; }
    for (var d = 0u; d < NV; d++) { vl[d] = V[(kvh * P.s + jl) * NV + d]; }
    let hl = select(0u, 1u, key_hidden(b, jl));`;

/** `body(jj)` for each constant lane jj < W. */
const unroll = (W: number, body: (jj: number) => string) =>
  Array.from({ length: W }, (_, jj) => `  {\n${body(jj)}\n  }`).join('\n');

/** Forward: Q, K, V, [M] -> O, L, with query rows of one head per workgroup. */
export function attnForwardSgWgsl(s: AttnShape): string {
  const W = s.sg;
  const { src, T } = prelude(s, FWD_DECLS(s));
  return `${src}
${mainSg(W)}
${queryBlock(W, T)}
  var acc: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { acc[d] = ${T}(0.0); }
  var m = -${FLT_MAX};
  var l = 0.0;
  let end = key_end(t);
  // Causal visibility grows with t: the block's last row sees the most keys.
  let block_end = key_end(min(t0 + ${W - 1}u, P.t - 1));
${keyBlockLoop(W, T)}
${unroll(
  W,
  (jj) => `    let j = j0 + ${jj}u;
    var sc = 0.0;
    for (var d = 0u; d < NQ; d++) { sc += dotv(q[d], subgroupBroadcast(kl[d], ${jj}u)); }
    // Broadcast before the short-circuit: subgroup operations need uniform control flow.
    let hj = subgroupBroadcast(hl, ${jj}u);
    let vis = j < end && hj == 0u;
    let sv = select(-${FLT_MAX}, sc, vis);
    if (sv > m) {
      let c = exp(m - sv);
      l *= c;
      for (var d = 0u; d < NV; d++) { acc[d] *= c; }
      m = sv;
    }
    let p = select(0.0, exp(sv - m), vis);
    l += p;
    for (var d = 0u; d < NV; d++) { acc[d] += p * subgroupBroadcast(vl[d], ${jj}u); }`,
)}
  }
  if (t0 + lid < P.t) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < NV; d++) { O[row * NV + d] = acc[d] * inv; }
    L[row] = select(${FLT_MAX}, m + log(l), l > 0.0);
  }
}`;
}

/** Backward per query row: Q, K, V, [M], dO, L, O -> dQ, delta. */
export function attnBackwardQSgWgsl(s: AttnShape): string {
  const W = s.sg;
  const decls: Decl[] = [
    ...BWD_INPUTS(s),
    { name: 'O', kind: 'v', access: 'read' },
    { name: 'DQ', kind: 'qk', access: 'read_write' },
    { name: 'DELTA', kind: 'row', access: 'read_write' },
  ];
  const { src, T } = prelude(s, decls);
  return `${src}
${mainSg(W)}
${queryBlock(W, T)}
  var go: array<${T}, NV>;
  var delta = 0.0;
  for (var d = 0u; d < NV; d++) { go[d] = DO[row * NV + d]; delta += dotv(go[d], O[row * NV + d]); }
  var dq: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { dq[d] = ${T}(0.0); }
  let lse = L[row];
  let end = key_end(t);
  let block_end = key_end(min(t0 + ${W - 1}u, P.t - 1));
${keyBlockLoop(W, T)}
${unroll(
  W,
  (jj) => `    let j = j0 + ${jj}u;
    var sc = 0.0;
    for (var d = 0u; d < NQ; d++) { sc += dotv(q[d], subgroupBroadcast(kl[d], ${jj}u)); }
    // Broadcast before the short-circuit: subgroup operations need uniform control flow.
    let hj = subgroupBroadcast(hl, ${jj}u);
    let vis = j < end && hj == 0u;
    let p = select(0.0, exp(sc - lse), vis);
    var dp = 0.0;
    for (var d = 0u; d < NV; d++) { dp += dotv(go[d], subgroupBroadcast(vl[d], ${jj}u)); }
    let ds = p * (dp - delta) * P.scale;
    for (var d = 0u; d < NQ; d++) { dq[d] += ds * subgroupBroadcast(kl[d], ${jj}u); }`,
)}
  }
  if (t0 + lid < P.t) {
    DELTA[row] = delta;
    for (var d = 0u; d < NQ; d++) { DQ[row * NQ + d] = dq[d]; }
  }
}`;
}

/** Backward per key row: Q, K, V, [M], dO, L, delta -> dK, dV, with key rows of one kv head per workgroup. */
export function attnBackwardKVSgWgsl(s: AttnShape): string {
  const W = s.sg;
  const decls: Decl[] = [
    ...BWD_INPUTS(s),
    { name: 'DELTA', kind: 'row', access: 'read' },
    { name: 'DK', kind: 'qk', access: 'read_write' },
    { name: 'DV', kind: 'v', access: 'read_write' },
  ];
  const { src, T } = prelude(s, decls);
  return `${src}
${mainSg(W)}
  let hkv = P.hq / P.g;
  let nb = (P.s + ${W - 1}u) / ${W}u;
  if (blk >= P.b * hkv * nb) { return; }
  let bkv = blk / nb;
  let j0 = (blk % nb) * ${W}u;
  let j = min(j0 + lid, P.s - 1);
  let b = bkv / hkv;
  let krow = bkv * P.s + j;
  var k: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { k[d] = K[krow * NQ + d]; }
  var v: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { v[d] = V[krow * NV + d]; }
  var dk: array<${T}, NQ>;
  for (var d = 0u; d < NQ; d++) { dk[d] = ${T}(0.0); }
  var dv: array<${T}, NV>;
  for (var d = 0u; d < NV; d++) { dv[d] = ${T}(0.0); }
  let mine = !key_hidden(b, j);
  let first = query_start(j);
  // Causal visibility starts later for later keys: the block's first key sees the most queries.
  let block_first = query_start(j0);
  var ql: array<${T}, NQ>;
  var gl: array<${T}, NV>;
  let h0 = b * P.hq + (bkv % hkv) * P.g;
  for (var h = h0; h < h0 + P.g; h++) {
    for (var tq = block_first - block_first % ${W}u; tq < P.t; tq += ${W}u) {
      let r = h * P.t + min(tq + lid, P.t - 1);
      for (var d = 0u; d < NQ; d++) { ql[d] = Q[r * NQ + d]; }
      for (var d = 0u; d < NV; d++) { gl[d] = DO[r * NV + d]; }
      let lsel = L[r];
      let dl = DELTA[r];
${unroll(
  W,
  (jj) => `      let t = tq + ${jj}u;
      var sc = 0.0;
      for (var d = 0u; d < NQ; d++) { sc += dotv(subgroupBroadcast(ql[d], ${jj}u), k[d]); }
      let vis = mine && t < P.t && t >= first;
      let p = select(0.0, exp(sc * P.scale - subgroupBroadcast(lsel, ${jj}u)), vis);
      var dp = 0.0;
      for (var d = 0u; d < NV; d++) { let g = subgroupBroadcast(gl[d], ${jj}u); dv[d] += p * g; dp += dotv(g, v[d]); }
      let ds = p * (dp - subgroupBroadcast(dl, ${jj}u)) * P.scale;
      for (var d = 0u; d < NQ; d++) { dk[d] += ds * subgroupBroadcast(ql[d], ${jj}u); }`,
)}
    }
  }
  if (j0 + lid < P.s) {
    for (var d = 0u; d < NQ; d++) { DK[krow * NQ + d] = dk[d]; }
    for (var d = 0u; d < NV; d++) { DV[krow * NV + d] = dv[d]; }
  }
}`;
}
