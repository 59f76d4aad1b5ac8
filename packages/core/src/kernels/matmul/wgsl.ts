/**
 * WGSL matmul code generation: pure functions that return shader source and dispatch geometry.
 * No WebGPU imports, so plans can be built and unit-tested anywhere.
 *
 *   C[b] = alpha * op(A[b]) · op(B[b])   (+ C[b] when params.accumulate != 0)
 *
 * Row-major layouts (elements, f32):
 *   A: [batch, M, K]  or [batch, K, M] when transA
 *   B: [batch, K, N]  or [batch, N, K] when transB
 *   C: [batch, M, N]
 * Batch b reads A at aOff + b*strideA, B at bOff + b*strideB, writes C at cOff + b*strideC
 * (a stride of 0 broadcasts that operand over the batch).
 *
 * Binding layout (group 0, same for every pass; each pass lists the bindings it uses in `bindings`):
 *   0: A        var<storage, read>        array<f32>
 *   1: B        var<storage, read>        array<f32>, or array<vec4<f32>> when the key has "bv" or "bk";
 *                                         a frozen f16/bf16 B (key "_bf16"/"_bbf16") is read as stored,
 *                                         array<u32> (two halves per word) or array<vec2<u32>>
 *   2: C        var<storage, read_write>  array<f32>, or array<vec4<f32>> when the key has "cv"
 *   3: params   var<uniform>              MatmulParams (64 bytes, see packMatmulParams)
 *                                         a quantized B (key "_bnf4"/"_bfp4"/"_bint8") is read as its
 *                                         packed codes, array<u32>
 *   4: scratch  var<storage, read_write>  split-K partials, array<f32|vec4<f32>>, dense
 *                                         [splitK, batch, M, N]; only when plan.scratchBytes > 0
 *   5: scales   var<storage, read>        array<f32>, a quantized B's scales (QS: per 64-element block
 *                                         for nf4/fp4, per row for int8); only in passes that read B
 * Split-K plans have two passes: pass 0 (bindings 0,1,3,4) writes raw partial sums to scratch,
 * pass 1 (bindings 2,3,4) sums the partials and applies alpha/accumulate into C.
 *
 * Why this shape of kernel (measured on lavapipe/llvmpipe, Mesa 25.0, bench/matmul-tune.mjs):
 * llvmpipe runs 8 invocations as SIMD lanes and every storage load or store whose address is not
 * built from constants only (Mesa 25.0 tests nir_src_is_always_uniform, so workgroup_id- and
 * loop-counter-based addresses count as divergent) becomes a per-lane scalar loop that re-reads
 * the descriptor and bounds-checks each component: ~60 instructions per loaded vec4 component
 * across 8 lanes, versus ~3 (mul, add, exec-mask blend; fma is not fused) per vec4 component FMA.
 * So the cost is the number of per-lane load components, and:
 *  - Subgroup kernel (limits.subgroupMinSize >= 8; the default where the device has 'subgroups'):
 *    the operand that is the same for all lanes of a workgroup (A's tm rows for lanes 'n', B's
 *    4*tn columns for lanes 'm') is loaded once per 4 k as a panel spread over lanes 0..7 (vec4
 *    loads along k, or along M for A^T) and handed to every lane by subgroupBroadcast with a
 *    constant lane, which is a register shuffle. Each lane then only loads its own operand, as
 *    vec4 (a vec4 load costs ~2/3 per element of four scalar loads). 1024^3 went from 8 (A·B),
 *    5 (A·B^T), 3 (A^T·B^T) GFLOP per CPU-second to 11-14 for all four transposes. The 16 x 4 tile
 *    (16 vec4 accumulators, i.e. 64 ymm, partly spilled) beat 8x8, 8x4, 24x4 and 32x4;
 *    workgroups of 16 beat 8, 32 and 64.
 *  - Small-K kernel (small-k.ts, K <= 16 with subgroups, e.g. LoRA's dX = dH·A and its forward
 *    up-projection with B transposed): B's column group
 *    stays in registers for all k while rows of A stream through a broadcast panel.
 *  - Matrix–vector kernel (gemv.ts, one row times a transposed weight with subgroups: decoding's
 *    projections): a subgroup per 4 rows of W, its lanes side by side along K.
 *  - Per-lane kernel (no subgroups): TM x (4*TN) register tile in named vec4 variables (arrays in
 *    locals spill/gather), TM + 4*TN loaded elements per k for 4*TM*TN FMAs.
 * Not helping: Dawn's disable_robustness toggle (identical machine code: Dawn relies on Vulkan
 * robustBufferAccess2 and llvmpipe bounds-checks regardless), loads at workgroup-uniform addresses
 * (still per-lane, see above), workgroup memory (per-lane loads plus barrier coroutines),
 * unrolling k (LLVM hoists the loads and spills).
 */

