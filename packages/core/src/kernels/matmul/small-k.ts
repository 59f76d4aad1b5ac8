import { type MatmulSpec, PARAMS_WGSL } from './params.js';

/**
 * Small-K kernel for products whose inner dimension is a LoRA rank, such as the input gradient
 * dX[T×d] = dH[T×r]·A[r×d]. The tiled kernel loads its per-lane operand once per k for only 16
 * rows, so at K = 8 those loads (not the FLOPs) set its speed: 7.4 ms for 4096×768×8 on lavapipe.
 * Here each lane loads its 4-column group of B for every k once (K vec4 registers) and then
 * streams a block of rows of A through it: 8 lanes load 8 vec4 of A together (8/(K/4) whole rows)
 * and subgroupBroadcast hands each value to every lane, so per output vec4 a lane does K FMAs, one
 * store and a fraction of a load. Same product: 2.7 ms.
 *
 * B may be stored transposed ([N, K], a LoRA B in x·Bᵀ, the up-projection of its forward): on
 * lavapipe (AVX-512) 2048 × 64 × 8 took 0.25–0.26 ms against 0.46–0.64 on the tiled kernel, GPT-2
 * small's 512 × 2304 × 8 1.25–1.44 against 1.94–2.96 ms (each accumulated onto C).
 *
 * Bindings as in wgsl.ts (0: A, 1: B, 2: C as vec4 arrays, 3: params). Needs the 'subgroups'
 * feature with subgroups of at least 8 lanes, a non-transposed A and 4-aligned rows.
 */

/** Largest K this kernel takes: B's column group stays in K vec4 registers. */
export const SMALL_K_MAX = 16;
const WG = 16;
/** Rows per workgroup: 128 measured best for 4096×768 (prologue amortized, enough workgroups). */
const MAX_ROWS = 128;
/** Fewer workgroups than this leaves threads idle: shrink the row block first. */
const MIN_WORKGROUPS = 64;

/**
 * Whether the small-K kernel suits this product's sizes. The caller also requires what the kernel's
 * vec4 accesses need: subgroups of at least 8 lanes, a non-transposed A, 4-aligned rows and
 * offsets (wgsl.ts's vectorFlags ak, bv or bk, and cv).
 */
export function smallKSuits(spec: MatmulSpec): boolean {
  // Lanes run along N in groups of 4 columns: narrower outputs would leave lanes idle.
  return spec.K >= 4 && spec.K <= SMALL_K_MAX && spec.N >= 4 * WG && spec.M >= 32;
}

/** Rows of A per 8-lane panel load. */
function panelRows(K: number): number {
  return Math.floor(8 / (K / 4));
}

/** The single pass: WGSL, pipeline key and dispatch size. */
export function smallKPass(spec: MatmulSpec): {
  key: string;
  wgsl: string;
  workgroups: [number, number, number];
} {
  const groupsX = Math.ceil(spec.N / 4 / WG);
  let rows = MAX_ROWS;
  // Powers of two >= 8 stay multiples of panelRows (8, 4 or 2).
  while (rows > 8 && groupsX * Math.ceil(spec.M / rows) * spec.batch < MIN_WORKGROUPS) rows /= 2;
  return {
    key: `mm_smallk_k${spec.K}_r${rows}${spec.transB ? '_bt' : ''}`,
    wgsl: smallKWgsl(spec.K, rows, spec.transB),
    workgroups: [groupsX, Math.ceil(spec.M / rows), spec.batch],
  };
}

/**
 * WGSL for a given K (a multiple of 4, at most SMALL_K_MAX) and rows per workgroup. With `transB`,
 * B is stored [N, K] (a LoRA B read as x·Bᵀ): a lane loads the K/4 vec4s of each of its 4 columns'
 * rows and regroups them by k, which in llvmpipe's SoA layout costs no instructions.
 */
export function smallKWgsl(K: number, rows: number, transB = false): string {
  const K4 = K / 4;
  const RP = panelRows(K);
  const xyzw = 'xyzw';
  const L: string[] = [];
  L.push(`enable subgroups;
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
${PARAMS_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sid: u32) {
  let M = P.M; let N4 = P.N / 4u; let b = wid.z;
  let aBase = (P.aOff + b * P.strideA) / 4u; let bBase = (P.bOff + b * P.strideB) / 4u;
  let oBase = (P.cOff + b * P.strideC) / 4u; let alpha = P.alpha; let accum = P.accumulate != 0u;
  let g = wid.x * ${WG}u + li; let gc = min(g, N4 - 1u);`);
  if (transB) {
    for (let c = 0; c < 4; c++)
      for (let q = 0; q < K4; q++)
        L.push(`  let r${c}_${q} = B[bBase + (gc * 4u + ${c}u) * ${K4}u + ${q}u];`);
    for (let k = 0; k < K; k++)
      L.push(
        `  let b${k} = vec4<f32>(${[0, 1, 2, 3].map((c) => `r${c}_${k >> 2}.${xyzw[k & 3]}`).join(', ')});`,
      );
  } else for (let k = 0; k < K; k++) L.push(`  let b${k} = B[bBase + gc + ${k}u * N4];`);
  // Panel lane s7 holds vec4 number (s7 % K4) of row (s7 / K4); lanes past the last whole row
  // load a clamped row that is never broadcast.
  L.push(`  let s7 = sid & 7u; let pr = s7 / ${K4}u; let pq = s7 % ${K4}u;
  let rEnd = min(M, (wid.y + 1u) * ${rows}u);
  for (var r0 = wid.y * ${rows}u; r0 < rEnd; r0 += ${RP}u) {
    let ps = A[aBase + min(r0 + pr, M - 1u) * ${K4}u + pq];`);
  for (let i = 0; i < RP; i++) {
    L.push(`    {
      var acc = vec4<f32>(0.0);`);
    for (let k = 0; k < K; k++) {
      const lane = i * K4 + (k >> 2);
      L.push(`      acc = fma(vec4<f32>(subgroupBroadcast(ps.${xyzw[k & 3]}, ${lane}u)), b${k}, acc);`);
    }
    L.push(`      let r = r0 + ${i}u;
      if (r < M && g < N4) {
        let o = oBase + r * N4 + g;
        var v = alpha * acc;
        if (accum) { v += C[o]; }
        C[o] = v;
      }
    }`);
  }
  L.push(`  }
}`);
  return L.join('\n');
}
