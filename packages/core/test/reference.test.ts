/**
 * Checks the float64 reference ops against independent facts (known constants,
 * hand-computed examples, mathematical identities), so the GPU conformance tests
 * can trust them.
 */

import { describe, expect, it } from 'vitest';
import { assertClose, relErr, vjpFiniteDiff } from './reference/gradcheck.js';
import { broadcastShapes, F64, fromNested, randInts, randn, roundToF32 } from './reference/ndarray.js';
import {
  add,
  concat,
  crossEntropy,
  embedding,
  erf,
  erfc,
  geluErf,
  geluTanh,
  layerNorm,
  logSoftmax,
  maskedFill,
  matmul,
  max,
  maximum,
  mean,
  mul,
  permute,
  reshape,
  rmsNorm,
  rope,
  ropeInvFreq,
  sdpa,
  silu,
  slice,
  softmax,
  sub,
  sum,
  transpose,
  where,
} from './reference/ops.js';

/** Gathers the last axis: out[..., j] = x[..., idx[j]]. */
function gatherLast(x: F64, idx: readonly number[]): F64 {
  const d = x.shape[x.ndim - 1];
  const rows = x.size / d;
  const out = new F64([...x.shape.slice(0, -1), idx.length]);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < idx.length; j++) out.data[r * idx.length + j] = x.data[r * d + idx[j]];
  }
  return out;
}