import { isQuantType, operandReads } from '../half-reads.js';
import { gemvPass, gemvSuits } from './gemv.js';
import { type MatmulSpec, PARAMS_WGSL, QUANT_SCALES_BINDING } from './params.js';
import { smallKPass, smallKSuits } from './small-k.js';

export interface MatmulLimits {
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  /**
   * Smallest subgroup size of the adapter, set only when the device has the 'subgroups' feature;
   * >= 8 enables the subgroup-shared kernels.
   */
  subgroupMinSize?: number;
}

export interface MatmulPass {
  /** Encodes every template choice: pipelines can be cached by key. */
  key: string;
  wgsl: string;
  workgroups: [number, number, number];
  /** Binding indices this pass's shader declares (its bind group must provide exactly these). */
  bindings: number[];
}

export interface MatmulPlan {
  passes: MatmulPass[];
  /** Bytes for binding 4 (split-K partials); 0 when no scratch is needed. */
  scratchBytes: number;
  splitK: number;
}

/** Template parameters of the tiled kernel. */
export interface TileConfig {
  /** 'n': lanes along N (rows shared by the workgroup); 'm': lanes along M (for skinny N). */
  lanes: 'n' | 'm';
  /** Workgroup size (1-D). */
  wg: number;
  /** Rows per invocation. */
  tm: number;
  /** Column groups of 4 per invocation. */
  tn: number;
  /** Subgroup kernel: share the workgroup-uniform operand's panel by subgroupBroadcast (needs subgroups, min size >= 8). */
  sg?: boolean;
}

const div4 = (x: number | undefined) => (x ?? 0) % 4 === 0;
const cdiv = (a: number, b: number) => Math.ceil(a / b);

/** vec4 access is legal only when every row start and offset of that operand is 4-aligned. */
export interface VecFlags {
  /** B loaded as vec4 over 4 columns (non-transposed B). */
  bv: boolean;
  /** C (or scratch) stored as vec4 over 4 columns. */
  cv: boolean;
  /** A rows loaded as vec4 over 4 k (non-transposed A, K % 4 == 0, only together with bk). */
  ak: boolean;
  /** B^T rows loaded as vec4 over 4 k (transposed B, K % 4 == 0). */
  bk: boolean;
  /** A^T rows loaded as vec4 over 4 rows of M (transposed A, M % 4 == 0, subgroup kernel only). */
  am: boolean;
}

export function vectorFlags(spec: MatmulSpec, tile?: TileConfig): VecFlags {
  const { M, N, K } = spec;
  const nOk = N % 4 === 0;
  const kOk = K % 4 === 0;
  const aAligned = div4(spec.aOff) && div4(spec.strideA ?? M * K);
  const bAligned = div4(spec.bOff) && div4(spec.strideB ?? K * N);
  const bv = nOk && !spec.transB && bAligned;
  const cv = nOk && div4(spec.cOff) && div4(spec.strideC ?? M * N);
  // Measured (per-lane kernel): the 4-k blocked loop needed for vec4-over-k loads is slower for
  // plain A·B, where B is already a vec4 over columns, so A's vec4-over-k rides along with B^T;
  // the subgroup kernel always runs the blocked loop.
  const sg = !!tile?.sg;
  const ak = kOk && !spec.transA && aAligned && (spec.transB || sg);
  const bk = kOk && spec.transB && bAligned;
  const am = sg && tile?.lanes === 'n' && spec.transA && M % 4 === 0 && aAligned && tile.tm % 4 === 0;
  return { bv, cv, ak, bk, am };
}

