import type { Device } from '../../device/device.js';
import { isHalf } from '../../dtype.js';
import type { QuantizedTensor } from '../../quant/tensor.js';
import { getDevice } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import { isQuantType } from '../half-reads.js';
import { subgroupWidth } from '../rows.js';
import type { MatmulDispatch } from './run.js';
import {
  NARROW_TILE,
  PACK_WG,
  packedSizes,
  packInvocations,
  packParams,
  packWgsl,
  STORED_SCALES_BINDING,
  STORED_TEXEL,
  type StoredType,
  storedBytes,
  TEX_TM,
  TEX_WIDTH,
  texelFormat,
  textureMatmulGrid,
  textureMatmulParams,
  textureMatmulWgsl,
  textureRows,
  textureTile,
  tileColumns,
  WIDE_TILE,
} from './texture.js';

/**
 * Smallest product (M·N·K) worth packing on its own: below it the two packing passes and their
 * dispatches cost more than the faster loads save (measured on lavapipe).
 */
const MIN_WORK = 1 << 21;

/**
 * Shortest K whose weight-gradient products (Aᵀ·B) take the texture path even with a small or
 * skinny output: the gradients of LoRA factors over a batch of tokens (r x in, out x r; K the token
 * count). The buffer kernels split such products along K and reduce, loading every element through
 * per-lane buffer reads; packed, they ran faster despite the narrow tile's padding (lavapipe, AVX2,
 * GPU time, 2048 tokens: 32 x 8 (Aᵀ·B) 1.08 -> 0.74 ms, 64 x 8 1.21 -> 0.93, 8 x 64 0.64 -> 0.46;
 * 8 x 2048 x 4096 17.4 -> 10.8).
 */
const LONG_K = 1024;
/** Largest output (M·N) the long-K rule takes: larger ones are decided by the rule for large products. */
const LONG_K_MAX_OUTPUT = 1 << 15;

/** Whether this device can run the texture matmul (readable storage textures, subgroups of 8+). */
export function textureMatmulAvailable(): boolean {
  return getDevice().info.readableStorageTextures && subgroupWidth() >= 8;
}

/**
 * Which matmul kernels large products take on this device: 'textures' (packed operands, CPU
 * adapters), 'subgroups' (panels shared by subgroup broadcast) or 'portable' (per-lane loads).
 */
export function matmulPath(): 'textures' | 'subgroups' | 'portable' {
  const dev = getDevice();
  if (
    textureMatmulAvailable() &&
    dev.matmulTextures !== 'never' &&
    (dev.info.isSoftware || dev.matmulTextures === 'always')
  )
    return 'textures';
  return subgroupWidth() >= 8 ? 'subgroups' : 'portable';
}

/** Whether runMatmul should take the texture path for this product (see texture.ts). */
export function textureMatmulSuits(
  a: Tensor,
  b: Tensor | QuantizedTensor,
  c: Tensor,
  d: MatmulDispatch,
): boolean {
  return textureMatmulSizesSuit([a.size, b.size, c.size], d);
}

/** textureMatmulSuits for operands of these element counts (A, B, C), before they exist. */
export function textureMatmulSizesSuit(sizes: readonly [number, number, number], d: MatmulDispatch): boolean {
  const dev = getDevice();
  if (dev.matmulTextures === 'never' || d.batch !== 1 || !textureMatmulAvailable()) return false;
  const limit = dev.maxBindingBytes;
  if (sizes.some((n) => n * 4 > limit)) return false;
  if (dev.matmulTextures === 'always') return true;
  if (!dev.info.isSoftware) return false;
  // Weight gradients (Aᵀ·B over the tokens); M or N below 8 is a matrix-vector product.
  if (d.transA && d.K >= LONG_K && Math.min(d.M, d.N) >= 8 && d.M * d.N <= LONG_K_MAX_OUTPUT) return true;
  // N of at least one narrow workgroup's columns: a narrower product leaves lanes multiplying padding.
  return d.M >= TEX_TM && d.N >= tileColumns(NARROW_TILE) && d.K >= 16 && d.M * d.N * d.K >= MIN_WORK;
}

/**
 * Roles of the two scratch textures (see Device.storageTexture) the products pack their operands
 * into; other kernels may copy operands into them too, since their contents only live within a pass.
 */
