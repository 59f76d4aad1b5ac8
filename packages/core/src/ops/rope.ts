import type { Device } from '../device/device.js';
import { assertDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import { record } from '../record.js';
import { keep } from '../runtime.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { tensor } from './creation.js';

/**
 * How the rotary frequencies are rescaled for longer contexts, as the `rope_scaling` of a HF config
 * (see {@link ropeInvFreq}). 'linear' divides every frequency by `factor` (position interpolation).
 * 'llama3' divides only the low frequencies, those with wavelength above
 * original_max_position_embeddings / low_freq_factor, by `factor`; keeps those below
 * original_max_position_embeddings / high_freq_factor; and blends in between.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

/** Options of {@link rope}: frequency base, pair layout, scaling, partial rotation and axis order. */
export interface RopeOptions {
  /** Base of the inverse frequencies (10000 LLaMA 1/2, 500000 LLaMA 3). */
  theta: number;
  /** 'half' pairs (i, i + R/2) (HF LLaMA, GPT-NeoX); 'interleaved' pairs (2i, 2i+1) (Meta, llama2.c, GGUF). */
  layout: 'half' | 'interleaved';
  /** Context-extension scaling of the frequencies (none by default). */
  scaling?: RopeScaling;
  /** Leading dims rotated (R, even); the rest pass through. Default: the head dim. */
  rotaryDim?: number;
  /** Axis order of x: 'bhtd' (default) is [B, H, T, D]; 'bthd' is [B, T, H, D]. */
  axes?: 'bhtd' | 'bthd';
}

/**
 * Inverse frequencies theta^(-2i/R), i < R/2, in float64, with linear scaling (divide by factor) or
 * llama3 scaling as HF transformers `_compute_llama3_parameters`.
 */
export function ropeInvFreq(rotaryDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  if (!Number.isInteger(rotaryDim) || rotaryDim <= 0 || rotaryDim % 2 !== 0) {
    throw new ShapeError(`rope: rotary dim ${rotaryDim} must be a positive even integer`);
  }
  const inv = new Float64Array(rotaryDim / 2).map((_, i) => theta ** ((-2 * i) / rotaryDim));
  if (!scaling) return inv;
  if (scaling.type === 'linear') return inv.map((f) => f / scaling.factor);
  const {
    factor,
    low_freq_factor: lo,
    high_freq_factor: hi,
    original_max_position_embeddings: orig,
  } = scaling;
  const lowFreqWavelen = orig / lo;
  const highFreqWavelen = orig / hi;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / factor;
    const smooth = (orig / wavelen - lo) / (hi - lo);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
}

/** Rounds to 12 significant bits, so its product with a 12-bit integer is exact in f32. */
function top12(x: number): number {
  if (x === 0) return 0;
  const s = 2 ** (11 - Math.floor(Math.log2(Math.abs(x))));
  return Math.round(x * s) / s;
}

const tables = new WeakMap<Device, Map<string, Tensor>>();

/**
 * Per frequency, the angle in revolutions per position u = inv/(2π) and w = frac(4096·u), each split
 * into a 12-significant-bit head and a f32 tail. With pos = ph·4096 + pl (|ph| <= 4096, 0 <= pl < 4096) the kernel
 * forms frac(pos·u) = frac(ph·w_hi) + frac(pl·u_hi) + ph·w_lo + pl·u_lo, where the first two products
 * are exact, so the angle is reduced to [-π, π] with ~1e-7 absolute error for any |pos| < 2^24,
 * instead of the ulp(pos·inv) error (8e-3 rad at pos 131072) of a plain f32 product.
 * Uploaded once per device and configuration.
 */
function freqTable(device: Device, R: number, opts: RopeOptions): Tensor {
  let byKey = tables.get(device);
  if (!byKey) {
    byKey = new Map();
    tables.set(device, byKey);
  }
  const key = JSON.stringify([R, opts.theta, opts.scaling ?? null]);
  const hit = byKey.get(key);
  if (hit && !hit.isDisposed) return hit;
  const inv = ropeInvFreq(R, opts.theta, opts.scaling);
  const data = new Float32Array(inv.length * 4);
  inv.forEach((f, i) => {
    const u = f / (2 * Math.PI);
    const w = (4096 * u) % 1;
    const uHi = top12(u);
    const wHi = top12(w);
    data.set([uHi, u - uHi, wHi, w - wHi], i * 4);
  });
  const t = keep(tensor(data, [inv.length, 4], 'f32', 'other'));
  byKey.set(key, t);
  return t;
}

function rotate(
  x: Tensor,
  positions: Tensor,
  freqs: Tensor,
  R: number,
  opts: RopeOptions,
  dir: 1 | -1,
): Tensor {
  const timeFirst = opts.axes === 'bthd';
  const [B, H, T, D] = timeFirst ? [x.shape[0], x.shape[2], x.shape[1], x.shape[3]] : x.shape;
  const layout = opts.layout;
  const out = Tensor.empty(x.shape, 'f32');
  if (out.size === 0) return out;
  // Partner of dim d in its pair and whether d is the pair's first element (which gets -x1·sin).
  const pair =
    layout === 'half'
      ? 'let hr = P.r / 2u; let i = d % hr; let first = d < hr; let partner = select(d - hr, d + hr, first);'
      : 'let i = d / 2u; let first = (d & 1u) == 0u; let partner = d ^ 1u;';
  runKernel({
    key: `rope:${layout}`,
    wgsl: () => `${storageDecl(0, 'X', 'f32', 'read')}
${storageDecl(1, 'POS', 'i32', 'read')}
${storageDecl(2, 'F', 'vec4<f32>', 'read')}
${storageDecl(3, 'Y', 'f32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let d = gi % P.d;
  if (d >= P.r) { Y[gi] = X[gi]; return; }
  let row = gi / P.d;
  let t = (row / P.th) % P.t;
  let b = row / (P.t * P.h);
  let pos = POS[b * P.pstride + t];
  ${pair}
  let f = F[i];
  let ph = f32(pos >> 12u);
  let pl = f32(pos & 4095);
  let rev = fract(ph * f.z) + fract(pl * f.x) + ph * f.w + pl * f.y;
  let ang = (rev - round(rev)) * 6.283185307179586;
  let c = cos(ang);
  let s = sin(ang) * P.dir * select(1.0, -1.0, first);
  Y[gi] = X[gi] * c + X[gi - d + partner] * s;
}`,
    inputs: [x, positions, freqs],
    outputs: [out],
    uniforms: [
      ['n', 'u32', out.size],
      ['d', 'u32', D],
      ['r', 'u32', R],
      ['t', 'u32', T],
      ['h', 'u32', H],
      // Rows between consecutive positions: 1 heads-first, H time-first.
      ['th', 'u32', timeFirst ? H : 1],
      ['pstride', 'u32', positions.rank === 2 ? T : 0],
      ['dir', 'f32', dir],
    ],
    workgroups: grid(B * H * T * D),
  });
  return out;
}

/**
 * Rotary position embedding of x [B, H, T, D] (or [B, T, H, D] with axes 'bthd') at integer
 * positions [T] (shared by the batch) or [B, T].
 * Pair i of the first R dims is rotated by pos · inv_freq_i (see ropeInvFreq; exact angle reduction
 * for |pos| < 2^24, see freqTable); dims R..D pass through. Backward rotates the gradient by the
 * negated angle (the rotation's transpose).
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions): Tensor {
  assertDType(x.dtype, ['f32'], 'rope');
  assertDType(positions.dtype, ['i32'], 'rope positions');
  const order = opts.axes === 'bthd' ? '[B, T, H, D]' : '[B, H, T, D]';
  if (x.rank !== 4) throw new ShapeError(`rope: x must be ${order}, got ${fmt(x.shape)}`);
  const [B, T, D] = [x.shape[0], x.shape[opts.axes === 'bthd' ? 1 : 2], x.shape[3]];
  const pOk =
    positions.rank === 1
      ? positions.shape[0] === T
      : positions.rank === 2 && positions.shape[0] === B && positions.shape[1] === T;
  if (!pOk)
    throw new ShapeError(`rope: positions must be [${T}] or [${B}, ${T}], got ${fmt(positions.shape)}`);
  const R = opts.rotaryDim ?? D;
  if (R > D) throw new ShapeError(`rope: rotaryDim ${R} exceeds head dim ${D}`);
  const freqs = freqTable(x.device, R, opts);
  const out = rotate(x, positions, freqs, R, opts, 1);
  return record(out, 'rope', [x], (g) => [rotate(g, positions, freqs, R, opts, -1)]);
}
