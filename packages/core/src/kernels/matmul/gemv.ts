import { GGML_LAYOUTS, isGgmlFormat } from '../../quant/ggml.js';
import { HALF_READS, isQuantType, operandReads } from '../half-reads.js';
import { type MatmulSpec, PARAMS_WGSL, QUANT_SCALES_BINDING } from './params.js';

/**
 * Matrix–vector kernel for one row times a transposed weight, y = x·Wᵀ with W [N, K] as stored:
 * the projections of single-token decoding, where every weight is read once per token and the
 * tiled kernel (a lane per 4 columns of the output, k in steps of 4 with a broadcast panel of x)
 * reaches about 4.5 GB/s of bf16 weights on lavapipe. Here a workgroup is one subgroup that owns
 * ROWS rows of W; its lanes walk K side by side, each loading 8 (f16/bf16) or 4 (f32) consecutive
 * weights per row and step, and subgroupAdd sums the lanes' partial dot products at the end. The
 * loads of a step are the lanes' neighbouring 16-byte pieces of one row, and there are as many
 * rows in flight as there are subgroups: 8192×2048 bf16 takes 3.4 ms instead of 7.4 (10 GB/s).
 *
 * A quantized W is loaded one u32 word per lane and step (8 nf4/fp4 codes with their block's scale,
 * or 4 int8 codes; an int8 row's scale is loaded once; a llama.cpp type's sub-block scales per vec4).
 *
 * The lanes' partial sums are added in a different order than the tiled kernel's, so values can
 * differ from a multi-row product's in the last bits. Bindings as in wgsl.ts (0: A, 1: B, 2: C,
 * 3: params, 5: a quantized W's scales).
 */

/** Rows of W per workgroup: 4 measured best (2 and 8 lose 6-10%: fewer loads in flight, spills). */
const ROWS = 4;
/** Largest workgroup grid dimension used before wrapping into y. */
const MAX_X = 32768;

/** Elements of W per lane load: a vec4<u32> of halves, a u32 of 4-bit codes, or a vec4<f32> / u32 of 8-bit codes. */
const perLoad = ({ bType }: MatmulSpec) =>
  bType === 'f32' || bType === 'int8' || !bType || (isGgmlFormat(bType) && GGML_LAYOUTS[bType].bits === 8)
    ? 4
    : 8;

/**
 * Whether the product is one row against a transposed weight with rows aligned for the vector
 * loads, on a device whose subgroups have `lanes` (>= 8) lanes.
 */
export function gemvSuits(spec: MatmulSpec, lanes: number): boolean {
  const per = perLoad(spec);
  return (
    lanes >= 8 &&
    spec.M === 1 &&
    spec.batch === 1 &&
    spec.transB &&
    !spec.transA &&
    spec.K % per === 0 &&
    (spec.aOff ?? 0) % 4 === 0 &&
    (spec.bOff ?? 0) % per === 0
  );
}

/** The single pass for a workgroup of `lanes` lanes (the device's smallest subgroup size). */
export function gemvPass(
  spec: MatmulSpec,
  lanes: number,
): { key: string; wgsl: string; workgroups: [number, number, number] } {
  const quant = isQuantType(spec.bType) ? spec.bType : null;
  const half = spec.bType && spec.bType !== 'f32' && !quant ? spec.bType : null;
  const groups = Math.ceil(spec.N / ROWS);
  const x = Math.min(groups, MAX_X);
  const rows = Array.from({ length: ROWS }, (_, r) => r);
  const each = (f: (r: number) => string) => rows.map(f).join('\n');
  const reads = quant ? operandReads('B', quant, { scales: QUANT_SCALES_BINDING, rowLen: 'P.K' }) : null;
  // llama.cpp types: each vec4 of codes decoded with its own sub-block's scale.
  const ggmlStep = () =>
    perLoad(spec) === 4
      ? `    let x0 = A[pa + k];
${each((r) => `    acc${r} = fma(x0, ${reads?.vec4(`pb${r} + k`)}, acc${r});`)}`
      : `    let x0 = A[pa + 2u * k]; let x1 = A[pa + 2u * k + 1u];
${each(
  (r) => `    acc${r} = fma(x0, ${reads?.vec4(`2u * (pb${r} + k)`)}, acc${r});
    acc${r} = fma(x1, ${reads?.vec4(`2u * (pb${r} + k) + 1u`)}, acc${r});`,
)}`;
  const step = quant
    ? isGgmlFormat(quant)
      ? ggmlStep()
      : quant === 'int8'
        ? `    let x0 = A[pa + k];
${each((r) => `    acc${r} = fma(x0, i8x4(B[pb${r} + k], s${r}), acc${r});`)}`
        : `    let x0 = A[pa + 2u * k]; let x1 = A[pa + 2u * k + 1u];
${each(
  (r) => `    let u${r} = B[pb${r} + k]; let s${r} = QS[(pb${r} + k) >> 3u];
    acc${r} = fma(x0, q4x4(u${r}, 0u, s${r}), acc${r});
    acc${r} = fma(x1, q4x4(u${r}, 1u, s${r}), acc${r});`,
)}`
    : half
      ? `    let x0 = A[pa + 2u * k]; let x1 = A[pa + 2u * k + 1u];
${each(
  (r) => `    let u${r} = B[pb${r} + k];
    acc${r} = fma(x0, ${half}x4(u${r}.xy), acc${r});
    acc${r} = fma(x1, ${half}x4(u${r}.zw), acc${r});`,
)}`
      : `    let x0 = A[pa + k];
${each((r) => `    acc${r} = fma(x0, B[pb${r} + k], acc${r});`)}`;
  // An int8 row's scale is its stored row's (row n0 + r, clamped like its loads).
  const rowScales = quant === 'int8' ? each((r) => `  let s${r} = QS[min(n0 + ${r}u, N - 1u)];`) : '';
  const per = perLoad(spec);
  const wgsl = `enable subgroups;
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<${quant ? 'u32' : half ? 'vec4<u32>' : 'vec4<f32>'}>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${PARAMS_WGSL}
${reads ? reads.prelude : half ? HALF_READS : ''}
@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let N = P.N;
  let n0 = (wid.y * nwg.x + wid.x) * ${ROWS}u;
  if (n0 >= N) { return; }
  let KV = P.K / ${per}u;
  let pa = P.aOff / 4u;
${each((r) => `  let pb${r} = P.bOff / ${per}u + min(n0 + ${r}u, N - 1u) * KV;\n  var acc${r} = vec4<f32>(0.0);`)}
${rowScales}
  for (var k = l; k < KV; k += ${lanes}u) {
${step}
  }
  let alpha = P.alpha; let accum = P.accumulate != 0u;
${each(
  (r) => `  {
    let s = subgroupAdd(acc${r}.x + acc${r}.y + acc${r}.z + acc${r}.w);
    let o = P.cOff + n0 + ${r}u;
    if (l == 0u && n0 + ${r}u < N) {
      var v = alpha * s;
      if (accum) { v += C[o]; }
      C[o] = v;
    }
  }`,
)}
}`;
  return {
    key: `mm_gemv_l${lanes}${half || quant ? `_${half ?? quant}` : ''}`,
    wgsl,
    workgroups: [x, Math.ceil(groups / x), 1],
  };
}
