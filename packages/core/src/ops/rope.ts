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

/**
 * cos and sin of every position's angle for every pair: [...positions.shape, R/2, 2] (see
 * {@link ropeCosSin}). The angle is reduced exactly (see freqTable) before the transcendental
 * functions, which on a CPU adapter cost more than the rotation itself.
 */
function cosSin(positions: Tensor, freqs: Tensor, R: number): Tensor {
  const out = Tensor.empty([...positions.shape, R / 2, 2], 'f32');
  if (out.size === 0) return out;
  runKernel({
    key: 'rope_cos_sin',
    wgsl: () => `${storageDecl(0, 'POS', 'i32', 'read')}
${storageDecl(1, 'F', 'vec4<f32>', 'read')}
${storageDecl(2, 'CS', 'vec2<f32>', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  let i = gi % P.half;
  let pos = POS[gi / P.half];
  let f = F[i];
  let ph = f32(pos >> 12u);
  let pl = f32(pos & 4095);
  let rev = fract(ph * f.z) + fract(pl * f.x) + ph * f.w + pl * f.y;
  let ang = (rev - round(rev)) * 6.283185307179586;
  CS[gi] = vec2<f32>(cos(ang), sin(ang));
}`,
    inputs: [positions, freqs],
    outputs: [out],
    uniforms: [
      ['n', 'u32', out.size / 2],
      ['half', 'u32', R / 2],
    ],
    workgroups: grid(out.size / 2),
  });
  return out;
}

/**
 * Rotates x by the angles in `cs` (dir -1: by their negation, the transpose). An invocation owns
 * `per` consecutive pairs of one position (b, t): it reads their cos and sin once and rotates them
 * in every head, then copies its share of the dims past R. R/2 is a constant of the shader, so
 * splitting the index costs a multiply, and the one division by a runtime size (T) is shared by
 * all heads: on a CPU adapter an integer division by a runtime value is a scalar division per lane.
 *
 * When the whole head is rotated and its pairs fill vec4s (R = D, a multiple of 8 for the 'half'
 * layout, of 4 for 'interleaved'), the rows are read and written as vec4s: 4 pairs per invocation
 * as two vec4s (i.., i + R/2..) in the half layout, 2 pairs as one vec4 interleaved. On a CPU adapter
 * a storage access costs about the same for a vec4 as for a float, so that is 4x fewer accesses.
 */
function rotate(x: Tensor, cs: Tensor, perBatch: boolean, R: number, opts: RopeOptions, dir: 1 | -1): Tensor {
  const timeFirst = opts.axes === 'bthd';
  const [B, H, T, D] = timeFirst ? [x.shape[0], x.shape[2], x.shape[1], x.shape[3]] : x.shape;
  const out = Tensor.empty(x.shape, 'f32');
  if (out.size === 0) return out;
  const half = R / 2;
  const halfLayout = opts.layout === 'half';
  const vec = R === D && R % (halfLayout ? 8 : 4) === 0;
  const per = vec ? (halfLayout ? 4 : 2) : 1;
  // Offset of head 0 at position (b, t), and the stride between heads, in floats.
  const place = timeFirst
    ? 'let base = bt * P.h * P.d; let hstride = P.d;'
    : 'let base = (b * P.h * P.t + t) * P.d; let hstride = P.t * P.d;';
  // The head loop: pair i (scalar), pairs i..i+3 of the half layout (vec4s at i and i + HALF,
  // angles (c, s) of pairs i, i+1 | i+2, i+3 in two vec4s of CS) or pairs i, i+1 interleaved.
  const heads = !vec
    ? `  let cs = CS[prow * HALF + i];
  let s = cs.y * P.dir;
  ${halfLayout ? 'let ea = i; let eb = i + HALF;' : 'let ea = 2u * i; let eb = ea + 1u;'}
  for (var h = 0u; h < P.h; h++) {
    let o = base + h * hstride;
    let x1 = X[o + ea];
    let x2 = X[o + eb];
    Y[o + ea] = x1 * cs.x - x2 * s;
    Y[o + eb] = x2 * cs.x + x1 * s;
    for (var d = P.r + i; d < P.d; d += HALF) { Y[o + d] = X[o + d]; }
  }`
    : halfLayout
      ? `  let c01 = CS[(prow * HALF + i) / 2u];
  let c23 = CS[(prow * HALF + i) / 2u + 1u];
  let c = vec4<f32>(c01.x, c01.z, c23.x, c23.z);
  let s = vec4<f32>(c01.y, c01.w, c23.y, c23.w) * P.dir;
  for (var h = 0u; h < P.h; h++) {
    let o = (base + h * hstride + i) / 4u;
    let x1 = X[o];
    let x2 = X[o + HALF / 4u];
    Y[o] = x1 * c - x2 * s;
    Y[o + HALF / 4u] = x2 * c + x1 * s;
  }`
      : `  let cs = CS[(prow * HALF + i) / 2u];
  let c = cs.xxzz;
  let s = cs.yyww * P.dir;
  for (var h = 0u; h < P.h; h++) {
    let o = (base + h * hstride + 2u * i) / 4u;
    let v = X[o];
    Y[o] = v * c + vec4<f32>(-v.y, v.x, -v.w, v.z) * s;
  }`;
  const units = half / per;
  runKernel({
    key: `rope:${opts.layout}:${opts.axes ?? 'bhtd'}:${half}${vec ? ':v4' : ''}`,
    wgsl: () => `${storageDecl(0, 'X', vec ? 'vec4<f32>' : 'f32', 'read')}
${storageDecl(1, 'CS', vec ? 'vec4<f32>' : 'vec2<f32>', 'read')}
${storageDecl(2, 'Y', vec ? 'vec4<f32>' : 'f32', 'read_write')}
PARAMS
const HALF: u32 = ${half}u;
${main1d()}
  if (gi >= P.n) { return; }
  let bt = gi / ${units}u;
  let i = (gi % ${units}u) * ${per}u;
  let b = bt / P.t;
  let t = bt - b * P.t;
  ${place}
  var prow = t;
  if (P.per_batch != 0u) { prow = bt; }
${heads}
}`,
    inputs: [x, cs],
    outputs: [out],
    uniforms: [
      ['n', 'u32', B * T * units],
      ['d', 'u32', D],
      ['r', 'u32', R],
      ['t', 'u32', T],
      ['h', 'u32', H],
      ['per_batch', 'u32', perBatch ? 1 : 0],
      ['dir', 'f32', dir],
    ],
    workgroups: grid(B * T * units),
  });
  return out;
}

