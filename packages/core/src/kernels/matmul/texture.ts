/**
 * The texture matmul for CPU adapters: both operands are first packed into rgba32float storage
 * textures, then a subgroup kernel multiplies them. Pure code generation and geometry (no WebGPU
 * calls), like wgsl.ts.
 *
 * Why textures (measured on lavapipe, Mesa 25.0, 1024³): llvmpipe turns a storage-buffer load at a
 * per-lane address into a scalar loop that re-reads the descriptor and bounds-checks every
 * component (~60 instructions per component across 8 lanes), while a read-only storage-texture load
 * is one SIMD call that fetches a whole texel for all lanes (~55 instructions per vec4). The same
 * kernel went from 12 GFLOP/s on buffers to 28 on textures; with the A panel shared by subgroup
 * broadcast and a 16 x 8 register tile per lane, from 42 (the best buffer kernel) to 48-56.
 * Packing costs one pass over each operand, O(MK + KN) against the product's O(MNK); an f32
 * operand already laid out as packed (whole rows, no padding) is copied instead (run-texture.ts).
 *
 * Layout: a texel holds 4 consecutive elements of a row. A is packed as it is stored ([M, K] or,
 * transposed, [K, M]), and the kernel regroups a transposed panel's components (in llvmpipe's SoA
 * layout a vec4 is four registers, so that costs nothing). B is always packed as [K, N]: read as
 * [N, K], the lanes' texels would lie far apart and the product ran at half speed, so a
 * transposed B is transposed while packing, 16 x 4 elements per invocation. K is zero-padded to
 * whole texels, so the sums need no bounds checks. M and N are not padded: the lanes of a tile past
 * the block's last row or column texel read other texels (of the next row of the block, or outside
 * it: clamped or zero), which only reach outputs past M or N, and those are not stored. So an f32
 * operand whose rows are whole texels is laid out exactly as it is stored, and copied instead of
 * packed whatever M and N are. Each packed block is stored row-major in a texture of fixed width
 * TEX_WIDTH (texel i at (i % TEX_WIDTH, i / TEX_WIDTH)), so one texture per operand, sized by area,
 * serves every shape: no texture is created per product.
 */

import { type HalfDType, isHalf } from '../../dtype.js';
import { HALF_READS, isQuantType, type OperandType, operandReads, quantReads } from '../half-reads.js';

/** Width of the scratch textures, in texels (a power of two: the index split is a mask and a shift). */
export const TEX_WIDTH = 4096;
const WIDTH_BITS = Math.log2(TEX_WIDTH);
/** WGSL: texel i of a block stored row-major at TEX_WIDTH texels per texture row. */
export const LIN = `fn lin(i: u32) -> vec2<u32> { return vec2<u32>(i & ${TEX_WIDTH - 1}u, i >> ${WIDTH_BITS}u); }`;

const cdiv = (a: number, b: number) => Math.ceil(a / b);
const up = (a: number, b: number) => cdiv(a, b) * b;

/** Rows of C per lane (and per workgroup: lanes differ in columns). */
export const TEX_TM = 16;

/** Lanes per workgroup and column texels (4 columns each) per lane of the product kernel. */
export interface TextureTile {
  lanes: number;
  tn: number;
}
/** Wide products: 16 lanes x 2 texels, 128 columns per workgroup. */
export const WIDE_TILE: TextureTile = { lanes: 16, tn: 2 };
/**
 * Products narrower than a wide tile (a small model's hidden size: 64 or 32 columns), or that
 * wide tiles would pad much further: 8 lanes x 1 texel, 32 columns per workgroup. On lavapipe
 * (AVX2) this ran a 2048 x 64 x 512 product's kernel at 45 GFLOP/s, where the buffer kernels
 * reach about 10.
 */
