import { ShapeError } from '../errors.js';
import { grid, main1d, runKernel } from '../kernels/common.js';
import { operandReads } from '../kernels/half-reads.js';
import { tensor, zeros } from '../ops/creation.js';
import { keep } from '../runtime.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import {
  BLOCK_4BIT,
  BLOCK_ABSMAX,
  DYNAMIC_MAP,
  int8Step,
  type QuantFormat,
  type Quantized4Bit,
  type QuantizedInt8,
  quantizeValues,
} from './formats.js';
import {
  GGML_LAYOUTS,
  type GgmlFormat,
  isGgmlFormat,
  type QuantizedGgml,
  type QuantStorage,
} from './ggml.js';

/** Bytes as little-endian u32 words (the storage kernels read), zero-padded to a whole word. */
function words(bytes: Uint8Array | Int8Array): Int32Array {
  const out = new Uint8Array(Math.ceil(bytes.length / 4) * 4 || 4);
  out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  return new Int32Array(out.buffer);
}

/**
 * A frozen weight matrix [N, K] (as stored: nn.Linear's [out, in], or Conv1D's [in, out]) kept
 * quantized in GPU memory. Matmul kernels decode it tile by tile as they load it (matmul() takes it
 * as b), so no full-precision copy exists; dequantize() makes one for checks. Its buffers count as
 * 'weights' in the memory report, and it cannot require grad: it is a base weight, not a parameter
 * to train (LoRA adapters train beside it).
 *
 * Buffers (u32 words, little-endian bytes):
 *  - `codes`: nf4/fp4 two 4-bit codes per byte (first element in the high nibble), int8 one
 *    two's-complement byte per element;
 *  - `scales`: nf4/fp4 one 8-bit dynamic-map code per 64-element block (the double-quantized
 *    absmax); int8 the f32 step of each row (int8Step(absmax): a value is code·step);
 *  - `absmax2` (nf4/fp4): the f32 scale of each 256 absmax codes; `offset` their mean;
 *  - llama.cpp types (q8_0, q4_0, q4_k, q6_k): codes and f32 sub-block scales as
 *    {@link QuantizedGgml} describes them.
 */
export class QuantizedTensor {
  /** Set by dispose(). */
  private disposed = false;
  private _offset: number;

  constructor(
    readonly format: QuantStorage,
    readonly shape: readonly [number, number],
    readonly codes: Tensor,
    readonly scales: Tensor,
    readonly absmax2: Tensor | null,
    offset: number,
  ) {
    this._offset = offset;
    for (const t of [codes, scales, absmax2]) if (t) keep(t).setCategory('weights');
  }

  /**
   * GPU buffers for a weight of `shape` in `format`, not yet written: a checkpoint loader
   * allocates the model this way, then fills each weight with write() as it quantizes or reads it.
   */
  static allocate(format: QuantStorage, shape: readonly [number, number]): QuantizedTensor {
    const [N, K] = shape;
    const n = N * K;
    if (!(n > 0))
      throw new ShapeError(`QuantizedTensor.allocate: needs a non-empty [N, K], got ${fmt(shape)}`);
    const wordsFor = (bytes: number) => [Math.max(1, Math.ceil(bytes / 4))];
    const z = (shape: number[], dtype: 'i32' | 'f32') => zeros(shape, dtype, 'weights');
    if (isGgmlFormat(format)) {
      const { codeBytes, scales } = ggmlSizes(format, shape);
      return new QuantizedTensor(format, [N, K], z(wordsFor(codeBytes), 'i32'), z([scales], 'f32'), null, 0);
    }
    if (format === 'int8')
      return new QuantizedTensor(format, [N, K], z(wordsFor(n), 'i32'), z([N], 'f32'), null, 0);
    const blocks = Math.ceil(n / BLOCK_4BIT);
    return new QuantizedTensor(
      format,
      [N, K],
      z(wordsFor(Math.ceil(n / 2)), 'i32'),
      z(wordsFor(blocks), 'i32'),
      z([Math.ceil(blocks / BLOCK_ABSMAX)], 'f32'),
      0,
    );
  }