/** Default tile: measured best on lavapipe (see bench). Skinny outputs put lanes along M. */
export function chooseTile(spec: MatmulSpec, limits: MatmulLimits): TileConfig {
  const wg = Math.min(16, limits.maxComputeInvocationsPerWorkgroup);
  const groups = cdiv(spec.N, 4);
  if ((limits.subgroupMinSize ?? 0) >= 8) {
    // Measured on lavapipe: 16 rows x 1 column group per lane with the A panel shared by subgroup
    // broadcast (4096^3-class products: 1.5-3.5x the per-lane-load kernel below, all transposes
    // alike). Skinny N (< 64) puts lanes along M and shares the B panel instead: N=16 best at 4x4.
    if (groups < wg && spec.M >= 4 * spec.N) {
      const tn = Math.min(4, groups);
      return { lanes: 'm', wg, tm: tn > 2 ? 4 : 8, tn, sg: true };
    }
    return { lanes: 'n', wg, tm: spec.M >= 16 ? 16 : Math.min(spec.M, 8), tn: 1, sg: true };
  }
  // Lanes along N waste lanes when N/4 is below one workgroup's width.
  if (groups < wg * 2 && spec.M >= 4 * spec.N) return { lanes: 'm', wg, tm: 8, tn: Math.min(2, groups) };
  return { lanes: 'n', wg, tm: Math.min(8, spec.M), tn: 2 };
}

export function chooseMatmulPlan(
  spec: MatmulSpec,
  limits: MatmulLimits,
  override?: { tile?: TileConfig; splitK?: number },
): MatmulPlan {
  const lanes = limits.subgroupMinSize ?? 0;
  if (!override && lanes <= 64 && gemvSuits(spec, lanes))
    return {
      passes: [
        {
          ...gemvPass(spec, lanes),
          bindings: isQuantType(spec.bType) ? [0, 1, 2, 3, QUANT_SCALES_BINDING] : [0, 1, 2, 3],
        },
      ],
      scratchBytes: 0,
      splitK: 1,
    };
  if (!override && lanes >= 8 && (spec.bType ?? 'f32') === 'f32' && smallKSuits(spec)) {
    const vf = vectorFlags(spec, { lanes: 'n', wg: 16, tm: 16, tn: 1, sg: true });
    if (vf.ak && (vf.bv || vf.bk) && vf.cv)
      return { passes: [{ ...smallKPass(spec), bindings: [0, 1, 2, 3] }], scratchBytes: 0, splitK: 1 };
  }
  const tile = override?.tile ?? chooseTile(spec, limits);
  // Passes that read B also bind a quantized B's scales.
  const withB = (b: number[]) => (isQuantType(spec.bType) ? [...b, QUANT_SCALES_BINDING] : b);
  const geo = tileGeometry(spec, tile);
  const wgCount = geo[0] * geo[1] * spec.batch;
  // Split K only when the output alone cannot occupy the machine and K is long.
  let splitK = override?.splitK ?? 1;
  if (override?.splitK === undefined && wgCount < 32 && spec.K >= 1024) {
    splitK = Math.min(cdiv(64, wgCount), Math.floor(spec.K / 256));
  }
  splitK = Math.max(1, Math.min(splitK, spec.K));
  const vf = vectorFlags(spec, tile);
  if (splitK === 1) {
    const key = tileKey(spec, tile, vf, false);
    return {
      passes: [
        {
          key,
          wgsl: tileWgsl(spec, tile, vf, false),
          workgroups: [geo[0], geo[1], spec.batch],
          bindings: withB([0, 1, 2, 3]),
        },
      ],
      scratchBytes: 0,
      splitK: 1,
    };
  }
  // Scratch is dense, so its vec4 store only needs N % 4 == 0; the vec4-over-k loads need each
  // split's k range to be a multiple of 4 (packMatmulParams rounds kChunk up to 4).
  const sf = { ...vf, cv: spec.N % 4 === 0 };
  const total = spec.batch * spec.M * spec.N;
  const red = reduceGeometry(total);
  return {
    passes: [
      {
        key: tileKey(spec, tile, sf, true),
        wgsl: tileWgsl(spec, tile, sf, true),
        workgroups: [geo[0], geo[1], spec.batch * splitK],
        bindings: withB([0, 1, 3, 4]),
      },
      { key: `mm_reduce_wg64_x${red[0]}`, wgsl: reduceWgsl(red[0]), workgroups: red, bindings: [2, 3, 4] },
    ],
    scratchBytes: splitK * total * 4,
    splitK,
  };
}