export const NARROW_TILE: TextureTile = { lanes: 8, tn: 1 };
/**
 * 8 lanes x 2 texels, 64 columns per workgroup: a wide tile's lanes in one subgroup (a wide
 * workgroup is two subgroups of 8 on lavapipe, each loading the A panel), for products 64 columns
 * wide or an odd multiple of 64: a Llama's projections at 64 tokens computed transposed, a
 * stories260K-sized model's 64-wide outputs.
 */
export const MEDIUM_TILE: TextureTile = { lanes: 8, tn: 2 };
/** Columns of C one workgroup covers. */
export const tileColumns = (t: TextureTile) => 4 * t.lanes * t.tn;
/**
 * Two texels per lane cost per column this fraction of one at large K (lavapipe, AVX2, 1024³: 41
 * against 48 ms); at K = 64 both cost the same.
 */
const WIDE_COLUMN_COST = 0.85;
/**
 * Shortest K at which a medium tile takes the wide tiles' cost per column. On lavapipe (AVX-512),
 * best of 2-3 alternated runs, medium against narrow tiles (M x N x K): x·Wᵀ at 64 tokens, computed
 * transposed, 512 x 64 x 2048 2.38 against 2.92 ms, 2048 x 64 x 2048 8.65 against 10.52, 8192 x 64
 * x 2048 35.0 against 41.1; 2048 x 64 x 256 1.23 against 1.45, 2048 x 64 x 172 0.91 against 1.02,
 * 2048 x 172 x 256 3.25 against 3.64; at K = 128 0.81 against 0.84; at K = 64 no faster (2048 x 64 x
 * 64: 0.53 against 0.52 ms) or slower (2048 x 172 x 64: 1.28 against 1.22). With A a bf16 weight
 * read as stored (one load per two steps), not faster: 2048 x 64 x 2048 9.74 against 8.74 ms, 8192
 * x 64 x 2048 34.5 against 32.8; with an nf4 one, 9.72 against 10.02 and 37.1 against 40.3.
 */
const MEDIUM_MIN_K = 128;
/**
 * The tile of a product (or of an N block of it) with N columns and K terms: the one with the
 * fewest padded columns, weighted by their cost, the wider on a tie. A 172-wide FFN product pads
 * to 256 columns in wide tiles but only to 192 in narrow ones (2048 x 172 x 64: 3.2 -> 1.6 ms on
 * lavapipe, AVX2) or medium ones. `medium`: whether medium tiles may serve (not for a half A read as
 * stored, see MEDIUM_MIN_K).
 */
export const textureTile = (N: number, K: number, medium = true): TextureTile => {
  const cost = (t: TextureTile, perColumn: number) => perColumn * up(N, tileColumns(t));
  const wide = cost(WIDE_TILE, WIDE_COLUMN_COST);
  const mid = medium ? cost(MEDIUM_TILE, K >= MEDIUM_MIN_K ? WIDE_COLUMN_COST : 1) : Infinity;
  const narrow = cost(NARROW_TILE, 1);
  if (wide <= mid && wide <= narrow) return WIDE_TILE;
  return mid < narrow ? MEDIUM_TILE : NARROW_TILE;
};
/** Texels per packing workgroup. */
export const PACK_WG = 64;

/** Uniforms of the packing pass (see packWgsl), in declaration order. */
export interface PackParams {
  /** Element offset of the operand in its binding. */
  off: number;
  /** Rows and columns of the whole operand as the product reads it (op(X)). */
  rows: number;
  cols: number;
  /** The block of op(X) to pack: rows [r0, r0 + nr), columns [c0, c0 + nc). */
  r0: number;
  c0: number;
  nr: number;
  nc: number;
  /** Width in texels and height in rows of the packed block (padded to whole tiles). */
  width: number;
  height: number;
}

/** Rows of op(X) one invocation of the transposed vec4 packing covers (see packWgsl). */
const PACK_T_ROWS = 16;