export const SCRATCH_ROLES = ['matmul-a', 'matmul-b'] as const;

/**
 * Sizes of the packed blocks staged through a buffer (see pack): below 256 KiB the extra copy cost
 * as much as it saved (64 x 176: 0.08 ms either way on lavapipe, AVX2); above 16 MiB no buffer that
 * large is added at once.
 */
const STAGE_BYTES = { min: 256 * 2 ** 10, max: 16 * 2 ** 20 };

/**
 * Most copies one block's rows may take (see pack): 4 serve a K block of 4,096 columns in the
 * 4,096-texel-wide scratch textures; narrower blocks would take a copy per few rows.
 */
const MAX_ROW_COPIES = 4;

/** Largest blocks packed at once: A is [M rows, K/4 texels], B [K rows, N/4 texels]. */
const BLOCKS = { M: 2048, K: 4096, N: 16384 };
let blocks = BLOCKS;

let packing: 'auto' | 'staged' | 'texture' = 'auto';

/**
 * Smaller blocks let tests cover the blocked paths with small products, and `packing` forces one
 * way of packing (see pack); null restores the defaults.
 */
export function setTextureBlocksForTesting(
  b: { M: number; K: number; N: number; packing?: 'staged' | 'texture' } | null,
): void {
  blocks = b ?? BLOCKS;
  packing = b?.packing ?? 'auto';
}

/**
 * Where A and C lie inside wider stored matrices: A is the columns [aCol, aCol + its stored width)
 * of a matrix of `aPitch` columns, C the columns [cCol, cCol + N) of one of `cPitch`. With
 * `accumulate`, the product is added to what C holds. A product on column blocks of a matrix (an
 * LM head's vocabulary blocks) then reads and writes them in place, with no slice or concat copy.
 */
export interface TextureMatmulView {
  aCol: number;
  aPitch: number;
  cCol: number;
  cPitch: number;
  accumulate: boolean;
}