describe('ndarray', () => {
  it('builds from nested arrays and indexes row-major', () => {
    const x = fromNested([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(x.shape).toEqual([2, 3]);
    expect(x.get(1, 0)).toBe(4);
    expect(x.toNested()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(() => fromNested([[1, 2], [3]])).toThrow(/ragged/);
  });

  it('seeded randn is reproducible and roughly standard normal', () => {
    const a = randn([4000], 123);
    expect(Array.from(randn([4000], 123).data)).toEqual(Array.from(a.data));
    const m = mean(a, 0).data[0];
    const v = mean(mul(sub(a, m), sub(a, m)), 0).data[0];
    expect(Math.abs(m)).toBeLessThan(0.06);
    expect(Math.abs(v - 1)).toBeLessThan(0.08);
    const ids = randInts(100, 7, 1);
    expect(ids.every((i) => Number.isInteger(i) && i >= 0 && i < 7)).toBe(true);
  });

  it('roundToF32 gives float32-representable values', () => {
    const x = roundToF32(randn([16], 3));
    expect(Array.from(Float32Array.from(x.data))).toEqual(Array.from(x.data));
  });

  it('broadcasts with numpy rules', () => {
    expect(broadcastShapes([2, 1, 3], [4, 1])).toEqual([2, 4, 3]);
    expect(() => broadcastShapes([2, 3], [3, 2])).toThrow();
    const a = fromNested([[[1, 2, 3]], [[4, 5, 6]]]); // [2,1,3]
    const b = fromNested([[10], [20]]); // [2,1]
    const c = add(a, b);
    expect(c.shape).toEqual([2, 2, 3]);
    expect(c.toNested()).toEqual([
      [
        [11, 12, 13],
        [21, 22, 23],
      ],
      [
        [14, 15, 16],
        [24, 25, 26],
      ],
    ]);
    expect(maximum(fromNested([-1, 2, -3]), 0).toNested()).toEqual([0, 2, 0]);
  });
});

describe('erf and activations', () => {
  // Known values (e.g. Abramowitz & Stegun, CPython math.erf).
  const known: [number, number][] = [
    [0, 0],
    [1e-3, 0.0011283787909692365],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [-1, -0.8427007929497149],
    [2, 0.9953222650189527],
    [2.4999, 0.9995928300996666],
    [2.5, 0.999593047982555],
    [3, 0.9999779095030014],
    [-3, -0.9999779095030014],
  ];
  it.each(known)('erf(%s) to double precision', (x, want) => {
    expect(Math.abs(erf(x) - want)).toBeLessThanOrEqual(4.5e-16);
  });

  it('erfc keeps relative precision in the tail', () => {
    expect(Math.abs(erfc(3) / 2.2090496998585438e-5 - 1)).toBeLessThan(1e-14);
    expect(Math.abs(erfc(5) / 1.5374597944280351e-12 - 1)).toBeLessThan(1e-14);
    expect(Math.abs(erfc(10) / 2.088487583762545e-45 - 1)).toBeLessThan(1e-14);
    expect(Math.abs(erfc(-1) - (1 + 0.8427007929497149))).toBeLessThan(4.5e-16);
  });

  it('gelu and silu at known points', () => {
    const x = fromNested([1, -10]);
    // Phi(1) = 0.8413447460685429; gelu(-10) = -5 * erfc(10/sqrt2).
    assertClose(geluErf(x), [0.8413447460685429, -7.619853024160593e-23], 1e-15, 'geluErf');
    expect(Math.abs(geluErf(x).data[1] / -7.619853024160593e-23 - 1)).toBeLessThan(1e-13);
    expect(Math.abs(geluTanh(x).data[0] - 0.8411919906082768)).toBeLessThan(1e-15);
    expect(Math.abs(silu(x).data[0] - 0.7310585786300049)).toBeLessThan(1e-15);
  });
});

describe('reductions, softmax, norms', () => {
  it('sum/mean/max with keepdims', () => {
    const x = fromNested([
      [1, 5, 3],
      [4, 2, 6],
    ]);
    expect(sum(x, 0).toNested()).toEqual([5, 7, 9]);
    expect(sum(x, -1, true).toNested()).toEqual([[9], [12]]);
    expect(mean(x, 1).toNested()).toEqual([3, 4]);
    expect(max(x, 1).toNested()).toEqual([5, 6]);
    expect(max(x, 0, true).shape).toEqual([1, 3]);
  });

  it('softmax rows sum to 1 and log_softmax is its log', () => {
    const x = randn([5, 7], 1, 3);
    x.data[0] = 1000; // stability: no overflow
    const s = softmax(x);
    const rows = sum(s, -1);
    assertClose(rows, F64.full([5], 1), 1e-15, 'softmax row sums');
    assertClose(
      logSoftmax(x).data.map((v) => Math.exp(v)),
      s,
      1e-14,
      'exp(log_softmax)',
    );
  });

  it('layer norm output has mean 0 and variance 1 per row', () => {
    const x = randn([4, 16], 2, 5, 3);
    const y = layerNorm(x, null, null, 0);
    expect(Math.max(...mean(y, -1).data.map(Math.abs))).toBeLessThan(1e-15);
    assertClose(mean(mul(y, y), -1), F64.full([4], 1), 1e-14, 'ln var');
    const g = randn([16], 3);
    const b = randn([16], 4);
    assertClose(layerNorm(x, g, b, 0), add(mul(y, g), b), 1e-15, 'ln affine');
  });

  it('rms norm output has mean square 1 per row', () => {
    const x = randn([3, 8], 5, 2);
    const y = rmsNorm(x, null, 0);
    assertClose(mean(mul(y, y), -1), F64.full([3], 1), 1e-14, 'rms');
    const g = randn([8], 6);
    assertClose(rmsNorm(x, g, 0), mul(y, g), 1e-15, 'rms gamma');
  });
});

describe('matmul', () => {
  const A = fromNested([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const B = fromNested([
    [7, 8],
    [9, 10],
    [11, 12],
  ]);

  it('matches a hand-computed 2x3 . 3x2 product', () => {
    expect(matmul(A, B).toNested()).toEqual([
      [58, 64],
      [139, 154],
    ]);
  });

  it('transA / transB read the stored matrix transposed', () => {
    const want = matmul(A, B).toNested();
    expect(matmul(transpose(A), B, { transA: true }).toNested()).toEqual(want);
    expect(matmul(A, transpose(B), { transB: true }).toNested()).toEqual(want);
    expect(matmul(transpose(A), transpose(B), { transA: true, transB: true }).toNested()).toEqual(want);
  });

  it('broadcasts batch dims', () => {
    const a = randn([2, 1, 3, 4], 7);
    const b = randn([5, 4, 2], 8);
    const c = matmul(a, b);
    expect(c.shape).toEqual([2, 5, 3, 2]);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 5; j++) {
        const ai = reshape(slice(a, [i, 0, 0, 0], [i + 1, 1, 3, 4]), [3, 4]);
        const bj = reshape(slice(b, [j, 0, 0], [j + 1, 4, 2]), [4, 2]);
        const cij = reshape(slice(c, [i, j, 0, 0], [i + 1, j + 1, 3, 2]), [3, 2]);
        expect(Array.from(cij.data)).toEqual(Array.from(matmul(ai, bj).data));
      }
    }
  });
});

describe('shape ops', () => {
  const x = fromNested([
    [0, 1, 2],
    [3, 4, 5],
  ]);

  it('concat, slice, permute, reshape', () => {
    expect(concat([x, fromNested([[6, 7, 8]])], 0).toNested()).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
    ]);
    expect(concat([x, fromNested([[9], [10]])], -1).toNested()).toEqual([
      [0, 1, 2, 9],
      [3, 4, 5, 10],
    ]);
    expect(slice(x, [0, 1], [2, -1]).toNested()).toEqual([[1], [4]]);
    expect(transpose(x).toNested()).toEqual([
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    const y = reshape(fromNested([...Array(24).keys()]), [2, 3, 4]);
    const p = permute(y, [2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    expect(p.get(3, 1, 2)).toBe(y.get(1, 2, 3));
    expect(reshape(x, [-1]).shape).toEqual([6]);
    expect(() => reshape(x, [4, -1])).toThrow();
  });

  it('where and maskedFill broadcast the condition', () => {
    const cond = fromNested([1, 0, 1]);
    expect(where(cond, x, -1).toNested()).toEqual([
      [0, -1, 2],
      [3, -1, 5],
    ]);
    expect(maskedFill(x, fromNested([[0], [1]]), -Infinity).toNested()).toEqual([
      [0, 1, 2],
      [-Infinity, -Infinity, -Infinity],
    ]);
  });

  it('embedding gathers rows', () => {
    const w = fromNested([
      [0, 0],
      [1, 10],
      [2, 20],
    ]);
    const e = embedding(w, [2, 0, 1, 2], [2, 2]);
    expect(e.shape).toEqual([2, 2, 2]);
    expect(e.toNested()).toEqual([
      [
        [2, 20],
        [0, 0],
      ],
      [
        [1, 10],
        [2, 20],
      ],
    ]);
    expect(() => embedding(w, [3])).toThrow();
  });
});

describe('attention', () => {
  it('matches a hand-computed two-key example', () => {
    const q = reshape(fromNested([1, 0]), [1, 1, 1, 2]);
    const k = reshape(fromNested([1, 0, 0, 1]), [1, 1, 2, 2]);
    const v = reshape(fromNested([1, 2, 3, 4]), [1, 1, 2, 2]);
    const e = Math.E;
    const w0 = e / (e + 1);
    const w1 = 1 / (e + 1);
    assertClose(sdpa(q, k, v, { scale: 1 }), [w0 * 1 + w1 * 3, w0 * 2 + w1 * 4], 1e-15, 'hand sdpa');
  });

  it('a single key returns v', () => {
    const q = randn([2, 3, 4, 8], 10);
    const k = randn([2, 3, 1, 8], 11);
    const v = randn([2, 3, 1, 5], 12);
    const out = sdpa(q, k, v);
    expect(out.shape).toEqual([2, 3, 4, 5]);
    assertClose(out, matmul(F64.full([2, 3, 4, 1], 1), v), 1e-15, 'single key');
  });

  it('causal: first query sees only v[0]', () => {
    const q = randn([1, 2, 6, 4], 13);
    const k = randn([1, 2, 6, 4], 14);
    const v = randn([1, 2, 6, 4], 15);
    const out = sdpa(q, k, v, { causal: true });
    assertClose(slice(out, [0, 0, 0, 0], [1, 2, 1, 4]), slice(v, [0, 0, 0, 0], [1, 2, 1, 4]), 1e-15, 'row 0');
  });

  it('causal with T < S equals the last T rows of full causal attention (KV cache)', () => {
    const q = randn([2, 2, 7, 4], 16);
    const k = randn([2, 2, 7, 4], 17);
    const v = randn([2, 2, 7, 4], 18);
    const full = sdpa(q, k, v, { causal: true });
    const tail = sdpa(slice(q, [0, 0, 4, 0], [2, 2, 7, 4]), k, v, { causal: true });
    assertClose(tail, slice(full, [0, 0, 4, 0], [2, 2, 7, 4]), 1e-15, 'kv cache');
  });

  it('GQA equals attention with kv heads repeated explicitly', () => {
    const q = randn([2, 6, 3, 4], 19);
    const k = randn([2, 2, 5, 4], 20);
    const v = randn([2, 2, 5, 4], 21);
    const rep = (x: F64) =>
      concat(
        [0, 0, 0, 1, 1, 1].map((h) => slice(x, [0, h, 0, 0], [2, h + 1, 5, 4])),
        1,
      );
    for (const causal of [false, true]) {
      assertClose(
        sdpa(q, k, v, { causal }),
        sdpa(q, rep(k), rep(v), { causal }),
        1e-15,
        `gqa causal=${causal}`,
      );
    }
  });

  it('key padding mask equals dropping the key; fully masked rows output 0', () => {
    const q = randn([2, 1, 3, 4], 22);
    const k = randn([2, 1, 4, 4], 23);
    const v = randn([2, 1, 4, 4], 24);
    const mask = fromNested([
      [1, 0, 1, 1],
      [0, 0, 0, 0],
    ]);
    const out = sdpa(q, k, v, { keyPaddingMask: mask });
    const keep = [0, 2, 3];
    const pick = (x: F64) =>
      concat(
        keep.map((j) => slice(x, [0, 0, j, 0], [1, 1, j + 1, 4])),
        2,
      );
    const b0 = sdpa(slice(q, [0, 0, 0, 0], [1, 1, 3, 4]), pick(k), pick(v));
    assertClose(slice(out, [0, 0, 0, 0], [1, 1, 3, 4]), b0, 1e-15, 'mask batch 0');
    expect(Array.from(slice(out, [1, 0, 0, 0], [2, 1, 3, 4]).data).every((z) => z === 0)).toBe(true);
  });
});

describe('rope', () => {
  const D = 8;
  const opts = { theta: 10000, layout: 'half' as const };
  const dot = (a: F64, b: F64) => a.data.reduce((s, v, i) => s + v * b.data[i], 0);

  it('is the identity at position 0', () => {
    const x = randn([2, 3, 1, D], 30);
    for (const layout of ['half', 'interleaved'] as const) {
      expect(Array.from(rope(x, [0], { theta: 10000, layout }).data)).toEqual(Array.from(x.data));
    }
  });

  it('preserves the norm of every vector', () => {
    const x = randn([1, 2, 5, D], 31);
    const y = rope(x, [0, 1, 7, 100, 4095], opts);
    assertClose(sum(mul(y, y), -1), sum(mul(x, x), -1), 1e-14, 'norms');
  });

  it('scores depend only on relative position', () => {
    const q = randn([1, 1, 1, D], 32);
    const k = randn([1, 1, 1, D], 33);
    const s1 = dot(rope(q, [5], opts), rope(k, [2], opts));
    const s2 = dot(rope(q, [13], opts), rope(k, [10], opts));
    expect(Math.abs(s1 - s2)).toBeLessThan(1e-12);
  });

  it('rotate-half and interleaved agree up to the pair permutation', () => {
    // Half pairs (i, i+D/2) are interleaved pairs (2i, 2i+1).
    const perm = Array.from({ length: D }, (_, j) => (j % 2 === 0 ? j / 2 : (j - 1) / 2 + D / 2));
    const x = randn([2, 2, 4, D], 34);
    const pos = [3, 0, 9, 250];
    const viaHalf = gatherLast(rope(x, pos, opts), perm);
    const viaInterleaved = rope(gatherLast(x, perm), pos, { ...opts, layout: 'interleaved' });
    assertClose(viaInterleaved, viaHalf, 1e-15, 'layouts');
  });

  it('partial rotary rotates the first rotaryDim dims with exponent over rotaryDim', () => {
    const x = randn([1, 2, 3, 6], 35);
    const pos = [1, 2, 40];
    const y = rope(x, pos, { ...opts, rotaryDim: 4 });
    const head = rope(slice(x, [0, 0, 0, 0], [1, 2, 3, 4]), pos, opts);
    assertClose(slice(y, [0, 0, 0, 0], [1, 2, 3, 4]), head, 1e-15, 'rotated part');
    assertClose(
      slice(y, [0, 0, 0, 4], [1, 2, 3, 6]),
      slice(x, [0, 0, 0, 4], [1, 2, 3, 6]),
      0,
      'pass-through',
    );
  });

  it('linear scaling equals dividing positions by factor', () => {
    const x = randn([1, 1, 3, D], 36);
    const scaled = rope(x, [0, 2, 8], { ...opts, scaling: { type: 'linear', factor: 2 } });
    assertClose(scaled, rope(x, [0, 1, 4], opts), 1e-15, 'linear');
  });

  it('llama3 scaling matches hand-derived frequencies', () => {
    // D=8, theta=5e5: inv_i = 5e5^(-i/4). low_freq_wavelen = 8192/1 = 8192,
    // high_freq_wavelen = 8192/4 = 2048.
    //   i=0: wavelen 2pi            < 2048 -> keep 1
    //   i=1: wavelen 2pi*5e5^0.25 ~ 167 < 2048 -> keep 5e5^-0.25 = 0.03760603093086393
    //   i=2: wavelen 2pi*sqrt(5e5) ~ 4443 in [2048, 8192] -> smooth
    //        s = (8192/(2pi*sqrt(5e5)) - 1)/3 = 0.28128260516325104,
    //        inv = ((1-s)/8 + s)/sqrt(5e5) = 5.248461609929547e-4
    //   i=3: wavelen 2pi*5e5^0.75 ~ 1.18e5 > 8192 -> 5e5^-0.75/8 = 6.647869871181235e-6
    const s = (8192 / (2 * Math.PI * Math.sqrt(5e5)) - 1) / 3;
    expect(Math.abs(s - 0.28128260516325104)).toBeLessThan(1e-15);
    const inv = ropeInvFreq(8, 500000, {
      type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    });
    assertClose(
      inv,
      [1, 0.03760603093086393, ((1 - s) / 8 + s) / Math.sqrt(5e5), 5e5 ** -0.75 / 8],
      1e-15,
      'llama3 closed form',
    );
    assertClose(inv.subarray(2), [5.248461609929547e-4, 6.647869871181235e-6], 1e-13, 'llama3 literals');
  });
});

describe('cross entropy', () => {
  const logits = fromNested([
    [1, 2, 3],
    [0, 0, 0],
    [2, -1, 0.5],
  ]);
  const targets = [2, -100, 0];
  // Loss = log-sum-exp(row) - row[target].
  const l0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3;
  const l2 = Math.log(Math.exp(2) + Math.exp(-1) + Math.exp(0.5)) - 2;

  it('mean is over non-ignored targets', () => {
    const loss = crossEntropy(logits, targets);
    expect(loss.shape).toEqual([]);
    expect(Math.abs(loss.data[0] - (l0 + l2) / 2)).toBeLessThan(1e-15);
    expect(Math.abs(loss.data[0] - 0.3244586305507686)).toBeLessThan(1e-15);
  });

  it('sum and none reductions', () => {
    expect(Math.abs(crossEntropy(logits, targets, { reduction: 'sum' }).data[0] - (l0 + l2))).toBeLessThan(
      1e-15,
    );
    assertClose(crossEntropy(logits, targets, { reduction: 'none' }), [l0, 0, l2], 1e-14, 'none');
    expect(crossEntropy(logits, [0, 0, 0], { ignoreIndex: 0 }).data[0]).toBeNaN();
  });
});

describe('gradcheck helpers', () => {
  it('vjp of x^2 is 2 x g', () => {
    const x = randn([3, 4], 40, 3);
    const g = randn([3, 4], 41);
    const [dx] = vjpFiniteDiff(([a]) => mul(a, a), [x], g);
    assertClose(dx, mul(mul(x, 2), g), 1e-8, 'd(x^2)');
    // Inputs are not mutated.
    expect(Array.from(x.data)).toEqual(Array.from(randn([3, 4], 40, 3).data));
  });

  it('vjp of matmul is g . B^T and A^T . g', () => {
    const a = randn([3, 4], 42);
    const b = randn([4, 2], 43);
    const g = randn([3, 2], 44);
    const [da, db] = vjpFiniteDiff(([x, y]) => matmul(x, y), [a, b], g);
    assertClose(da, matmul(g, transpose(b)), 1e-8, 'dA');
    assertClose(db, matmul(transpose(a), g), 1e-8, 'dB');
  });

  it('relErr and assertClose report the worst element', () => {
    expect(relErr([1, 2, 3], [1, 2, 4])).toBeCloseTo(0.25, 15);
    expect(relErr([0, 0], [0, 0])).toBe(0);
    expect(() => assertClose([1, Number.NaN], [1, 2], 1, 'nan')).toThrow(/nan: .*worst flat index 1/);
    const e = fromNested([
      [1, 2],
      [3, 4],
    ]);
    expect(() => assertClose([1, 2, 3, 5], e, 0.1, 'layout')).toThrow(
      /layout: relErr 2\.500e-1 .* index 3 \(index \[1,1\]\): actual 5, expected 4.*expected shape \[2,2\]/,
    );
    expect(() => assertClose([1, 2, 3, 4.0001], e, 1e-4, 'ok')).not.toThrow();
  });
});