/**
 * Packs a block of op(X) into a texture, zero outside the block. Element (r, c) of op(X) is
 * X[off + r·cols + c], or X[off + c·rows + r] when `trans` (X is stored transposed). `vec`: X is
 * read as vec4 along its stored rows (cols, c0 and off multiples of 4; rows and r0 when `trans`).
 * Transposed and vec4, one invocation packs a 16 x 4 block of op(X): from each of 4 stored rows,
 * 16 consecutive elements (a whole 64-byte line), transposed in registers (in llvmpipe's SoA
 * layout a vec4 is four registers, so that is free) into 16 texels of one texel column. Side by
 * side invocations take side by side texel columns, so both the reads and the writes of a
 * workgroup fill whole cache lines; with 4 rows per invocation every line of a large transposed
 * weight was fetched four times, far apart in time. With `toBuffer` the block is written to S,
 * laid out as the texture (texel i at S[i]), for a copy to move into it.
 */
export function packWgsl(trans: boolean, vec: boolean, dtype: OperandType = 'f32', toBuffer = false): string {
  const blocked = trans && vec;
  const put = (i: string, v: string) => (toBuffer ? `S[${i}] = ${v};` : `textureStore(T, lin(${i}), ${v});`);
  // A quantized X's scales at binding 3 (its stored rows are `rows` long when transposed).
  const X = operandReads('X', dtype, { scales: 3, rowLen: trans ? 'P.rows' : 'P.cols' });
  const groups = PACK_T_ROWS / 4;
  const body = blocked
    ? `let yb = (gi / P.width) * ${PACK_T_ROWS}u;
${Array.from({ length: groups }, (_, h) => {
  const y0 = `yb + ${4 * h}u`;
  const loads = [0, 1, 2, 3]
    .map(
      (e) => `    var m${e} = vec4<f32>(0.0);
    if (y0 < P.nr && x * 4u + ${e}u < P.nc) { m${e} = ${X.vec4(`(P.off + (P.c0 + x * 4u + ${e}u) * P.rows + P.r0 + y0) / 4u`)}; }`,
    )
    .join('\n');
  const stores = [0, 1, 2, 3]
    .map(
      (q) =>
        `    if (y0 + ${q}u < P.height) { ${put(`(y0 + ${q}u) * P.width + x`, `select(vec4<f32>(0.0), vec4<f32>(m0.${'xyzw'[q]}, m1.${'xyzw'[q]}, m2.${'xyzw'[q]}, m3.${'xyzw'[q]}), y0 + ${q}u < P.nr)`)} }`,
    )
    .join('\n');
  return `  {
    let y0 = ${y0};
${loads}
${stores}
  }`;
}).join('\n')}`
    : `let y = gi / P.width;
  var v = vec4<f32>(0.0);
  if (y < P.nr && x * 4u < P.nc) {
    let r = P.r0 + y;
    let c = P.c0 + x * 4u;
    ${
      vec
        ? `v = ${X.vec4('(P.off + r * P.cols + c) / 4u')};`
        : // Four reads written out, not a loop over e: lavapipe on an AVX-512 EPYC (Mesa 25.0,
          // LLVM 15) lost the values of a loop with a conditional body inside this if for the
          // invocations of a partly active SIMD vector (the workgroup's last texels).
          [0, 1, 2, 3]
            .map(
              (e) => `if (c + ${e}u < P.c0 + P.nc) {
      v[${e}] = ${X.scalar(`P.off + ${trans ? `(c + ${e}u) * P.rows + r` : `r * P.cols + c + ${e}u`}`)};
    }`,
            )
            .join('\n    ')
    }
  }
  ${put('y * P.width + x', 'v')}`;
  return `@group(0) @binding(0) var<storage, read> X: array<${X.type(vec)}>;
${X.prelude}
${toBuffer ? '@group(0) @binding(1) var<storage, read_write> S: array<vec4<f32>>;' : '@group(0) @binding(1) var T: texture_storage_2d<rgba32float, write>;'}
struct Params { off: u32, rows: u32, cols: u32, r0: u32, c0: u32, nr: u32, nc: u32, width: u32, height: u32 }
@group(0) @binding(2) var<uniform> P: Params;
${LIN}
@compute @workgroup_size(${PACK_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.y * nwg.x + wid.x) * ${PACK_WG}u + lid;
  if (gi >= ${blocked ? `P.width * ((P.height + ${PACK_T_ROWS - 1}u) / ${PACK_T_ROWS}u)` : 'P.width * P.height'}) { return; }
  let x = gi % P.width;
  ${body}
}`;
}