/** Options of {@link runTextureMatmul}. */
export interface TextureMatmulOptions {
  /** A quantized B's f32 block scales, which its packing pass or the product kernel decodes it with. */
  scales?: Tensor;
  /** Where A and C lie inside wider matrices (default: each dense on its own). */
  view?: TextureMatmulView;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Added to every row of the product, after it (and after C's contents): [N] f32. */
  bias?: Tensor;
}

/**
 * C (+)= alpha·op(A)·op(B) through packed textures, in blocks: K in blocks summed into C, M and N
 * in blocks written side by side. The product is added to C's contents when `view.accumulate`.
 *
 * B read transposed ([N, K] as stored, a weight in x·Wᵀ) is transposed while packing, which on a
 * CPU adapter costs several times a copy per element. When B is the larger operand (N > M: an LM
 * head's vocabulary, a wide layer's input gradient at short length), the product is computed as
 * Cᵀ = op(B)ᵀ·op(A)ᵀ instead, stored transposed: the large operand is then packed as it is stored
 * (a copy when its rows are whole) and the small one transposed. Every element is the same sum in
 * the same order, so the values are identical to the bit.
 *
 * A frozen f16/bf16 or nf4/fp4/int8 operand read as stored with whole rows of 8-value texels (a
 * weight as A when computed transposed, or as B in an input gradient dY·W) is copied as it is into
 * a uint texture and decoded by the product kernel (see StoredOperands), not converted by a packing
 * pass. A quantized weight is computed transposed only when its codes can be read so (N > M, K a
 * multiple of 8): packed either way, it cost the same (measured on a Llama-1B-shaped nf4 step).
 */
export function runTextureMatmul(
  a: Tensor,
  b: Tensor | QuantizedTensor,
  c: Tensor,
  d: MatmulDispatch,
  { scales, view, alpha = 1, bias }: TextureMatmulOptions = {},
): void {
  const { M, N, K, transA, transB } = d;
  const aCol = view?.aCol ?? 0;
  const aPitch = view?.aPitch ?? (transA ? M : K);
  const out = {
    c,
    cCol: view?.cCol ?? 0,
    ldc: view?.cPitch ?? N,
    accumulate: view?.accumulate ?? false,
    alpha,
    bias,
  };
  const denseA = aCol === 0 && aPitch === (transA ? M : K);
  const swap =
    b instanceof Tensor
      ? transA || N > M
      : !transA && N > M && K % STORED_TEXEL === 0 && storedOf(b) !== undefined;
  if (transB && denseA && swap)
    runBlocks(
      b,
      a,
      { M: N, N: M, K, transA: false, transB: !transA, aCol: 0, aPitch: K, scales },
      { ...out, transC: true },
    );
  else runBlocks(a, b, { M, N, K, transA, transB, aCol, aPitch, scales }, { ...out, transC: false });
}

/** The operands of one blocked product: A is columns [aCol, ..) of a matrix of aPitch columns. */
interface BlockOperands {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  aCol: number;
  aPitch: number;
  /** The quantized operand's block scales. */
  scales?: Tensor;
}

/**
 * Where the product goes: columns [cCol, ..) of C (ldc columns), or its transpose there when
 * `transC`; `bias` is indexed by C's column (the block's row when transposed).
 */
interface BlockOutput {
  c: Tensor;
  cCol: number;
  ldc: number;
  accumulate: boolean;
  alpha: number;
  transC: boolean;
  bias?: Tensor;
}

function runBlocks(
  a: Tensor | QuantizedTensor,
  b: Tensor | QuantizedTensor,
  { M, N, K, transA, transB, aCol, aPitch, scales }: BlockOperands,
  { c, cCol, ldc, accumulate, alpha, transC, bias }: BlockOutput,
): void {
  const dev = getDevice();
  // Computed transposed, A is the large operand that B would otherwise be: it takes B's block size
  // and scratch texture (which the untransposed products size for large operands), so that no
  // scratch texture grows for it.
  const lim = transC ? { M: blocks.N, N: blocks.M, K: blocks.K } : blocks;
  const [roleA, roleB] = transC ? [SCRATCH_ROLES[1], SCRATCH_ROLES[0]] : SCRATCH_ROLES;
  // C's block offsets (m0·ldc + cCol + n0, n0 a multiple of the N block; transposed,
  // n0·ldc + cCol + m0) are then multiples of 4.
  const alignedC = ldc % 4 === 0 && cCol % 4 === 0 && (transC ? lim.M : lim.N) % 4 === 0;
  const mb = Math.min(M, lim.M);
  const nb = Math.min(N, lim.N);
  // Operands copied as stored: B's rows whole (N in one block, of whole texels, on the tile that
  // reads a texel per lane) and its K blocks whole texel steps; A's rows whole, so K is not split,
  // as long as both blocks fit a texture (a K over lim.K then sums in one chain, where the packed
  // path adds the partial sums of its K blocks: the same terms, rounded differently).
  const maxRows = dev.limits.maxTextureDimension2D;
  const storedB =
    !transB && N <= lim.N && N % STORED_TEXEL === 0 && K % 4 === 0 && textureTile(N, K).tn === 2
      ? storedOf(b)
      : undefined;
  const wholeK =
    textureRows([K / STORED_TEXEL, mb]) <= maxRows &&
    textureRows(storedB ? [N / STORED_TEXEL, K] : packedSizes(mb, nb, K, false).b) <= maxRows;
  const storedA =
    !transA && aCol === 0 && aPitch === K && K % STORED_TEXEL === 0 && wholeK ? storedOf(a) : undefined;
  const kb = storedA ? K : Math.min(K, lim.K);
  const halfA = storedA !== undefined && isHalf(storedA);
  const quantized = [a, b].some((x) => !(x instanceof Tensor));
  // A quantized operand read as stored: the kernel binds its scales.
  const quantScales = [storedA, storedB].some(isQuantType);
  if (quantized && !scales) throw new Error('runTextureMatmul: a quantized operand needs its scales');
  for (let k0 = 0; k0 < K; k0 += kb) {
    const nk = Math.min(kb, K - k0);
    for (let n0 = 0; n0 < N; n0 += nb) {
      const nn = Math.min(nb, N - n0);
      const sizeB: [number, number] = storedB ? [N / STORED_TEXEL, nk] : packedSizes(mb, nn, nk, transA).b;
      const bt = dev.storageTexture(roleB, TEX_WIDTH, textureRows(sizeB), texelFormat(storedB));
      if (storedB) copyStored(dev, b, storedB, k0 * N, bt, sizeB);
      else pack(dev, b, bt, transB, { rows: K, cols: N, r0: k0, c0: n0, nr: nk, nc: nn }, sizeB, scales);
      for (let m0 = 0; m0 < M; m0 += mb) {
        const nm = Math.min(mb, M - m0);
        const sizeA: [number, number] = storedA ? [K / STORED_TEXEL, nm] : packedSizes(nm, nn, nk, transA).a;
        const at = dev.storageTexture(roleA, TEX_WIDTH, textureRows(sizeA), texelFormat(storedA));
        // A as it is stored: [M, K], or [K, M] when transposed.
        const blockA = transA
          ? { rows: K, cols: aPitch, r0: k0, c0: aCol + m0, nr: nk, nc: nm }
          : { rows: M, cols: aPitch, r0: m0, c0: aCol + k0, nr: nm, nc: nk };
        if (storedA) copyStored(dev, a, storedA, m0 * K, at, sizeA);
        else pack(dev, a, at, false, blockA, sizeA, scales);
        // One tile for every K block (a stored B needs two texels per lane in each); no medium
        // tile for a half A read as stored (see textureTile).
        const tile = textureTile(nn, K, storedB !== undefined || !halfA);
        // vec4 stores: measured faster on narrow products, where a short K loop makes the stores a
        // large share (2048 x 64 x 172: 2.8 -> 2.3 CPU-ms on narrow tiles, AVX2; 1.09 -> 0.89 ms on
        // medium ones, AVX-512); on wide ones no difference was measurable. Transposed, each lane's
        // rows are consecutive in C, so its stores are vec4s on any tile.
        const vecC = alignedC && (transC || tile !== WIDE_TILE);
        const onto = k0 > 0 || accumulate;
        dev.dispatch({
          key: `mm_texture:${transA ? 't' : 'n'}:${tile.lanes}x${tile.tn}${onto ? ':acc' : ''}${vecC ? ':c4' : ''}${transC ? ':tc' : ''}${bias ? ':b' : ''}${storedA ? `:a-${storedA}` : ''}${storedB ? `:b-${storedB}` : ''}`,
          wgsl: () =>
            textureMatmulWgsl(
              transA,
              tile,
              vecC,
              transC,
              bias !== undefined,
              { a: storedA, b: storedB },
              onto,
            ),
          buffers: [
            c.binding(),
            ...(bias ? [bias.binding()] : []),
            ...(quantScales && scales ? [scales.binding()] : []),
          ],
          layout: {
            buffers: [2, ...(bias ? [4] : []), ...(quantScales ? [STORED_SCALES_BINDING] : [])],
            uniforms: 3,
          },
          uniforms: textureMatmulParams({
            M: nm,
            N: nn,
            k4: Math.ceil(nk / 4),
            cOff: transC ? n0 * ldc + cCol + m0 : m0 * ldc + cCol + n0,
            ldc,
            aWidth: sizeA[0],
            bWidth: sizeB[0],
            alpha,
            biasOff: transC ? m0 : n0,
            addBias: k0 + nk === K,
            qOff: storedA ? m0 * K : k0 * N,
          }),
          textures: [
            { binding: 0, texture: at },
            { binding: 1, texture: bt },
          ],
          workgroups: textureMatmulGrid(nm, nn, tile),
        });
      }
    }
  }
}

/**
 * How the product kernel may read an operand as stored: a frozen f16/bf16 tensor's dtype, or an
 * nf4/fp4/int8 weight's format; undefined for f32 and llama.cpp's types (packed).
 */
const storedOf = (x: Tensor | QuantizedTensor): StoredType | undefined => {
  if (x instanceof Tensor) return isHalf(x.dtype) ? x.dtype : undefined;
  return x.format === 'nf4' || x.format === 'fp4' || x.format === 'int8' ? x.format : undefined;
};

/** Copies width x height texels of a stored operand, from its element `from` on, into `tex` as stored. */
function copyStored(
  dev: Device,
  x: Tensor | QuantizedTensor,
  t: StoredType,
  from: number,
  tex: GPUTexture,
  [width, height]: [number, number],
): void {
  const buffer = x instanceof Tensor ? x.buffer : x.codes.buffer;
  dev.copyToTexture(buffer, storedBytes(t, from), tex, width * height);
}

/**
 * Packs a block of op(x) (x is [rows, cols], or stored [cols, rows] when `trans`) into `tex`; a
 * quantized x is decoded with `scales` (bound at 3).
 */
function pack(
  dev: Device,
  x: Tensor | QuantizedTensor,
  tex: GPUTexture,
  trans: boolean,
  blk: { rows: number; cols: number; r0: number; c0: number; nr: number; nc: number },
  [width, height]: [number, number],
  scales?: Tensor,
): void {
  // An f32 block that needs no transposition nor padding, whose rows are whole texels from a texel
  // boundary (c0 and the row pitch multiples of 4), is laid out as packed, row after row: copies (a
  // memcpy on CPU adapters) pack it, with no pass. Whole stored rows lie end to end: one copy. Rows at
  // a pitch (a K block of columns of a wider matrix: an LM head's logit gradient) take one copy per
  // row residue (see copyRowsToTexture): GPT-2 small's LM head, forward and backward, 1,545 against
  // 1,585 ms (lavapipe, AVX-512, medians of 8 alternated in one process; 10 packing passes of 508 x
  // 4,096 fewer).
  const asStored =
    !trans &&
    x instanceof Tensor &&
    x.dtype === 'f32' &&
    blk.c0 % 4 === 0 &&
    blk.cols % 4 === 0 &&
    width * 4 === blk.nc &&
    height === blk.nr
      ? x
      : null;
  if (asStored && blk.nc === blk.cols) {
    dev.copyToTexture(asStored.buffer, blk.r0 * blk.cols * 4, tex, width * height);
    return;
  }
  if (asStored && tex.width / width <= MAX_ROW_COPIES && dev.rowCopySuits(tex, width, blk.cols * 4)) {
    dev.copyRowsToTexture(
      asStored.buffer,
      (blk.r0 * blk.cols + blk.c0) * 4,
      blk.cols * 4,
      tex,
      width,
      height,
    );
    return;
  }
  const vec = trans ? blk.rows % 4 === 0 && blk.r0 % 4 === 0 : blk.cols % 4 === 0 && blk.c0 % 4 === 0;
  const groups = Math.ceil(packInvocations(trans, vec, width, height) / PACK_WG);
  const maxX = dev.limits.maxComputeWorkgroupsPerDimension;
  const y = Math.ceil(groups / maxX);
  const dtype = !(x instanceof Tensor) ? x.format : x.dtype === 'f16' || x.dtype === 'bf16' ? x.dtype : 'f32';
  // A block is written to a buffer laid out as the texture, which a copy then moves into it: on
  // lavapipe (AVX2) a texel stored to a storage texture cost about twice a vec4 stored to a buffer
  // (a GPT-2 weight's transposed packing, 3072 x 512: 4.1 against 2.5 ms with the copy; 768 x 512:
  // 0.93 against 0.60). Only where the buffer cannot raise the peak memory (an LM head's backward
  // runs at the peak) and its size is within STAGE_BYTES; otherwise the pass stores to the texture.
  const bytes = width * height * 16;
  const staged =
    packing === 'auto'
      ? bytes >= STAGE_BYTES.min && bytes <= STAGE_BYTES.max && bytes <= dev.memory.headroom()
      : packing === 'staged';
  const stage = staged ? Tensor.empty([4 * width * height], 'f32', 'other') : null;
  const operand = x instanceof Tensor ? [x.binding()] : [x.codes.binding(), (scales ?? x.scales).binding()];
  dev.dispatch({
    key: `mm_pack:${trans ? 't' : 'n'}:${vec ? 'v' : 's'}:${dtype}${stage ? ':buf' : ''}`,
    wgsl: () => packWgsl(trans, vec, dtype, stage !== null),
    buffers: stage ? [...operand, stage.binding()] : operand,
    layout: { buffers: [0, ...(operand.length > 1 ? [3] : []), ...(stage ? [1] : [])], uniforms: 2 },
    uniforms: packParams({ off: 0, ...blk, width, height }),
    textures: stage ? [] : [{ binding: 1, texture: tex }],
    workgroups: [Math.ceil(groups / y), y, 1],
  });
  if (stage) {
    dev.copyToTexture(stage.buffer, 0, tex, width * height);
    stage.dispose();
  }
}