function tileGeometry(spec: MatmulSpec, t: TileConfig): [number, number] {
  const groups = cdiv(spec.N, 4);
  return t.lanes === 'n'
    ? [cdiv(groups, t.wg * t.tn), cdiv(spec.M, t.tm)]
    : [cdiv(spec.M, t.wg * t.tm), cdiv(groups, t.tn)];
}

function tileKey(spec: MatmulSpec, t: TileConfig, f: VecFlags, split: boolean): string {
  return (
    `mm_${t.lanes}_wg${t.wg}_tm${t.tm}_tn${t.tn}${t.sg ? '_sg' : ''}_${spec.transA ? 'at' : 'an'}_${spec.transB ? 'bt' : 'bn'}` +
    `_${f.bv ? 'bv' : 'bs'}_${f.cv ? 'cv' : 'cs'}${f.ak ? '_ak' : ''}${f.am ? '_am' : ''}${f.bk ? '_bk' : ''}${split ? '_split' : ''}` +
    (spec.bType && spec.bType !== 'f32' ? `_b${spec.bType}` : '')
  );
}

/**
 * The tiled kernel. Invocation tile: rows r_i (i < tm) x column groups g_j (j < tn, 4 columns each).
 * lanes 'n': rows are uniform over the workgroup, lane li takes groups base + j*wg + li.
 * lanes 'm': lane li takes rows base + i*wg + li, groups are uniform over the workgroup.
 * Out-of-range rows/columns are clamped for loads (results discarded) and masked on store.
 * sg: see the header; the k loop runs in blocks of 4 with a per-lane-load tail for K % 4.
 * split: workgroup_id.z = batch*splitK + s, k runs over [s*kChunk, (s+1)*kChunk) and raw sums
 * go to scratch (binding 4) instead of C.
 */