/** Invocations of a packing pass: one per texel, or per 16 x 4 block (transposed vec4 packing). */
export function packInvocations(trans: boolean, vec: boolean, width: number, height: number): number {
  return trans && vec ? width * Math.ceil(height / PACK_T_ROWS) : width * height;
}

export function packParams(p: PackParams): ArrayBuffer {
  return new Uint32Array([p.off, p.rows, p.cols, p.r0, p.c0, p.nr, p.nc, p.width, p.height, 0, 0, 0]).buffer;
}

/**
 * Packed sizes [texels wide, rows] of the blocks of A (as stored: [M, K/4] or, transposed,
 * [K, M/4]) and B (always [K, N/4]) for an M x N x K block of the product: K padded to whole
 * texels, M and N not padded (see above).
 */
export function packedSizes(
  M: number,
  N: number,
  K: number,
  transA: boolean,
): { a: [number, number]; b: [number, number] } {
  const k4 = cdiv(K, 4);
  return {
    a: transA ? [cdiv(M, 4), 4 * k4] : [k4, M],
    b: [cdiv(N, 4), 4 * k4],
  };
}

/** Texture rows that hold a packed block of `width` x `height` texels. */
export const textureRows = ([width, height]: [number, number]) => Math.ceil((width * height) / TEX_WIDTH);

/** Workgroups of the product of an M x N block. */
export function textureMatmulGrid(M: number, N: number, tile: TextureTile): [number, number, number] {
  return [cdiv(M, TEX_TM), cdiv(N, tileColumns(tile)), 1];
}

/** Uniforms of the product pass, in declaration order. */
export interface TextureMatmulParams {
  M: number;
  N: number;
  /** Texels along k of the block (K/4, rounded up). */
  k4: number;
  /** Element offset of the block's C[0, 0] and the row pitch of C. */
  cOff: number;
  ldc: number;
  /** Widths of the packed A and B blocks in texels. */
  aWidth: number;
  bWidth: number;
  /** Scale of the product (before it is added to C). */
  alpha: number;
  /**
   * With a bias bound: the bias element of the block's first column (its first row, transposed),
   * and whether this pass adds it (the last pass along K, so that it is added after the product).
   */
  biasOff?: number;
  addBias?: boolean;
  /** A quantized stored operand: the element offset of the block within it (its scales' origin). */
  qOff?: number;
}

export function textureMatmulParams(p: TextureMatmulParams): ArrayBuffer {
  const u = new Uint32Array([
    p.M,
    p.N,
    p.k4,
    p.cOff,
    p.ldc,
    p.aWidth,
    p.bWidth,
    0,
    p.biasOff ?? 0,
    p.addBias ? 1 : 0,
    p.qOff ?? 0,
    // A uniform binding is a whole number of 16-byte units.
    0,
  ]);
  new Float32Array(u.buffer)[7] = p.alpha;
  return u.buffer;
}

/** A quantized format whose codes the product kernel decodes as stored. */
export type StoredQuant = 'nf4' | 'fp4' | 'int8';
/** How an operand the product kernel reads as stored is encoded. */
export type StoredType = HalfDType | StoredQuant;

