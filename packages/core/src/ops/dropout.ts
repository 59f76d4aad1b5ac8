import { assertDType } from '../dtype.js';
import { ShapeError, ShareloraError } from '../errors.js';
import { grid, main1d, runKernel, storageDecl } from '../kernels/common.js';
import { record } from '../record.js';
import { fmt, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { reshape } from './shape-ops.js';

const TWO32 = 2 ** 32;

function splitU64(v: number, what: string): [lo: number, hi: number] {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new ShareloraError('BAD_ARGUMENT', `dropout: ${what} ${v} must be a non-negative safe integer`);
  return [v % TWO32, Math.floor(v / TWO32)];
}

/**
 * Applies the mask of (seed, offset) to `x`: x * scale where element (offset + i) is kept, else 0;
 * added to `residual`'s element when given (in the same pass: residual + that, as an add would).
 */
function applyMask(
  x: Tensor,
  thr: number,
  scale: number,
  seed: [number, number],
  off: [number, number],
  residual?: Tensor,
): Tensor {
  const out = Tensor.empty(x.shape, 'f32');
  if (out.size === 0) return out;
  // Four elements per invocation when they fill vec4s: on CPU adapters each storage access is a loop
  // over the lanes, whatever its width. Element e keeps its own random draw either way.
  const v4 = x.size % 4 === 0;
  const ty = v4 ? 'vec4<f32>' : 'f32';
  const n = v4 ? x.size / 4 : x.size;
  runKernel({
    key: `${residual ? 'dropout:residual' : 'dropout'}:${v4 ? 'v4' : 's'}`,
    // Bindings in runKernel's order: inputs, then the output.
    wgsl: () => `${storageDecl(0, 'X', ty, 'read')}
${residual ? storageDecl(1, 'R', ty, 'read') : ''}
${storageDecl(residual ? 2 : 1, 'Y', ty, 'read_write')}
PARAMS
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
// Whether element e (counted from the offset, with the 64-bit carry) is kept.
fn keep_(e: u32) -> bool {
  let lo = P.off_lo + e;
  let hi = P.off_hi + select(0u, 1u, lo < e);
  return pcg(pcg(lo ^ pcg(P.seed_lo)) ^ pcg(hi ^ pcg(P.seed_hi ^ 0x9e3779b9u))) >= P.thr;
}
${main1d()}
  if (gi >= P.n) { return; }
  ${
    v4
      ? `let e = gi * 4u;
  let k = vec4<bool>(keep_(e), keep_(e + 1u), keep_(e + 2u), keep_(e + 3u));`
      : 'let k = keep_(gi);'
  }
  Y[gi] = ${residual ? 'R[gi] + ' : ''}select(${ty}(0.0), X[gi] * P.scale, k);
}`,
    inputs: residual ? [x, residual] : [x],
    outputs: [out],
    uniforms: [
      ['n', 'u32', n],
      ['off_lo', 'u32', off[0]],
      ['off_hi', 'u32', off[1]],
      ['seed_lo', 'u32', seed[0]],
      ['seed_hi', 'u32', seed[1]],
      ['thr', 'u32', thr],
      ['scale', 'f32', scale],
    ],
    workgroups: grid(n),
  });
  return out;
}

/**
 * Inverted dropout: each element is zeroed with probability p and the rest are scaled by 1/(1-p).
 * The mask is a counter-based hash (PCG hash, Jarzynski & Olano 2020) of (seed, offset + element
 * index) computed on the GPU, so the same seed and offset give the same mask on every run and no
 * mask is stored: backward regenerates it. Give each call site its own seed or a disjoint offset
 * range (offset + x.size) for independent masks. Element i is kept when its 32-bit hash is
 * >= round(p·2^32). p = 0 returns x itself as a view; p = 1 gives zeros.
 *
 * With `residual` (x's shape), residual + dropout(x) in one pass, the values of add(residual,
 * dropout(x)) (a transformer block's dropout before its residual add).
 */
export function dropout(x: Tensor, p: number, seed: number, offset = 0, residual?: Tensor): Tensor {
  assertDType(x.dtype, ['f32'], 'dropout');
  if (!(p >= 0 && p <= 1)) throw new ShareloraError('BAD_ARGUMENT', `dropout: p = ${p} must lie in [0, 1]`);
  const s = splitU64(seed, 'seed');
  const o = splitU64(offset, 'offset');
  if (residual) {
    assertDType(residual.dtype, ['f32'], 'dropout residual');
    if (!shapesEqual(residual.shape, x.shape))
      throw new ShapeError(`dropout: residual ${fmt(residual.shape)} does not match x ${fmt(x.shape)}`);
  }
  if (p === 0) return residual ? add(residual, x) : reshape(x, x.shape);
  const thr = Math.min(TWO32 - 1, Math.round(p * TWO32));
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const mask = (g: Tensor) => applyMask(g, thr, scale, s, o);
  if (!residual) return record(mask(x), 'dropout', [x], (g) => [mask(g)]);
  return record(applyMask(x, thr, scale, s, o, residual), 'dropout', [x, residual], (g) => [mask(g), g]);
}
