import { ShapeError } from '../errors.js';
import { grid, main1d, runKernel } from '../kernels/common.js';
import { operandReads } from '../kernels/half-reads.js';
import { tensor } from '../ops/creation.js';
import { keep } from '../runtime.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import {
  BLOCK_4BIT,
  BLOCK_ABSMAX,
  DYNAMIC_MAP,
  int8Step,
  type QuantFormat,
  quantize4bit,
  quantizeInt8,
} from './formats.js';

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
 *  - `absmax2` (nf4/fp4): the f32 scale of each 256 absmax codes; `offset` their mean.
 */
export class QuantizedTensor {
  /** Set by dispose(). */
  private disposed = false;

  constructor(
    readonly format: QuantFormat,
    readonly shape: readonly [number, number],
    readonly codes: Tensor,
    readonly scales: Tensor,
    readonly absmax2: Tensor | null,
    readonly offset: number,
  ) {
    for (const t of [codes, scales, absmax2]) if (t) keep(t).setCategory('weights');
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
   * The f32 scales the matmul kernels read (binding QS): int8's row steps as stored, or for
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
  if (format === 'int8') {
    const q = quantizeInt8(values, N, K);
    return new QuantizedTensor(
      format,
      [N, K],
      tensor(words(q.codes), undefined, 'i32', 'weights'),
      tensor(q.rowAbsmax.map(int8Step), [N], 'f32', 'weights'),
      null,
      0,
    );
  }
  const q = quantize4bit(values, format);
  return new QuantizedTensor(
    format,
    [N, K],
    tensor(words(q.codes), undefined, 'i32', 'weights'),
    tensor(words(q.absmaxCodes), undefined, 'i32', 'weights'),
    tensor(q.absmax2, [q.absmax2.length], 'f32', 'weights'),
    q.offset,
  );
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