/**
 * Operands held as stored in uint textures, 8 values per texel, where converting them to f32
 * texels takes a packing pass (on lavapipe about 2 ns per bf16 value, as long as the product itself
 * at 64 rows; about 3-4 ns per nf4 value):
 *  - a frozen f16/bf16 matrix whose rows are whole texels of 8 values (two per u32, low half first)
 *    is copied as it is stored into an rgba32uint texture;
 *  - a frozen nf4/fp4 weight whose rows are whole u32 words (8 codes) is copied as it is stored into
 *    an r32uint texture and decoded with its 64-element blocks' f32 scales, bound at 5 (QS);
 *  - a frozen int8 weight whose rows are whole pairs of words (8 codes) is copied as it is stored
 *    into an rg32uint texture and decoded with its rows' f32 steps (QS).
 * A quantized value is the one f32 product the packing pass would store, so the sums are identical.
 * `a`: A, read as stored ([M, K], not transposed); `b`: B ([K, N], on a tile of two column texels
 * per lane, wide or medium: they are one such texel). At most one of them is quantized.
 */
export interface StoredOperands {
  a?: StoredType;
  b?: StoredType;
}

/** Values of an operand held as stored per texel of its texture. */
export const STORED_TEXEL = 8;

/** Binding of a quantized stored operand's f32 block scales in the product kernel. */
export const STORED_SCALES_BINDING = 5;

/** Bytes of `n` values of a stored operand as it is stored (the offset of a block within it). */
export const storedBytes = (t: StoredType, n: number): number =>
  isHalf(t) ? 2 * n : t === 'int8' ? n : n / 2;

/** The texture format an operand is held in: f32 texels, or the uint texels of a stored one. */
export const texelFormat = (
  stored: StoredType | undefined,
): 'rgba32float' | 'rgba32uint' | 'rg32uint' | 'r32uint' =>
  stored === undefined
    ? 'rgba32float'
    : isHalf(stored)
      ? 'rgba32uint'
      : stored === 'int8'
        ? 'rg32uint'
        : 'r32uint';

/**
 * C[block] (+)= alpha·op(At)·Bt. Lane l of a workgroup owns rows row0 .. row0 + TM - 1 (the
 * workgroup's) and column texels g0 .. g0 + TN - 1. Per 4 k, lanes 0..7 each load two texels of
 * the A panel (TM = 16 rows x 4 k) and subgroupBroadcast hands every value to every lane; each
 * lane loads its own 4·TN texels of B. Each k is accumulated in order with fma, as the buffer
 * kernels do, so a product's values do not depend on which path its shape took (scores of a
 * document must not change with the batch it is in). With `transC` the block is stored transposed:
 * element (m, n) at C[cOff + n·ldc + m]. With `accumulate` the product is added to what C holds:
 * compiled in rather than a uniform branch, since the loads of C after the loop, even skipped, made
 * the whole kernel slower (lavapipe, AVX-512, alternated in one process, 16 rounds: 512 x 2304 x 768
 * 37.7 against 38.5 ms median, 512 x 768 x 3072 52.1 against 53.8, 1024³ 40.2 against 41.4). With
 * `bias`, the pass that has `addBias` set adds
 * Bias[biasOff + n] (transposed: + m) to each element it stores. With `half` operands (see
 * StoredOperands) each loaded texel holds 8 values: A's serve two steps of 4 k (P.k4 is then
 * even), B's a lane's two column texels; the sums are the same, in the same order.
 */