export function tileWgsl(spec: MatmulSpec, t: TileConfig, f: VecFlags, split: boolean): string {
  const { tm, tn, wg } = t;
  const { bv, cv, ak, bk, am } = f;
  const L: string[] = [];
  const sg = !!t.sg;
  if (sg) L.push('enable subgroups;');
  const cType = cv ? 'vec4<f32>' : 'f32';
  L.push(`@group(0) @binding(0) var<storage, read> A: array<${ak || am ? 'vec4<f32>' : 'f32'}>;`);
  // A quantized B's rows (int8 scales) are B's stored rows: K long when transposed, else N.
  const B = operandReads('B', spec.bType ?? 'f32', {
    scales: QUANT_SCALES_BINDING,
    rowLen: spec.transB ? 'K' : 'N',
  });
  L.push(`@group(0) @binding(1) var<storage, read> B: array<${B.type(bv || bk)}>;`);
  if (split) L.push(`@group(0) @binding(4) var<storage, read_write> S: array<${cType}>;`);
  else L.push(`@group(0) @binding(2) var<storage, read_write> C: array<${cType}>;`);
  L.push(PARAMS_WGSL);
  if (B.prelude) L.push(B.prelude);
  L.push(`@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32${sg ? ', @builtin(subgroup_invocation_id) sid: u32' : ''}) {
  let M = P.M; let N = P.N; let K = P.K; let N4 = (N + 3u) / 4u;`);
  if (split) {
    L.push(`  let b = wid.z / P.splitK; let s = wid.z % P.splitK;
  let k0 = s * P.kChunk; let k1 = min(K, k0 + P.kChunk);`);
  } else L.push(`  let b = wid.z; let k0 = 0u; let k1 = K;`);
  L.push(`  let aBase = P.aOff + b * P.strideA; let bBase = P.bOff + b * P.strideB;`);
  // Row and column-group indices of this invocation; p* are loop-invariant load bases
  // (in vec4 units for vec4 arrays).
  for (let i = 0; i < tm; i++) {
    const r = t.lanes === 'n' ? `wid.y * ${tm}u + ${i}u` : `wid.x * ${wg * tm}u + ${i * wg}u + li`;
    L.push(`  let r${i} = ${r}; let ra${i} = min(r${i}, M - 1u);`);
    if (ak) L.push(`  let pa${i} = (aBase + ra${i} * K) / 4u;`);
    else L.push(spec.transA ? `  let pa${i} = aBase + ra${i};` : `  let pa${i} = aBase + ra${i} * K;`);
  }
  for (let j = 0; j < tn; j++) {
    const g = t.lanes === 'n' ? `wid.x * ${wg * tn}u + ${j * wg}u + li` : `wid.y * ${tn}u + ${j}u`;
    L.push(`  let g${j} = ${g};`);
    if (bv) L.push(`  let pb${j} = bBase / 4u + min(g${j}, N4 - 1u);`);
    else
      for (let e = 0; e < 4; e++) {
        const c = `min(g${j} * 4u + ${e}u, N - 1u)`;
        if (bk) L.push(`  let pb${j}_${e} = (bBase + ${c} * K) / 4u;`);
        else
          L.push(spec.transB ? `  let pb${j}_${e} = bBase + ${c} * K;` : `  let pb${j}_${e} = bBase + ${c};`);
      }
  }
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) L.push(`  var acc${i}_${j} = vec4<f32>(0.0);`);
  // One k step: b_j = 4 columns of B at k, a_i = A at row i, rank-1 update of the tile.
  const step = (kk: string, aOf: (i: number) => string, bOf: (j: number) => string) => {
    for (let j = 0; j < tn; j++) L.push(`      let b${j} = ${bOf(j)};`);
    for (let i = 0; i < tm; i++) {
      L.push(`      let a${i} = vec4<f32>(${aOf(i)});`);
      for (let j = 0; j < tn; j++) L.push(`      acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
    }
    void kk;
  };
  const bScalar = (j: number, kk: string) => {
    if (bv) return B.vec4(`pb${j} + ${kk} * N4`);
    const idx = (e: number) => B.scalar(spec.transB ? `pb${j}_${e} + ${kk}` : `pb${j}_${e} + ${kk} * N`);
    return `vec4<f32>(${[0, 1, 2, 3].map(idx).join(', ')})`;
  };
  if (sg) {
    // Subgroup-shared panel: per 4 k, the operand that is uniform over the workgroup (A's tm rows
    // for lanes 'n', B's 4*tn columns for lanes 'm') is loaded once, spread over lanes 0..7, and
    // each value reaches every lane by subgroupBroadcast with a constant lane (a register shuffle).
    // Panel element f lives in lane f % 8 of load f / 8 (clamped loads fill the unused slots).
    L.push(`  let s7 = sid & 7u;`);
    const xyzw = (q: number) => 'xyzw'[q];
    const bc = (f: number, comp = '') => `subgroupBroadcast(ps${f >> 3}${comp}, ${f & 7}u)`;
    const pre: string[] = [];
    const loads: string[] = [];
    const panel = (n: number, base: (p: number) => string, load: (p: number) => string) => {
      for (let p = 0; p < Math.ceil(n / 8); p++) {
        pre.push(`  let f${p} = min(${8 * p}u + s7, ${n - 1}u); let pp${p} = ${base(p)};`);
        loads.push(`    let ps${p} = ${load(p)};`);
      }
    };
    let aOf: (i: number, q: number) => string;
    let bOf: (j: number, q: number) => string;
    const kq = (q: number) => `(k + ${q}u)`;
    if (t.lanes === 'n') {
      const r0 = `wid.y * ${tm}u`;
      if (ak) {
        // f = row; vec4 over k.
        panel(
          tm,
          (p) => `(aBase + min(${r0} + f${p}, M - 1u) * K) / 4u`,
          (p) => `A[pp${p} + k / 4u]`,
        );
        aOf = (i, q) => bc(i, `.${xyzw(q)}`);
      } else if (am) {
        // f = q*G + row group (G = tm/4); vec4 over 4 rows of A^T (tm % 4 == 0 keeps them aligned).
        const G = tm / 4;
        panel(
          4 * G,
          (p) => `(aBase + min(${r0} + (f${p} % ${G}u) * 4u, M - 4u)) / 4u + (f${p} / ${G}u) * (M / 4u)`,
          (p) => `A[pp${p} + k * (M / 4u)]`,
        );
        aOf = (i, q) => bc(q * G + (i >> 2), `.${xyzw(i & 3)}`);
      } else {
        // f = q*tm + row; scalars.
        const rs = spec.transA ? '1u' : 'K';
        const ks = spec.transA ? 'M' : '1u';
        panel(
          4 * tm,
          (p) => `aBase + min(${r0} + f${p} % ${tm}u, M - 1u) * ${rs} + (f${p} / ${tm}u) * ${ks}`,
          (p) => `A[pp${p} + k * ${ks}]`,
        );
        aOf = (i, q) => bc(q * tm + i);
      }
      bOf = (j, q) =>
        bk
          ? `vec4<f32>(bw${j}_0.${xyzw(q)}, bw${j}_1.${xyzw(q)}, bw${j}_2.${xyzw(q)}, bw${j}_3.${xyzw(q)})`
          : bScalar(j, kq(q));
    } else {
      const c0 = `wid.y * ${4 * tn}u`;
      if (bk) {
        // f = column; vec4 over k of B^T.
        panel(
          4 * tn,
          (p) => `(bBase + min(${c0} + f${p}, N - 1u) * K) / 4u`,
          (p) => B.vec4(`pp${p} + k / 4u`),
        );
        bOf = (j, q) => `vec4<f32>(${[0, 1, 2, 3].map((e) => bc(4 * j + e, `.${xyzw(q)}`)).join(', ')})`;
      } else if (bv) {
        // f = q*tn + column group; vec4 over 4 columns.
        panel(
          4 * tn,
          (p) => `bBase / 4u + min(wid.y * ${tn}u + f${p} % ${tn}u, N4 - 1u) + (f${p} / ${tn}u) * N4`,
          (p) => B.vec4(`pp${p} + k * N4`),
        );
        bOf = (j, q) => bc(q * tn + j);
      } else {
        // f = q*4tn + column; scalars.
        const cs = spec.transB ? 'K' : '1u';
        const ks = spec.transB ? '1u' : 'N';
        panel(
          16 * tn,
          (p) => `bBase + min(${c0} + f${p} % ${4 * tn}u, N - 1u) * ${cs} + (f${p} / ${4 * tn}u) * ${ks}`,
          (p) => B.scalar(`pp${p} + k * ${ks}`),
        );
        bOf = (j, q) => `vec4<f32>(${[0, 1, 2, 3].map((e) => bc(q * 4 * tn + 4 * j + e)).join(', ')})`;
      }
      aOf = (i, q) =>
        ak ? `av${i}.${xyzw(q)}` : spec.transA ? `A[pa${i} + ${kq(q)} * M]` : `A[pa${i} + ${kq(q)}]`;
    }
    L.push(...pre);
    L.push(`  let kEnd = k0 + ((k1 - k0) & ~3u);`);
    L.push(`  for (var k = k0; k < kEnd; k += 4u) {`);
    L.push(...loads);
    if (t.lanes === 'm' && ak) for (let i = 0; i < tm; i++) L.push(`    let av${i} = A[pa${i} + k / 4u];`);
    if (t.lanes === 'n' && bk)
      for (let j = 0; j < tn; j++)
        for (let e = 0; e < 4; e++) L.push(`    let bw${j}_${e} = ${B.vec4(`pb${j}_${e} + k / 4u`)};`);
    for (let q = 0; q < 4; q++) {
      L.push(`    {`);
      step(
        kq(q),
        (i) => aOf(i, q),
        (j) => bOf(j, q),
      );
      L.push(`    }`);
    }
    L.push(`  }`);
    if (!ak && !bk) {
      // K % 4 tail: per-lane loads (A is a vec4 array when am: take the component).
      L.push(`  for (var k = kEnd; k < k1; k++) {`);
      L.push(`    {`);
      step(
        'k',
        (i) =>
          am
            ? `A[(pa${i} + k * M) / 4u][(pa${i} + k * M) % 4u]`
            : spec.transA
              ? `A[pa${i} + k * M]`
              : `A[pa${i} + k]`,
        (j) => bScalar(j, 'k'),
      );
      L.push(`    }`);
      L.push(`  }`);
    }
  } else if (ak || bk) {
    // vec4-over-k loads: one load yields 4 k values (a vec4 per-lane load costs ~2.5 scalar
    // ones in llvmpipe, the per-lane overhead is shared). The k range is a multiple of 4 here.
    L.push(`  for (var k = k0; k < k1; k += 4u) {`);
    L.push(`    let k4 = k / 4u;`);
    if (ak) for (let i = 0; i < tm; i++) L.push(`    let av${i} = A[pa${i} + k4];`);
    if (bk)
      for (let j = 0; j < tn; j++)
        for (let e = 0; e < 4; e++) L.push(`    let bw${j}_${e} = ${B.vec4(`pb${j}_${e} + k4`)};`);
    for (let q = 0; q < 4; q++) {
      const c = 'xyzw'[q];
      L.push(`    {`);
      const kk = `(k + ${q}u)`;
      step(
        kk,
        (i) => (ak ? `av${i}.${c}` : spec.transA ? `A[pa${i} + ${kk} * M]` : `A[pa${i} + ${kk}]`),
        (j) =>
          bk ? `vec4<f32>(bw${j}_0.${c}, bw${j}_1.${c}, bw${j}_2.${c}, bw${j}_3.${c})` : bScalar(j, kk),
      );
      L.push(`    }`);
    }
    L.push(`  }`);
  } else {
    L.push(`  for (var k = k0; k < k1; k++) {`);
    L.push(`    {`);
    step(
      'k',
      (i) => (spec.transA ? `A[pa${i} + k * M]` : `A[pa${i} + k]`),
      (j) => bScalar(j, 'k'),
    );
    L.push(`    }`);
    L.push(`  }`);
  }
  // Epilogue.
  if (split) L.push(`  let oBase = (s * P.batch + b) * M * N;`);
  else L.push(`  let oBase = P.cOff + b * P.strideC; let alpha = P.alpha; let accum = P.accumulate != 0u;`);
  for (let i = 0; i < tm; i++) {
    L.push(`  if (r${i} < M) {`);
    for (let j = 0; j < tn; j++) {
      if (cv) {
        L.push(`    if (g${j} < N4) {
      let o = oBase / 4u + r${i} * N4 + g${j};`);
        L.push(
          split
            ? `      S[o] = acc${i}_${j};`
            : `      var v = alpha * acc${i}_${j};
      if (accum) { v += C[o]; }
      C[o] = v;`,
        );
        L.push(`    }`);
      } else {
        for (let e = 0; e < 4; e++) {
          const comp = 'xyzw'[e];
          L.push(`    if (g${j} * 4u + ${e}u < N) {
      let o = oBase + r${i} * N + g${j} * 4u + ${e}u;`);
          L.push(
            split
              ? `      S[o] = acc${i}_${j}.${comp};`
              : `      var v = alpha * acc${i}_${j}.${comp};
      if (accum) { v += C[o]; }
      C[o] = v;`,
          );
          L.push(`    }`);
        }
      }
    }
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

const REDUCE_WG = 64;

function reduceGeometry(total: number): [number, number, number] {
  const groups = cdiv(total, REDUCE_WG);
  const x = Math.min(groups, 32768);
  return [x, cdiv(groups, x), 1];
}

/** Split-K reduction: C = alpha * sum_s S[s] (+ C). One invocation per output element. */
export function reduceWgsl(groupsX: number): string {
  return `@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read_write> S: array<f32>;
${PARAMS_WGSL}
@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let MN = P.M * P.N; let total = P.batch * MN;
  let idx = (wid.y * ${groupsX}u + wid.x) * ${REDUCE_WG}u + li;
  if (idx >= total) { return; }
  var sum = 0.0;
  for (var s = 0u; s < P.splitK; s++) { sum += S[s * total + idx]; }
  let b = idx / MN;
  let o = P.cOff + b * P.strideC + idx % MN;
  var v = P.alpha * sum;
  if (P.accumulate != 0u) { v += C[o]; }
  C[o] = v;
}`;
}