/** The rotated dims R of {@link rope}: `rotaryDim`, else the head dim, checked against it. */
function rotaryDim(opts: RopeOptions, D: number): number {
  const R = opts.rotaryDim ?? D;
  if (R > D) throw new ShapeError(`rope: rotaryDim ${R} exceeds head dim ${D}`);
  return R;
}

/**
 * cos and sin of the rotary angles at integer `positions` ([T] or [B, T]): a tensor
 * [...positions.shape, R/2, 2] for {@link rope}'s `cosSin` option. A model computes it once per
 * forward pass and passes it to the rope of every layer's queries and keys (and their backward
 * passes), instead of each recomputing the same sines. `opts.rotaryDim` (else `headDim`) sets R.
 */
export function ropeCosSin(positions: Tensor, opts: RopeOptions, headDim: number): Tensor {
  assertDType(positions.dtype, ['i32'], 'rope positions');
  if (positions.rank !== 1 && positions.rank !== 2)
    throw new ShapeError(`rope: positions must be [T] or [B, T], got ${fmt(positions.shape)}`);
  const R = rotaryDim(opts, headDim);
  return cosSin(positions, freqTable(positions.device, R, opts), R);
}

/**
 * Rotary position embedding of x [B, H, T, D] (or [B, T, H, D] with axes 'bthd') at integer
 * positions [T] (shared by the batch) or [B, T].
 * Pair i of the first R dims is rotated by pos · inv_freq_i (see ropeInvFreq; exact angle reduction
 * for |pos| < 2^24, see freqTable); dims R..D pass through. Backward rotates the gradient by the
 * negated angle (the rotation's transpose). `cosSin`, from {@link ropeCosSin} with the same
 * positions and options, saves computing the angles again.
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions & { cosSin?: Tensor }): Tensor {
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
  const R = rotaryDim(opts, D);
  const want = [...positions.shape, R / 2, 2];
  if (opts.cosSin && fmt(opts.cosSin.shape) !== fmt(want))
    throw new ShapeError(
      `rope: cosSin must be ${fmt(want)} (ropeCosSin of these positions and options), got ${fmt(opts.cosSin.shape)}`,
    );
  const cs = opts.cosSin ?? cosSin(positions, freqTable(x.device, R, opts), R);
  const perBatch = positions.rank === 2;
  const out = rotate(x, cs, perBatch, R, opts, 1);
  return record(out, 'rope', [x], (g) => [rotate(g, cs, perBatch, R, opts, -1)]);
}