  /**
   * Bytes {@link QuantizedTensor.allocate} takes for a weight of `shape` in `format` (codes and
   * scales, each padded to whole u32 words), without allocating: what a memory estimate counts.
   */
  static bytesFor(format: QuantStorage, shape: readonly [number, number]): number {
    const n = shape[0] * shape[1];
    const words = (bytes: number) => 4 * Math.max(1, Math.ceil(bytes / 4));
    if (isGgmlFormat(format)) {
      const { codeBytes, scales } = ggmlSizes(format, shape);
      return words(codeBytes) + 4 * scales;
    }
    if (format === 'int8') return words(n) + 4 * shape[0];
    const blocks = Math.ceil(n / BLOCK_4BIT);
    return words(Math.ceil(n / 2)) + words(blocks) + 4 * Math.ceil(blocks / BLOCK_ABSMAX);
  }

  /** Mean of the absmax values (nf4/fp4's double quantization), 0 for int8. */
  get offset(): number {
    return this._offset;
  }

  /**
   * Uploads a quantization computed on the CPU (quantize4bit / quantizeInt8, or read from a file)
   * into these buffers. Its format and size must be this tensor's.
   */
  write(parts: Quantized4Bit | QuantizedInt8 | QuantizedGgml): void {
    const [N, K] = this.shape;
    const dev = this.codes.device;
    if ('scales' in parts) {
      const ggml = parts;
      const want = ggmlSizes(ggml.format, this.shape);
      if (
        ggml.format !== this.format ||
        ggml.codes.length !== want.codeBytes ||
        ggml.scales.length !== want.scales
      )
        throw new ShapeError(
          `QuantizedTensor.write: ${ggml.format} parts with ${ggml.codes.length} code bytes and ${ggml.scales.length} scales do not fit ${this}`,
        );
      dev.write(this.codes.buffer, 0, words(ggml.codes));
      dev.write(this.scales.buffer, 0, ggml.scales);
      return;
    }
    const codeBytes = parts.format === 'int8' ? N * K : Math.ceil((N * K) / 2);
    const scaleCount = parts.format === 'int8' ? parts.rowAbsmax.length : parts.absmaxCodes.length;
    const wantScales = parts.format === 'int8' ? N : Math.ceil((N * K) / BLOCK_4BIT);
    if (parts.format !== this.format || parts.codes.length !== codeBytes || scaleCount !== wantScales)
      throw new ShapeError(
        `QuantizedTensor.write: ${parts.format} parts with ${parts.codes.length} code bytes and ${scaleCount} scales do not fit ${this}`,
      );
    dev.write(this.codes.buffer, 0, words(parts.codes));
    if (parts.format === 'int8') {
      dev.write(this.scales.buffer, 0, parts.rowAbsmax.map(int8Step));
      return;
    }
    dev.write(this.scales.buffer, 0, words(parts.absmaxCodes));
    dev.write((this.absmax2 as Tensor).buffer, 0, parts.absmax2);
    this._offset = parts.offset;
  }

  /** Number of weight elements, N·K. */
  get size(): number {
    return this.shape[0] * this.shape[1];
  }

