import { afterEach, describe, expect, it } from 'vitest';
import * as core from '../src/node.js';
import { checkOp } from './check.js';
import { useGpu } from './gpu.js';
import { F64, Rng, randn } from './reference/ndarray.js';
import * as R from './reference/ops.js';

/**
 * Tensors larger than one binding (128 MiB on lavapipe) are processed in windows. The limit is lowered
 * here so the windowed paths run on small tensors; results must equal the unwindowed computation.
 */
describe('tensors over the binding limit', () => {
  const gpu = useGpu();
  afterEach(() => gpu.device().setBindingLimitForTesting(null));

  it('elementwise, cast and fill work in windows', async () => {
    // Odd length (scalar kernels) here; the next test covers the vec4 kernels.
    const n = 5000 + 37;
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    const expected = await core.tidy(() => core.exp(core.add(core.tensor(a), core.tensor(b)))).data();
    gpu.device().setBindingLimitForTesting(4096);
    const ta = core.tensor(a);
    const tb = core.tensor(b);
    const got = await core.exp(core.add(ta, tb)).data();
    expect(got).toEqual(expected);
    const half = core.cast(ta, 'f16');
    const back = await core.cast(half, 'f32').data();
    for (let i = 0; i < n; i++) expect(Math.abs(back[i] - a[i])).toBeLessThan(1e-3);
    const filled = await core.full([n], 2.5).data();
    expect(filled.every((v) => v === 2.5)).toBe(true);
  });

  it('vec4 elementwise kernels work in windows', async () => {
    const n = 6000;
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const expected = await core.tidy(() => core.tanh(core.mul(core.tensor(a), core.tensor(a)))).data();
    gpu.device().setBindingLimitForTesting(4096);
    const ta = core.tensor(a);
    expect(await core.tanh(core.mul(ta, ta)).data()).toEqual(expected);
    for (let i = 0; i < n; i += 997) expect(expected[i]).toBeCloseTo(Math.tanh(a[i] * a[i]), 6);
  });

  // 2-D products whose operands or output exceed the limit: rows of A and C in windows (A·B, A·Bᵀ:
  // the LM head and its input gradient), or K ranges summed into C (Aᵀ·B: the weight gradient).
  // Forward and both gradients against float64 (dA = G·op(B)ᵀ, dB = op(A)ᵀ·G, transposed back).
  for (const [sa, sb, transA, transB] of [
    [[300, 40], [40, 70], false, false],
    [[301, 40], [70, 40], false, true],
    [[300, 40], [300, 70], true, false],
  ] as Array<[number[], number[], boolean, boolean]>) {
    it(`matmul [${sa}]${transA ? 'ᵀ' : ''}·[${sb}]${transB ? 'ᵀ' : ''} in windows`, async () => {
      // 64 rows of 70 floats: every operand over it (48 KB, 84 KB) is split, B and dB (11 KB) are not.
      gpu.device().setBindingLimitForTesting(64 * 70 * 4);
      const rng = new Rng(5);
      const t = (x: F64, yes: boolean) => (yes ? R.transpose(x, [1, 0]) : x);
      await checkOp(
        'windowed matmul',
        ([a, b]) => core.matmul(a, b, { transA, transB }),
        ([a, b]) => R.matmul(a, b, { transA, transB }),
        [randn(sa, rng), randn(sb, rng)],
        {
          refGrad: ([a, b], g) => [
            t(R.matmul(g, t(b, transB), { transB: true }), transA),
            t(R.matmul(t(a, transA), g, { transA: true }), transB),
          ],
        },
      );
    });
  }

  // Row-wise ops over rows that exceed the limit run in windows of 64 rows ([150, 70] floats: 42 KB
  // against 17.9 KB). Gradients of sum(out · G) against float64: softmax y·(G − Σ G·y), log-softmax
  // G − softmax(x)·Σ G, cross entropy (softmax(x) − onehot)/count on the rows that are not ignored.
  describe('row-wise ops in windows', () => {
    const [R_, C] = [150, 70];
    const perRow = (x: F64, f: (row: Float64Array, r: number) => ArrayLike<number>): F64 => {
      const out = new F64(x.shape);
      for (let r = 0; r < R_; r++) out.data.set(f(x.data.subarray(r * C, (r + 1) * C), r), r * C);
      return out;
    };
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += a[i] * b[i];
      return s;
    };
    const softmaxRows = (x: F64) => R.softmax(x);
    const targets = Array.from({ length: R_ }, (_, r) => (r % 7 === 3 ? -100 : (r * 13) % C));
    const cases: Array<[string, (t: core.Tensor) => core.Tensor, (x: F64) => F64, (x: F64, g: F64) => F64]> =
      [
        [
          'softmax',
          (t) => core.softmax(t),
          (x) => R.softmax(x),
          (x, g) => {
            const y = softmaxRows(x);
            return perRow(x, (_, r) => {
              const yr = y.data.subarray(r * C, (r + 1) * C);
              const gr = g.data.subarray(r * C, (r + 1) * C);
              const s = dot(gr, yr);
              return yr.map((v, i) => v * (gr[i] - s));
            });
          },
        ],
        [
          'logSoftmax',
          (t) => core.logSoftmax(t),
          (x) => R.logSoftmax(x),
          (x, g) => {
            const y = softmaxRows(x);
            return perRow(x, (_, r) => {
              const gr = g.data.subarray(r * C, (r + 1) * C);
              const s = gr.reduce((a, v) => a + v, 0);
              return gr.map((v, i) => v - y.data[r * C + i] * s);
            });
          },
        ],
        [
          'crossEntropy (mean, some rows ignored)',
          (t) => core.crossEntropy(t, core.tensor(targets, [R_], 'i32')),
          (x) => R.crossEntropy(x, targets),
          (x, g) => {
            const y = softmaxRows(x);
            const count = targets.filter((t) => t !== -100).length;
            return perRow(x, (_, r) =>
              Array.from({ length: C }, (_, i) =>
                targets[r] === -100
                  ? 0
                  : ((y.data[r * C + i] - (i === targets[r] ? 1 : 0)) * g.data[0]) / count,
              ),
            );
          },
        ],
      ];
    // Norms: the input gradient against finite differences (gamma and beta are constants), on
    // [130, 24] (12.5 KB) against windows of 64 rows (6 KB) to keep the differences quick.
    const NC = 24;
    const gamma = randn([NC], new Rng(10));
    const beta = randn([NC], new Rng(11));
    const constant = (x: F64) => core.tensor(x.toFloat32(), x.shape);
    for (const [name, op, ref] of [
      [
        'layerNorm',
        (t: core.Tensor) => core.layerNorm(t, constant(gamma), constant(beta)),
        (x: F64) => R.layerNorm(x, gamma, beta, 1e-5),
      ],
      [
        'rmsNorm',
        (t: core.Tensor) => core.rmsNorm(t, constant(gamma)),
        (x: F64) => R.rmsNorm(x, gamma, 1e-6),
      ],
    ] as const) {
      it(name, async () => {
        gpu.device().setBindingLimitForTesting(64 * NC * 4);
        await checkOp(
          name,
          ([x]) => op(x),
          ([x]) => ref(x),
          [randn([130, NC], new Rng(12))],
          { bwdTol: 2e-4 },
        );
      });
    }
    for (const [name, op, ref, grad] of cases) {
      it(name, async () => {
        gpu.device().setBindingLimitForTesting(64 * C * 4);
        await checkOp(
          name,
          ([x]) => op(x),
          ([x]) => ref(x),
          [randn([R_, C], new Rng(9))],
          {
            refGrad: ([x], g) => [grad(x, g)],
          },
        );
      });
    }
  });

  // Concat and slice copy in windows (4 KB limit: 896 f32 per window): groups of outer slabs for the
  // concat, ranges along the axis within one slab for the slices. Copies are exact, and so are their
  // gradients: the upstream gradient split (concat) or placed into zeros (slice).
  describe('concat and slice in windows', () => {
    const rng = new Rng(13);
    /** Zeros of `shape` with `g` placed at [starts, starts + g.shape). */
    const placed = (shape: number[], starts: number[], g: F64): F64 => {
      const out = new F64(shape);
      const outStrides = shape.map((_, k) => shape.slice(k + 1).reduce((p, q) => p * q, 1));
      const gStrides = g.shape.map((_, k) => g.shape.slice(k + 1).reduce((p, q) => p * q, 1));
      for (let e = 0; e < g.data.length; e++) {
        let at = 0;
        for (let k = 0; k < shape.length; k++)
          at += (starts[k] + (Math.floor(e / gStrides[k]) % g.shape[k])) * outStrides[k];
        out.data[at] = g.data[e];
      }
      return out;
    };
    const sliceCase = (shape: number[], starts: number[], ends: number[]) =>
      [
        `slice [${shape}] to [${starts}]..[${ends}]`,
        ([a]: core.Tensor[]) => core.slice(a, starts, ends),
        ([a]: F64[]) => R.slice(a, starts, ends),
        [randn(shape, rng)],
        (_: F64[], g: F64) => [placed(shape, starts, g)],
      ] as const;
    const cases = [
      [
        'concat [200, 30] and [200, 20] along the last axis',
        ([a, b]: core.Tensor[]) => core.concat([a, b], -1),
        ([a, b]: F64[]) => R.concat([a, b], -1),
        [randn([200, 30], rng), randn([200, 20], rng)],
        (_: F64[], g: F64) => [R.slice(g, [0, 0], [200, 30]), R.slice(g, [0, 30], [200, 50])],
      ] as const,
      sliceCase([3, 50, 40], [0, 5, 0], [3, 47, 40]),
      sliceCase([300, 20], [10, 0], [290, 20]),
    ];
    for (const [name, op, ref, inputs, refGrad] of cases) {
      it(name, async () => {
        gpu.device().setBindingLimitForTesting(4096);
        await checkOp(name, op, ref, [...inputs], { refGrad });
      });
    }
  });

  it('a single row wider than the binding reports the limit instead of failing silently', () => {
    gpu.device().setBindingLimitForTesting(4096);
    const x = core.zeros([4, 2000]);
    expect(() => core.layerNorm(x, core.ones([2000]), core.zeros([2000]))).toThrow(
      /maxStorageBufferBindingSize/,
    );
  });
});