export function textureMatmulWgsl(
  transA: boolean,
  tile: TextureTile,
  vecC = false,
  transC = false,
  bias = false,
  stored: StoredOperands = {},
  accumulate = false,
): string {
  const TM = TEX_TM;
  const TN = tile.tn;
  if (stored.a && transA) throw new Error('textureMatmulWgsl: a stored A is read as stored, not transposed');
  if (stored.b && TN !== 2) throw new Error('textureMatmulWgsl: a stored B needs two column texels per lane');
  const quantA = isQuantType(stored.a);
  const quantB = isQuantType(stored.b);
  if (quantA && quantB) throw new Error('textureMatmulWgsl: at most one operand is quantized');
  const quant = quantA ? stored.a : quantB ? stored.b : undefined;
  const half = [stored.a, stored.b].some((t) => t !== undefined && isHalf(t));
  const xyzw = (q: number) => 'xyzw'[q];
  const L: string[] = [];
  L.push(`enable subgroups;
@group(0) @binding(0) var At: texture_storage_2d<${texelFormat(stored.a)}, read>;
@group(0) @binding(1) var Bt: texture_storage_2d<${texelFormat(stored.b)}, read>;
@group(0) @binding(2) var<storage, read_write> C: array<${vecC ? 'vec4<f32>' : 'f32'}>;${half ? HALF_READS : ''}
${quant ? `${quantReads(quant as StoredQuant, STORED_SCALES_BINDING)}\n` : ''}${bias ? '@group(0) @binding(4) var<storage, read> Bias: array<f32>;\n' : ''}struct Params { M: u32, N: u32, k4: u32, cOff: u32, ldc: u32, aWidth: u32, bWidth: u32, alpha: f32, biasOff: u32, addBias: u32${quant ? ', qOff: u32' : ''} }
@group(0) @binding(3) var<uniform> P: Params;
${LIN}
@compute @workgroup_size(${tile.lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sid: u32) {
  // Workgroups along M run first: consecutive ones share a strip of B while it is in cache.
  let row0 = wid.x * ${TM}u;
  let g0 = (wid.y * ${tile.lanes}u + li) * ${TN}u;
  // Lanes past the first 8 (wider subgroups) load what lane 7 loads: no one reads it.
  let s = min(sid, 7u);`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) L.push(`  var c${i}_${j} = vec4<f32>(0.0);`);
  // A stored A's texel covers two steps of 4 k: the loop takes both, loading it once; a 4-bit
  // one's 8 values lie in one 64-element block of its row (K is a multiple of 8), with one scale;
  // an int8 one's rows have one step each (P.qOff: the block's first element, a multiple of K).
  const int8 = quant === 'int8';
  const steps = stored.a ? 2 : 1;
  if (quantA && int8)
    for (let h = 0; h < TM / 8; h++)
      L.push(`  let sa${h} = QS[P.qOff / (P.aWidth * 8u) + row0 + s + ${8 * h}u];`);
  if (quantB && int8) L.push(`  let qk = P.qOff / (P.bWidth * 8u);`);
  L.push(`  for (var k4 = 0u; k4 < P.k4; ${steps === 1 ? 'k4++' : `k4 += ${steps}u`}) {`);
  if (stored.a)
    for (let h = 0; h < TM / 8; h++) {
      const r = `row0 + s + ${8 * h}u`;
      const part = quantA ? (int8 ? '.xy' : '.x') : '';
      L.push(`    let u${h} = textureLoad(At, lin((${r}) * P.aWidth + k4 / 2u))${part};`);
      if (quantA && !int8) L.push(`    let sa${h} = QS[(P.qOff + (${r}) * P.aWidth * 8u + k4 * 4u) >> 6u];`);
    }
  for (let q = 0; q < steps; q++) {
    // kq: this step's index of 4 k.
    const kq = q === 0 ? 'k4' : `(k4 + ${q}u)`;
    if (steps > 1) L.push('    {');
    // The A panel: a_i is row i's vec4 over this step's 4 k.
    let aRow: (i: number) => string;
    if (transA) {
      // Texels (k = 4·k4 + e, m-texel t) for e, t < 4; lane s loads (s & 3, s >> 2) and (s & 3, 2 + (s >> 2)).
      for (let h = 0; h < 2; h++)
        L.push(
          `    let p${h} = textureLoad(At, lin((k4 * 4u + (s & 3u)) * P.aWidth + row0 / 4u + ${2 * h}u + (s >> 2u)));`,
        );
      aRow = (i) => {
        const t = i >> 2;
        const c = xyzw(i & 3);
        const comps = [0, 1, 2, 3].map((e) => `subgroupBroadcast(p${t >> 1}.${c}, ${e + 4 * (t & 1)}u)`);
        return `vec4<f32>(${comps.join(', ')})`;
      };
    } else {
      for (let h = 0; h < TM / 8; h++)
        L.push(
          stored.a === undefined
            ? `    let p${h} = textureLoad(At, lin((row0 + s + ${8 * h}u) * P.aWidth + ${kq}));`
            : quantA
              ? int8
                ? `    let p${h} = i8x4(u${h}.${xyzw(q)}, sa${h});`
                : `    let p${h} = q4x4(u${h}, ${q}u, sa${h});`
              : `    let p${h} = ${stored.a}x4(u${h}.${q === 0 ? 'xy' : 'zw'});`,
        );
      aRow = (i) => `subgroupBroadcast(p${i >> 3}, ${i & 7}u)`;
    }
    // b_j_e: 4 columns of column texel g0 + j at k = 4·kq + e (a stored B: both from texel g0 / 2,
    // whose 8 columns lie in one 64-element block of a quantized B's row, N being a multiple of 8).
    const row = (e: number) => `(${kq} * 4u + ${e}u) * P.bWidth`;
    if (quantB && int8)
      for (let e = 0; e < 4; e++)
        L.push(`    let ub${e} = textureLoad(Bt, lin(${row(e)} + g0 / 2u)).xy;
    let sb${e} = QS[qk + ${kq} * 4u + ${e}u];
    let b0_${e} = i8x4(ub${e}.x, sb${e});
    let b1_${e} = i8x4(ub${e}.y, sb${e});`);
    else if (quantB)
      for (let e = 0; e < 4; e++)
        L.push(`    let ub${e} = textureLoad(Bt, lin(${row(e)} + g0 / 2u)).x;
    let sb${e} = QS[(P.qOff + ${row(e)} * 8u + g0 * 4u) >> 6u];
    let b0_${e} = q4x4(ub${e}, 0u, sb${e});
    let b1_${e} = q4x4(ub${e}, 1u, sb${e});`);
    else if (stored.b)
      for (let e = 0; e < 4; e++)
        L.push(`    let ub${e} = textureLoad(Bt, lin(${row(e)} + g0 / 2u));
    let b0_${e} = ${stored.b}x4(ub${e}.xy);
    let b1_${e} = ${stored.b}x4(ub${e}.zw);`);
    else
      for (let j = 0; j < TN; j++)
        for (let e = 0; e < 4; e++)
          L.push(`    let b${j}_${e} = textureLoad(Bt, lin(${row(e)} + g0 + ${j}u));`);
    for (let i = 0; i < TM; i++) {
      L.push(`    {
      let a = ${aRow(i)};`);
      for (let j = 0; j < TN; j++)
        L.push(
          `      c${i}_${j} = ${[0, 1, 2, 3].reduce((acc, e) => `fma(vec4<f32>(a.${xyzw(e)}), b${j}_${e}, ${acc})`, `c${i}_${j}`)};`,
        );
      L.push(`    }`);
    }
    if (steps > 1) L.push('    }');
  }
  L.push('  }');
  // With vecC, C is bound as vec4s (cOff and ldc are multiples of 4): a texel whose 4 columns are all
  // inside C is stored as one vec4 (on lavapipe about half the cost per float of 4 scalar stores).
  // The bias is added last, as an add pass after the product would: (alpha·AB + C) + bias.
  const store = (
    v: string,
    ref: string,
    b?: string,
  ) => `      var v = ${v};${accumulate ? `\n      v += ${ref};` : ''}${b ? `\n      if (P.addBias != 0u) { v += ${b}; }` : ''}
      ${ref} = v;`;
  // A lane's bias values, loaded once: per column texel (bias_j), or per row when transposed (bias_i).
  const biasOf = (i: string) => `Bias[P.biasOff + min(${i}, ${transC ? 'P.M' : 'P.N'} - 1u)]`;
  if (bias && transC) for (let i = 0; i < TM; i++) L.push(`  let bias_${i} = ${biasOf(`row0 + ${i}u`)};`);
  if (bias && !transC)
    for (let j = 0; j < TN; j++)
      L.push(
        `  let bias_${j} = vec4<f32>(${[0, 1, 2, 3].map((e) => biasOf(`(g0 + ${j}u) * 4u + ${e}u`)).join(', ')});`,
      );
  // Four elements of C: with vecC one vec4 store at `at4` when all four lie inside C (`whole`),
  // else (and without vecC) a scalar store each, each under its own bound.
  type Elem = { inside: string; at: string; v: string; b?: string };
  const texel = (whole: string, at4: string, v: string, b: string | undefined, elems: Elem[]) => {
    const scalars = elems
      .map(
        (el) => `    if (${el.inside}) {
      let at = ${el.at};
${store(el.v, vecC ? 'C[at >> 2u][at & 3u]' : 'C[at]', el.b)}
    }`,
      )
      .join('\n');
    return vecC
      ? `    if (${whole}) {
      let at = ${at4};
${store(v, 'C[at]', b)}
    } else {
${scalars}
    }`
      : scalars;
  };
  const four = [0, 1, 2, 3];
  if (transC) {
    // Element (row0 + i, n) goes to C[cOff + n·ldc + row0 + i]: a lane's rows are consecutive there,
    // so with vecC each 4 of them (component e of 4 row accumulators) are one vec4.
    for (let j = 0; j < TN; j++)
      for (let e = 0; e < 4; e++) {
        L.push(`  if ((g0 + ${j}u) * 4u + ${e}u < P.N) {
    let o = P.cOff + ((g0 + ${j}u) * 4u + ${e}u) * P.ldc + row0;`);
        for (let q = 0; q < TM / 4; q++) {
          const rows = four.map((r) => 4 * q + r);
          L.push(
            texel(
              `row0 + ${4 * q + 3}u < P.M`,
              `(o + ${4 * q}u) >> 2u`,
              `P.alpha * vec4<f32>(${rows.map((i) => `c${i}_${j}.${xyzw(e)}`).join(', ')})`,
              bias ? `vec4<f32>(${rows.map((i) => `bias_${i}`).join(', ')})` : undefined,
              rows.map((i) => ({
                inside: `row0 + ${i}u < P.M`,
                at: `o + ${i}u`,
                v: `P.alpha * c${i}_${j}.${xyzw(e)}`,
                b: bias ? `bias_${i}` : undefined,
              })),
            ),
          );
        }
        L.push(`  }`);
      }
  } else
    for (let i = 0; i < TM; i++) {
      L.push(`  if (row0 + ${i}u < P.M) {
    let o = P.cOff + (row0 + ${i}u) * P.ldc;`);
      for (let j = 0; j < TN; j++)
        L.push(
          texel(
            `(g0 + ${j}u) * 4u + 3u < P.N`,
            `(o + (g0 + ${j}u) * 4u) >> 2u`,
            `P.alpha * c${i}_${j}`,
            bias ? `bias_${j}` : undefined,
            four.map((e) => ({
              inside: `(g0 + ${j}u) * 4u + ${e}u < P.N`,
              at: `o + (g0 + ${j}u) * 4u + ${e}u`,
              v: `P.alpha * c${i}_${j}[${e}]`,
              b: bias ? `bias_${j}[${e}]` : undefined,
            })),
          ),
        );
      L.push(`  }`);
    }
  L.push(`}`);
  return L.join('\n');
}