  /** Bytes held on the GPU: codes and scales as stored (each padded to whole u32 words). */
  get bytes(): number {
    return this.codes.bytes + this.scales.bytes + (this.absmax2?.bytes ?? 0);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * The f32 scales the matmul kernels read (binding QS): int8's row steps and the llama.cpp types'
   * sub-block scales as stored, or for
   * nf4/fp4 each block's absmax decoded from its double quantization into a new tensor the caller
   * disposes (N·K/64 values: what bitsandbytes decodes before its 4-bit kernels too).
   */
  kernelScales(): Tensor {
    if (!this.absmax2) return this.scales;
    const blocks = Math.ceil(this.size / BLOCK_4BIT);
    const out = Tensor.empty([blocks], 'f32');
    runKernel({
      key: 'quant_absmax',
      wgsl: () => `@group(0) @binding(0) var<storage, read> Q: array<u32>;
@group(0) @binding(1) var<storage, read> S2: array<f32>;
@group(0) @binding(2) var<storage, read> MAP: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let q = (Q[gi >> 2u] >> ((gi & 3u) * 8u)) & 255u;
  O[gi] = MAP[q] * S2[gi / ${BLOCK_ABSMAX}u] + P.offset;
}`,
      inputs: [this.scales, this.absmax2, dynamicMap()],
      outputs: [out],
      uniforms: [
        ['n', 'u32', blocks],
        ['offset', 'f32', this.offset],
      ],
      workgroups: grid(blocks),
    });
    return out;
  }

  /** Frees the GPU buffers. Idempotent. */
  dispose(): void {
    this.disposed = true;
    this.codes.dispose();
    this.scales.dispose();
    this.absmax2?.dispose();
  }

  toString(): string {
    return `QuantizedTensor(${fmt(this.shape)}, ${this.format})`;
  }
}

/** Code bytes and f32 scales of a llama.cpp-typed weight of `shape` (rows of whole blocks). */
function ggmlSizes(
  format: GgmlFormat,
  [N, K]: readonly [number, number],
): { codeBytes: number; scales: number } {
  const L = GGML_LAYOUTS[format];
  if (K % L.block !== 0)
    throw new ShapeError(`QuantizedTensor: ${format} rows are whole blocks of ${L.block}, got [${N}, ${K}]`);
  const n = N * K;
  return { codeBytes: L.bits === 8 ? n : n / 2, scales: (n / L.sub) * (L.mins ? 2 : 1) };
}

/** The 8-bit dynamic map on the current device, uploaded once per device. */
let mapTensor: Tensor | null = null;
function dynamicMap(): Tensor {
  if (!mapTensor || mapTensor.isDisposed || mapTensor.device.isDestroyed)
    mapTensor = keep(tensor(DYNAMIC_MAP, [DYNAMIC_MAP.length], 'f32', 'other'));
  return mapTensor;
}

/**
 * Quantizes a weight matrix [N, K] (a 2-D f32 tensor, or row-major values and `shape`) to
 * nf4 or fp4 (blocks of 64, double-quantized absmax, as QLoRA) or int8 (absmax per row), on the
 * CPU, and uploads the result. The codes are those bitsandbytes computes (see quant/formats.ts).
 */
export async function quantize(
  weight: Tensor | Float32Array,
  format: QuantFormat,
  shape?: readonly [number, number],
): Promise<QuantizedTensor> {
  const shp = weight instanceof Tensor ? weight.shape : shape;
  if (shp?.length !== 2 || shp[0] * shp[1] === 0)
    throw new ShapeError(
      `quantize: needs a non-empty 2-D weight [N, K], got ${shp ? fmt(shp) : 'values without a shape'}`,
    );
  const [N, K] = shp;
  const values = weight instanceof Tensor ? ((await weight.data()) as Float32Array) : weight;
  if (values.length !== N * K)
    throw new ShapeError(`quantize: ${values.length} values do not fill shape ${fmt(shp)}`);
  const out = QuantizedTensor.allocate(format, [N, K]);
  out.write(quantizeValues(values, format, N, K));
  return out;
}

/** The f32 values of a quantized weight as a new [N, K] tensor, decoded on the GPU. */
export function dequantize(q: QuantizedTensor): Tensor {
  const out = Tensor.empty([...q.shape], 'f32');
  const scales = q.kernelScales();
  const B = operandReads('B', q.format, { scales: 1, rowLen: 'P.k' });
  runKernel({
    key: `quant_dequantize_${q.format}`,
    wgsl: () => `@group(0) @binding(0) var<storage, read> B: array<u32>;
${B.prelude}
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  O[gi] = ${B.scalar('gi')};
}`,
    inputs: [q.codes, scales],
    outputs: [out],
    uniforms: [
      ['n', 'u32', q.size],
      ['k', 'u32', q.shape[1]],
    ],
    workgroups: grid(q.size),
  });
  if (scales !== q.scales) scales.dispose();
  return out;
}
