import { describe, expect, it } from 'vitest';
import { denseDispatch } from '../src/kernels/matmul/run.js';
import { runTextureMatmul, setTextureBlocksForTesting } from '../src/kernels/matmul/run-texture.js';
import * as core from '../src/node.js';
import { checkOp, oddShapes } from './check.js';
import { useGpu } from './gpu.js';
import { F64, Rng, randn, randUniform } from './reference/ndarray.js';
import * as R from './reference/ops.js';

function swapLast(rank: number): number[] {
  const p = Array.from({ length: rank }, (_, i) => i);
  [p[rank - 2], p[rank - 1]] = [p[rank - 1], p[rank - 2]];
  return p;
}

/** Sums a float64 gradient over leading batch dims and broadcast (size-1) dims down to `shape`. */
function sumTo(x: F64, shape: readonly number[]): F64 {
  let cur = x;
  while (cur.shape.length > shape.length) cur = R.sum(cur, 0);
  shape.forEach((d, i) => {
    if (d === 1 && cur.shape[i] !== 1) cur = R.sum(cur, i, true);
  });
  return cur;
}

/**
 * The profile of backward through f(inputs) with a random upstream gradient, the first input alone
 * requiring grad, its gradient read back.
 */
async function backwardProfile(
  f: (ts: core.Tensor[]) => core.Tensor,
  inputs: F64[],
): Promise<core.ProfileReport> {
  const dev = core.getDevice();
  const ts = inputs.map((t) => core.tensor(t.toFloat32(), t.shape));
  ts[0].requiresGrad = true;
  const out = f(ts);
  const up = core.randn(out.shape, { seed: 5 });
  dev.startProfile();
  core.backward(out, up);
  await ts[0].grad?.data();
  const report = await dev.stopProfile();
  for (const t of [out, up, ...ts]) t.dispose();
  return report;
}

/** The pipeline key of each event of a profile's trace, in order ('' for host events and copies). */
const traceKeys = (report: core.ProfileReport): string[] =>
  report.trace.map((e) => String(e.args?.key ?? ''));

/** Pipeline keys of the dispatches that backward runs (see backwardProfile). */
async function backwardKeys(f: (ts: core.Tensor[]) => core.Tensor, inputs: F64[]): Promise<string[]> {
  return traceKeys(await backwardProfile(f, inputs));
}

/** Row kernels (reductions, softmax, norms) on shapes with rows shorter and longer than a workgroup. */
async function reductionChecks(rng: Rng): Promise<void> {
  for (const shape of [
    [5, 7, 3],
    [1, 9, 1],
    [130, 3],
    [2, 300],
  ]) {
    for (let axis = 0; axis < shape.length; axis++) {
      const x = randn(shape, rng);
      await checkOp(
        `sum ${shape} axis ${axis}`,
        ([a]) => core.sum(a, axis),
        ([a]) => R.sum(a, axis),
        [x],
      );
      await checkOp(
        `mean ${shape} axis ${axis} keep`,
        ([a]) => core.mean(a, axis, true),
        ([a]) => R.mean(a, axis, true),
        [x],
      );
      await checkOp(
        `max ${shape} axis ${axis}`,
        ([a]) => core.max(a, axis),
        ([a]) => R.max(a, axis),
        [x],
      );
    }
  }
  const x = randn([17, 5], rng);
  await checkOp(
    'sum all',
    ([a]) => core.sum(a),
    ([a]) => new F64([], [R.sumAll(a)]),
    [x],
  );
}

async function softmaxChecks(rng: Rng): Promise<void> {
  for (const shape of [
    [3, 7],
    [2, 3, 129],
    [1, 1],
    [5, 1000],
  ]) {
    const x = randn(shape, rng, 2);
    await checkOp(
      `softmax ${shape}`,
      ([a]) => core.softmax(a),
      ([a]) => R.softmax(a),
      [x],
    );
    await checkOp(
      `logSoftmax ${shape}`,
      ([a]) => core.logSoftmax(a),
      ([a]) => R.logSoftmax(a),
      [x],
    );
  }
}

async function normChecks(rng: Rng): Promise<void> {
  for (const shape of [
    [3, 7],
    [2, 5, 67],
    // Rows of a multiple of 4 take the vec4 kernels (64: stories260K's width).
    [4, 300],
    [3, 64],
    // Too long for a lane to keep its share in registers with 8-lane rows: read on each pass.
    [2, 301],
  ]) {
    const d = shape[shape.length - 1];
    const x = randn(shape, rng);
    const g = randn([d], rng, 0.5, 1);
    const b = randn([d], rng);
    await checkOp(
      `layerNorm ${shape}`,
      ([a, gg, bb]) => core.layerNorm(a, gg, bb, 1e-5),
      ([a, gg, bb]) => R.layerNorm(a, gg, bb, 1e-5),
      [x, g, b],
      { bwdTol: 2e-4 },
    );
    await checkOp(
      `rmsNorm ${shape}`,
      ([a, gg]) => core.rmsNorm(a, gg, 1e-6),
      ([a, gg]) => R.rmsNorm(a, gg, 1e-6),
      [x, g],
      { bwdTol: 2e-4 },
    );
  }
}

/** Every op, forward and backward, against the float64 reference on odd random shapes. */
/**
 * Gradients of op(a)·op(b) by the float64 product rule (dA = G·op(B)ᵀ, dB = op(A)ᵀ·G, summed over
 * broadcast batch dims), itself checked against finite differences on the small matmul cases.
 */
const productRule =
  (ta: boolean, tb: boolean) =>
  ([a, b]: F64[], g: F64): F64[] => {
    const opA = ta ? R.transpose(a, swapLast(a.shape.length)) : a;
    const opB = tb ? R.transpose(b, swapLast(b.shape.length)) : b;
    let dOpA = R.matmul(g, opB, { transB: true });
    let dOpB = R.matmul(opA, g, { transA: true });
    if (ta) dOpA = R.transpose(dOpA, swapLast(dOpA.shape.length));
    if (tb) dOpB = R.transpose(dOpB, swapLast(dOpB.shape.length));
    return [sumTo(dOpA, a.shape), sumTo(dOpB, b.shape)];
  };

describe('conformance: elementwise, reductions, softmax, norms, matmul, shape ops', () => {
  useGpu();
  const rng = new Rng(1234);

  /** A random product (B given as stored) gives the same values to the bit on the texture and buffer paths. */
  async function expectSameOnBothPaths(shapeA: number[], shapeB: number[], transB: boolean): Promise<void> {
    const dev = core.getDevice();
    const a = core.tensor(randn(shapeA, rng).toFloat32(), shapeA);
    const b = core.tensor(randn(shapeB, rng).toFloat32(), shapeB);
    const got: Float32Array[] = [];
    for (const mode of ['always', 'never'] as const) {
      dev.matmulTextures = mode;
      const c = core.matmul(a, b, { transB });
      got.push((await c.data()) as Float32Array);
      c.dispose();
    }
    expect(got[0]).toEqual(got[1]);
    a.dispose();
    b.dispose();
  }

  const unary: Array<[string, (t: core.Tensor) => core.Tensor, (x: F64) => F64, 'any' | 'pos']> = [
    ['neg', core.neg, R.neg, 'any'],
    ['exp', core.exp, R.exp, 'any'],
    ['log', core.log, R.log, 'pos'],
    ['sqrt', core.sqrt, R.sqrt, 'pos'],
    ['rsqrt', core.rsqrt, R.rsqrt, 'pos'],
    ['tanh', core.tanh, R.tanh, 'any'],
    ['sigmoid', core.sigmoid, R.sigmoid, 'any'],
    ['relu', core.relu, R.relu, 'any'],
    ['silu', core.silu, R.silu, 'any'],
    ['gelu (tanh)', core.gelu, R.geluTanh, 'any'],
    ['gelu (erf)', core.geluErf, R.geluErf, 'any'],
    ['abs', core.abs, R.abs, 'any'],
  ];
  for (const [name, gpu, ref, domain] of unary) {
    it(`unary ${name}`, async () => {
      // One shape whose size is a multiple of 4 (vec4 path), the others odd.
      for (const shape of [[3, 8], ...oddShapes(rng, 2, 2, 13)]) {
        // Keep away from kinks (relu/abs at 0) where finite differences are undefined.
        let x = domain === 'pos' ? randUniform(shape, rng, 0.2, 3) : randn(shape, rng);
        if (name === 'relu' || name === 'abs') x = R.map(x, (v) => (Math.abs(v) < 0.05 ? v + 0.1 : v));
        await checkOp(
          `${name} ${shape}`,
          ([a]) => gpu(a),
          ([a]) => ref(a),
          [x],
        );
      }
    });
  }

  it('sigmoid and silu stay finite and exact where exp overflows or underflows', async () => {
    const xs = [-1000, -100, -88.7, -30, -1e-8, -0, 0, 1e-8, 30, 88.7, 100, 1000];
    // 12 values take the vec4 path, 11 the scalar one.
    for (const values of [xs, xs.slice(1)]) {
      const x = core.tensor(values, [values.length]);
      for (const [op, ref] of [
        [core.sigmoid, R.sigmoid],
        [core.silu, R.silu],
      ] as const) {
        const got = Array.from((await op(x).data()) as Float32Array);
        const want = ref(new F64([values.length], values)).data;
        got.forEach((g, i) => {
          expect(Number.isFinite(g)).toBe(true);
          expect(Math.abs(g - want[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i])));
        });
      }
    }
  });

  it('gatedActivation: act(gate)·up for every activation, one pass each way', async () => {
    const acts: Array<[core.Activation, (x: F64) => F64]> = [
      ['relu', R.relu],
      ['silu', R.silu],
      ['gelu', R.geluTanh],
      ['gelu_erf', R.geluErf],
    ];
    for (const [act, ref] of acts) {
      for (const shape of [[3, 8], ...oddShapes(rng, 3, 1, 7)]) {
        let gate = randn(shape, rng);
        if (act === 'relu') gate = R.map(gate, (v) => (Math.abs(v) < 0.05 ? v + 0.1 : v));
        await checkOp(
          `gated ${act} ${shape}`,
          ([g, u]) => core.gatedActivation(g, u, act),
          ([g, u]) => R.mul(ref(g), u),
          [gate, randn(shape, rng)],
        );
      }
    }
    const dev = core.getDevice();
    dev.startProfile();
    core.tidy(() => {
      const [gate, up] = [1, 2].map((seed) => core.randn([4, 6], { seed }));
      gate.requiresGrad = true;
      up.requiresGrad = true;
      core.backward(core.gatedActivation(gate, up, 'silu'), core.ones([4, 6]));
    });
    const passes = Object.fromEntries((await dev.stopProfile()).ops.map((o) => [o.kind, o.dispatches]));
    // The product forward and both gradients: one binary pass, one backward pass, no unary maps.
    expect([passes.binary, passes.gated_bwd, passes.unary]).toEqual([1, 1, undefined]);
    expect(() => core.gatedActivation(core.zeros([2, 3]), core.zeros([3, 2]), 'silu')).toThrow(/differ/);
  });

  it('scalar ops: scale, addScalar, powScalar', async () => {
    const x = randUniform([5, 7], rng, 0.3, 2);
    await checkOp(
      'scale',
      ([a]) => core.scale(a, -1.7),
      ([a]) => R.scale(a, -1.7),
      [x],
    );
    await checkOp(
      'addScalar',
      ([a]) => core.addScalar(a, 0.3),
      ([a]) => R.add(a, 0.3),
      [x],
    );
    await checkOp(
      'powScalar 2.5',
      ([a]) => core.powScalar(a, 2.5),
      ([a]) => R.pow(a, 2.5),
      [x],
    );
    const y = randn([3, 11], rng);
    await checkOp(
      'powScalar 3 (negative base)',
      ([a]) => core.powScalar(a, 3),
      ([a]) => R.pow(a, 3),
      [y],
    );
  });

  const binary: Array<[string, (a: core.Tensor, b: core.Tensor) => core.Tensor, (a: F64, b: F64) => F64]> = [
    ['add', core.add, R.add],
    ['sub', core.sub, R.sub],
    ['mul', core.mul, R.mul],
    ['div', core.div, R.div],
    ['pow', core.pow, R.pow],
    ['maximum', core.maximum, R.maximum],
  ];
  const pairs: Array<[number[], number[]]> = [
    [
      [7, 5],
      [7, 5],
    ],
    [
      [4, 6],
      [4, 6],
    ],
    [[3, 4, 5], [5]],
    [
      [3, 1, 5],
      [1, 4, 1],
    ],
    [[2, 3], [1]],
    [[6], [2, 3, 6]],
    // Rows repeating along the leading dims (a bias): four at a time when the row allows.
    [
      [3, 4, 8],
      [4, 8],
    ],
    [
      [1, 12],
      [5, 12],
    ],
    [
      [5, 7],
      [1, 7],
    ],
  ];
  for (const [name, gpu, ref] of binary) {
    it(`binary ${name} with broadcasting`, async () => {
      for (const [sa, sb] of pairs) {
        const a = name === 'pow' ? randUniform(sa, rng, 0.5, 2) : randn(sa, rng);
        const b = name === 'div' || name === 'pow' ? randUniform(sb, rng, 0.5, 2) : randn(sb, rng);
        await checkOp(
          `${name} [${sa}]x[${sb}]`,
          ([x, y]) => gpu(x, y),
          ([x, y]) => ref(x, y),
          [a, b],
        );
      }
    });
  }

  it('where and maskedFill', async () => {
    const cond = new F64(
      [4, 5],
      Array.from({ length: 20 }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0)),
    );
    const condT = core.tensor(cond.toFloat32(), cond.shape);
    await checkOp(
      'where',
      ([a, b]) => core.where(condT, a, b),
      ([a, b]) => R.where(cond, a, b),
      [randn([4, 5], rng), randn([5], rng)],
    );
    await checkOp(
      'maskedFill',
      ([a]) => core.maskedFill(a, condT, -2.5),
      ([a]) => R.maskedFill(a, cond, -2.5),
      [randn([4, 5], rng)],
    );
    condT.dispose();
  });

  it('sum / mean / max over each axis', () => reductionChecks(rng));
  it('softmax and logSoftmax over the last axis', () => softmaxChecks(rng));
  it('layerNorm and rmsNorm', () => normChecks(rng));

  it('matmul: transposes, batches, broadcasting, odd sizes', async () => {
    const cases: Array<[number[], number[], boolean, boolean]> = [
      [[5, 7], [7, 3], false, false],
      [[7, 5], [7, 3], true, false],
      [[5, 7], [3, 7], false, true],
      [[7, 5], [3, 7], true, true],
      [[1, 1], [1, 1], false, false],
      [[5, 0], [0, 3], false, false],
      [[2, 3, 37, 29], [29, 17], false, false],
      [[4, 9, 13], [4, 13, 11], false, false],
      [[4, 9, 13], [13, 11], false, false],
      [[9, 13], [3, 13, 11], false, false],
      [[2, 13, 9], [2, 11, 13], true, true],
      [[3, 33, 8], [65, 8], false, true],
      [[70, 66], [66, 65], false, false],
      // One row against a transposed weight: the matrix–vector kernel (odd N, partial row block).
      [[1, 12], [7, 12], false, true],
      [[1, 1, 36], [45, 36], false, true],
    ];
    // Small cases use finite differences; large ones the float64 product rule (see productRule).
    for (const [sa, sb, ta, tb] of cases) {
      const big = sa.reduce((p, q) => p * q) + sb.reduce((p, q) => p * q) > 600;
      await checkOp(
        `matmul [${sa}]${ta ? 'T' : ''} [${sb}]${tb ? 'T' : ''}`,
        ([a, b]) => core.matmul(a, b, { transA: ta, transB: tb }),
        ([a, b]) => R.matmul(a, b, { transA: ta, transB: tb }),
        [randn(sa, rng), randn(sb, rng)],
        big ? { refGrad: productRule(ta, tb) } : {},
      );
    }
    // LoRA-shaped products take the skinny, split-K and small-K kernels (from the fourth: K = 8 with a
    // partial 128-row block, K = 12 with a broadcast B and a partial column group, K = 4 and 16; then
    // B transposed, the up-projection x·Aᵀ·Bᵀ: K = 8 with partial row and column blocks, K = 16
    // batched).
    for (const [sa, sb, ta, tb] of [
      [[300, 40], [8, 40], false, true],
      [[1100, 8], [1100, 12], true, false],
      [[300, 8], [8, 41], false, false],
      [[700, 8], [8, 768], false, false],
      [[2, 45, 12], [12, 68], false, false],
      [[3, 40, 4], [3, 4, 64], false, false],
      [[33, 16], [16, 64], false, false],
      [[300, 8], [72, 8], false, true],
      [[2, 45, 16], [68, 16], false, true],
    ] as Array<[number[], number[], boolean, boolean]>) {
      await checkOp(
        `LoRA-shaped matmul [${sa}]${ta ? 'T' : ''} [${sb}]${tb ? 'T' : ''}`,
        ([a, b]) => core.matmul(a, b, { transA: ta, transB: tb }),
        ([a, b]) => R.matmul(a, b, { transA: ta, transB: tb }),
        [randn(sa, rng), randn(sb, rng)],
        { refGrad: productRule(ta, tb) },
      );
    }
  });

  it('matmul alpha and addmm on every kernel path, and their gradients', async () => {
    const dev = core.getDevice();
    const alpha = -1.75;
    // Tiled, skinny, small-K, split-K, matrix–vector and (textures forced) packed-texture products.
    const cases: Array<[number[], number[], boolean, 'auto' | 'always']> = [
      [[2, 13, 29], [29, 17], false, 'auto'],
      [[300, 40], [8, 40], true, 'auto'],
      [[3, 40, 8], [8, 64], false, 'auto'],
      [[3, 40, 8], [64, 8], true, 'auto'],
      [[9, 1100], [1100, 12], false, 'auto'],
      [[1, 36], [45, 36], true, 'auto'],
      [[37, 29], [141, 29], true, 'always'],
      // C stored as vec4s (a narrow product, N a multiple of 4).
      [[37, 29], [64, 29], true, 'always'],
    ];
    try {
      for (const [sa, sb, tb, textures] of cases) {
        dev.matmulTextures = textures;
        const N = tb ? sb[0] : sb[1];
        const outShape = [...sa.slice(0, -1), N];
        const rule = productRule(false, tb);
        const scaled = ([a, b]: F64[], g: F64) => rule([a, b], R.scale(g, alpha));
        const label = `[${sa}]·[${sb}]${tb ? 'T' : ''} (${textures})`;
        await checkOp(
          `matmul alpha ${label}`,
          ([a, b]) => core.matmul(a, b, { transB: tb, alpha }),
          ([a, b]) => R.scale(R.matmul(a, b, { transB: tb }), alpha),
          [randn(sa, rng), randn(sb, rng)],
          { refGrad: scaled },
        );
        await checkOp(
          `addmm ${label}`,
          ([c, a, b]) => core.addmm(c, a, b, { transB: tb, alpha }),
          ([c, a, b]) => R.add(c, R.scale(R.matmul(a, b, { transB: tb }), alpha)),
          [randn(outShape, rng), randn(sa, rng), randn(sb, rng)],
          { refGrad: ([, a, b], g) => [g, ...scaled([a, b], g)] },
        );
      }
    } finally {
      dev.matmulTextures = 'auto';
    }
    // A broadcast input goes through add(input, matmul(...)); a transposed a is accumulated by the product.
    await checkOp(
      'addmm with a broadcast input',
      ([c, a, b]) => core.addmm(c, a, b, { alpha }),
      ([c, a, b]) => R.add(c, R.scale(R.matmul(a, b), alpha)),
      [randn([7], rng), randn([5, 6], rng), randn([6, 7], rng)],
    );
    await checkOp(
      'addmm with aᵀ',
      ([c, a, b]) => core.addmm(c, a, b, { transA: true }),
      ([c, a, b]) => R.add(c, R.matmul(a, b, { transA: true })),
      [randn([5, 7], rng), randn([6, 5], rng), randn([6, 7], rng)],
    );
  });

  it('matmul through packed textures: every transpose, odd sizes, blocks along M, N and K', async () => {
    const dev = core.getDevice();
    const texturesHere = dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8;
    dev.matmulTextures = 'always';
    dev.startProfile();
    try {
      // Blocks far below the defaults, so that odd sizes split into several along every dimension;
      // packed through a staging buffer and straight into the texture.
      for (const packing of ['staged', 'texture'] as const)
        for (const [sa, sb, ta, tb] of [
          [[5, 7], [7, 3], false, false],
          [[7, 5], [7, 3], true, false],
          [[5, 7], [3, 7], false, true],
          [[7, 5], [3, 7], true, true],
          [[37, 29], [29, 141], false, false],
          [[29, 37], [141, 29], true, true],
          [[2, 19, 16], [16, 33], false, false],
          [[70, 13], [65, 13], false, true],
          // Bᵀ larger than A: computed as Cᵀ = B·Aᵀ and stored transposed.
          [[37, 29], [141, 29], false, true],
          [[37, 29], [29, 96], false, false],
          // Medium tiles (N up to 64 columns, K of 128 or more), plain, transposed A, and computed
          // transposed (40 columns).
          [[37, 130], [130, 61], false, false],
          [[131, 37], [131, 50], true, false],
          [[40, 131], [141, 131], false, true],
        ] as Array<[number[], number[], boolean, boolean]>) {
          setTextureBlocksForTesting({ M: 32, K: 12, N: 136, packing });
          await checkOp(
            `texture matmul [${sa}]${ta ? 'T' : ''} [${sb}]${tb ? 'T' : ''} ${packing}`,
            ([a, b]) => core.matmul(a, b, { transA: ta, transB: tb }),
            ([a, b]) => R.matmul(a, b, { transA: ta, transB: tb }),
            [randn(sa, rng), randn(sb, rng)],
            { refGrad: productRule(ta, tb) },
          );
        }
      // The same values to the bit as the buffer kernels (without split-K): a document's scores
      // must not depend on whether its batch was large enough for the texture path.
      setTextureBlocksForTesting(null);
      for (const [M, N, K, tb] of [
        [37, 141, 29, false],
        [70, 65, 130, true],
        [37, 141, 29, true],
      ] as Array<[number, number, number, boolean]>) {
        await expectSameOnBothPaths([M, K], tb ? [N, K] : [K, N], tb);
      }
    } finally {
      const kinds = (await dev.stopProfile()).ops.map((o) => o.kind);
      dev.matmulTextures = 'auto';
      setTextureBlocksForTesting(null);
      // On an adapter with readable storage textures and subgroups the products above were packed.
      if (texturesHere) expect(kinds).toContain('matmul_pack');
    }
  });

  it('matmul through packed textures: operands packed by copy, beside ones that need a packing pass', async () => {
    const dev = core.getDevice();
    const texturesHere = dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8;
    dev.matmulTextures = 'always';
    const packPasses = async (run: () => Promise<void>) => {
      dev.startProfile();
      await run();
      return (await dev.stopProfile()).ops.find((o) => o.kind === 'matmul_pack')?.dispatches ?? 0;
    };
    try {
      // [A, B, transA, transB, blocks, packing passes of the forward product]: an f32 block is
      // copied when it spans whole stored rows of whole texels (K % 4 == 0, and the stored row
      // length a multiple of 4); M and N are never padded.
      for (const [sa, sb, ta, tb, blocks, passes] of [
        // Both copied, B over more than one texture row (144 x 128 texels) and its last row partial.
        [[32, 144], [144, 512], false, false, null, 0],
        // Both copied, A from offsets (blocks of 32 rows).
        [[64, 16], [16, 256], false, false, { M: 32, K: 16, N: 256 }, 0],
        // B copied from offsets (blocks of 12 rows along K), A's blocks along K are not whole rows.
        [[48, 20], [20, 256], false, false, { M: 32, K: 12, N: 256 }, 4],
        // Both transposed: computed as Cᵀ = B·A, both copied as stored.
        [[20, 64], [128, 20], true, true, null, 0],
        // Bᵀ wider than A: Cᵀ = B·Aᵀ, B copied, A transposed by its pass; narrower: B transposed.
        [[32, 20], [128, 20], false, true, null, 1],
        [[128, 20], [32, 20], false, true, null, 1],
        // M not a multiple of the 16-row tile, N not a multiple of a tile's columns: copied, the
        // tiles' lanes past M or N read beyond the block.
        [[40, 16], [16, 128], false, false, null, 0],
        [[32, 16], [16, 200], false, false, null, 0],
        [[32, 16], [16, 72], false, false, null, 0],
        [[32, 16], [16, 172], false, false, null, 0],
        // Rows of A or B that are not whole texels: packed. K not a multiple of 4 pads both.
        [[16, 37], [16, 70], true, false, null, 2],
        [[32, 18], [18, 128], false, false, null, 2],
      ] as Array<
        [number[], number[], boolean, boolean, { M: number; K: number; N: number } | null, number]
      >) {
        setTextureBlocksForTesting(blocks);
        const label = `texture matmul [${sa}]${ta ? 'T' : ''} [${sb}]${tb ? 'T' : ''}`;
        const [a, b] = [randn(sa, rng), randn(sb, rng)];
        const fwd = await packPasses(() =>
          checkOp(
            label,
            ([x, y]) => core.matmul(x, y, { transA: ta, transB: tb }),
            ([x, y]) => R.matmul(x, y, { transA: ta, transB: tb }),
            [a, b],
            { grad: false },
          ),
        );
        if (texturesHere) expect(fwd, `${label}: packing passes`).toBe(passes);
        await checkOp(
          label,
          ([x, y]) => core.matmul(x, y, { transA: ta, transB: tb }),
          ([x, y]) => R.matmul(x, y, { transA: ta, transB: tb }),
          [a, b],
          { refGrad: productRule(ta, tb) },
        );
      }
      // Copied operands give the same values to the bit as the buffer kernels.
      setTextureBlocksForTesting(null);
      await expectSameOnBothPaths([48, 36], [36, 256], false);
      // What the tiles read past M and N never reaches C: with NaN left in the scratch textures by a
      // larger product, a product with partial tiles along both is still exact.
      core.tidy(() => void core.matmul(core.full([64, 16], Number.NaN), core.full([16, 256], Number.NaN)));
      await checkOp(
        'texture matmul after NaN operands',
        ([x, y]) => core.matmul(x, y),
        ([x, y]) => R.matmul(x, y),
        [randn([37, 16], rng), randn([16, 70], rng)],
        { grad: false },
      );
    } finally {
      dev.matmulTextures = 'auto';
      setTextureBlocksForTesting(null);
    }
  });

  it('matmul through packed textures: a transposed B larger than A is packed as stored and the product stored transposed', async () => {
    const dev = core.getDevice();
    if (!(dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8)) return;
    dev.matmulTextures = 'always';
    const keysOf = async (f: () => core.Tensor) => {
      dev.startProfile();
      const t = f();
      await t.data();
      t.dispose();
      return (await dev.stopProfile()).trace.map((e) => String(e.args?.key ?? ''));
    };
    try {
      // [M, N, K]: wider B (and odd sizes, rows past a multiple of 4 stored one by one), then narrower.
      for (const [M, N, K, transposed] of [
        [24, 200, 36, true],
        [37, 141, 29, true],
        [200, 24, 36, false],
      ] as Array<[number, number, number, boolean]>) {
        const [a, b, c] = [randn([M, K], rng), randn([N, K], rng), randn([M, N], rng)];
        const [at, bt] = [a, b].map((x) => core.tensor(x.toFloat32(), x.shape));
        const keys = await keysOf(() => core.matmul(at, bt, { transB: true }));
        const label = `${M}x${N}x${K}`;
        expect(
          keys.some((k) => k.startsWith('mm_texture') && k.endsWith(':tc')),
          label,
        ).toBe(transposed);
        at.dispose();
        bt.dispose();
        // Accumulated onto C (addmm) with a scale, against float64.
        await checkOp(
          `addmm ${label} with Bᵀ`,
          ([x, y, z]) => core.addmm(x, y, z, { transB: true, alpha: 0.5 }),
          ([x, y, z]) => R.add(x, R.scale(R.matmul(y, z, { transB: true }), 0.5)),
          [c, a, b],
          { grad: false },
        );
      }
      // Transposed, the large operand goes to the scratch texture that untransposed products pack
      // their large B into: an input gradient dy·Wᵀ after the forward x·W needs no larger scratch.
      dev.releaseTextures();
      const [x, w, dy] = [
        [32, 512],
        [512, 64],
        [32, 64],
      ].map((s) => core.randn(s, { seed: s[0] }));
      const y = core.matmul(x, w);
      await y.data();
      const scratch = dev.memoryReport().live.other;
      const keys = await keysOf(() => core.matmul(dy, w, { transB: true }));
      expect(keys.some((k) => k.endsWith(':tc'))).toBe(true);
      expect(dev.memoryReport().live.other).toBe(scratch);
      for (const t of [x, w, dy, y]) t.dispose();
    } finally {
      dev.matmulTextures = 'auto';
    }
  });

  it('matmul with a bias: added by the pass of the texture product (any block, transposed or not), as an add pass would, with its gradient', async () => {
    const dev = core.getDevice();
    const texturesHere = dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8;
    dev.matmulTextures = 'always';
    // Blocks far below the defaults, so the bias lands in several N (and, transposed, M) blocks
    // and is added once, after the last K block.
    setTextureBlocksForTesting({ M: 32, K: 12, N: 136 });
    try {
      // [A, B, transB, with an addmm input]: narrow and wide tiles, Bᵀ wider than A (computed transposed).
      for (const [sa, sb, tb, withInput] of [
        [[37, 29], [29, 45], false, false],
        [[37, 29], [141, 29], true, false],
        [[70, 13], [65, 13], true, true],
        [[2, 19, 16], [16, 200], false, true],
      ] as Array<[number[], number[], boolean, boolean]>) {
        const N = tb ? sb[0] : sb[1];
        const label = `[${sa}]·[${sb}]${tb ? 'ᵀ' : ''} + bias${withInput ? ', onto C' : ''}`;
        const bias = randn([N], rng);
        const c = randn([...sa.slice(0, -1), N], rng);
        await checkOp(
          label,
          ([x, y, z, w]) =>
            withInput
              ? core.addmm(w, x, y, { transB: tb, bias: z })
              : core.matmul(x, y, { transB: tb, bias: z }),
          ([x, y, z, w]) => {
            const p = R.matmul(x, y, { transB: tb });
            return R.add(withInput ? R.add(w, p) : p, z);
          },
          withInput ? [randn(sa, rng), randn(sb, rng), bias, c] : [randn(sa, rng), randn(sb, rng), bias],
          {
            // The product rule, the bias's gradient summed over rows, the input's the upstream one.
            refGrad: ([x, y], g) => [
              ...productRule(false, tb)([x, y], g),
              sumTo(g, [N]),
              ...(withInput ? [g] : []),
            ],
          },
        );
        // The same values to the bit as the product followed by an add pass, and no add pass.
        const [a, b, bt, ct] = [randn(sa, rng), randn(sb, rng), bias, c].map((t) =>
          core.tensor(t.toFloat32(), t.shape),
        );
        dev.startProfile();
        const fused = withInput
          ? core.addmm(ct, a, b, { transB: tb, bias: bt })
          : core.matmul(a, b, { transB: tb, bias: bt });
        const got = (await fused.data()) as Float32Array;
        const kinds = (await dev.stopProfile()).ops.map((o) => o.kind);
        const plain = core.add(
          withInput ? core.addmm(ct, a, b, { transB: tb }) : core.matmul(a, b, { transB: tb }),
          bt,
        );
        expect(got, label).toEqual((await plain.data()) as Float32Array);
        if (texturesHere) expect(kinds, label).not.toContain('binary');
        for (const t of [a, b, bt, ct, fused, plain]) t.dispose();
      }
    } finally {
      dev.matmulTextures = 'auto';
      setTextureBlocksForTesting(null);
    }
  });

  it('texture matmul tiles: wide ones unless they would pad N much further than narrow or medium ones', async () => {
    const dev = core.getDevice();
    if (!(dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8)) return;
    dev.matmulTextures = 'always';
    try {
      for (const [N, K, tile] of [
        [64, 16, '8x1'],
        [172, 16, '8x1'],
        [200, 16, '16x2'],
        [256, 16, '16x2'],
        // Medium tiles where K is long enough for two texels per lane to pay.
        [64, 128, '8x2'],
        [172, 128, '8x2'],
        [200, 128, '16x2'],
        [32, 128, '8x1'],
      ] as Array<[number, number, string]>) {
        const a = core.tensor(randn([32, K], rng).toFloat32(), [32, K]);
        const b = core.tensor(randn([K, N], rng).toFloat32(), [K, N]);
        dev.startProfile();
        core.tidy(() => void core.matmul(a, b));
        const keys = (await dev.stopProfile()).trace.map((e) => e.args?.key).filter((k) => k !== undefined);
        expect(keys, `N = ${N}`).toContainEqual(expect.stringMatching(new RegExp(`^mm_texture:n:${tile}`)));
        a.dispose();
        b.dispose();
      }
    } finally {
      dev.matmulTextures = 'auto';
    }
  });

  it('weight gradients over many tokens (Aᵀ·B, long K, small output) take packed textures on CPU adapters', async () => {
    const dev = core.getDevice();
    const texturesHere =
      dev.info.isSoftware && dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8;
    // [K, M]ᵀ·[K, N]: a LoRA factor's gradient shape (37 x 9 over 1100 tokens) takes textures; a short
    // K, a vector-shaped output or an untransposed A keeps the buffer kernels.
    for (const [K, M, N, transA, textures] of [
      [1100, 37, 9, true, true],
      [1100, 9, 37, true, true],
      [300, 37, 9, true, false],
      [1100, 5, 37, true, false],
      [1100, 37, 9, false, false],
    ] as Array<[number, number, number, boolean, boolean]>) {
      const label = `${M} x ${N} x ${K}${transA ? ' (Aᵀ)' : ''}`;
      dev.startProfile();
      await checkOp(
        label,
        ([a, b]) => core.matmul(a, b, { transA }),
        ([a, b]) => R.matmul(a, b, { transA }),
        [randn(transA ? [K, M] : [M, K], rng), randn([K, N], rng)],
        { grad: false },
      );
      const keys = (await dev.stopProfile()).trace.map((e) => String(e.args?.key ?? ''));
      expect(
        keys.some((k) => k.startsWith('mm_texture')),
        label,
      ).toBe(texturesHere && textures);
    }
  });

  it('texture matmul: a block of columns of a wider A is copied into its texture row by row where the rows allow', async () => {
    const dev = core.getDevice();
    if (!(dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8)) return;
    dev.matmulTextures = 'always';
    try {
      // K blocks of 4,096 columns: 1,024 texels, 4 rows of A per texture row. A pitch of 8,208
      // floats (a multiple of 16) puts 4 rows a multiple of 256 bytes apart, so each block is 4
      // copies (3 for 3 rows); 8,204 does not (packed), and neither does a last block of 2,048
      // columns (8 rows per texture row: more copies than a pass is worth).
      for (const [M, pitch, aCol, K, wantPacks] of [
        [37, 8208, 16, 8192, 0],
        [3, 8208, 16, 8192, 0],
        [37, 8204, 8, 8192, 2],
        [37, 8208, 16, 6144, 1],
      ]) {
        const N = 40;
        const a = randn([M, pitch], rng);
        const b = randn([K, N], rng);
        const want = R.matmul(R.slice(a, [0, aCol], [M, aCol + K]), b).data;
        const [at, bt] = [a, b].map((t) => core.tensor(t.toFloat32(), t.shape));
        const c = core.Tensor.empty([M, N], 'f32');
        dev.startProfile();
        runTextureMatmul(at, bt, c, denseDispatch(M, N, K), {
          view: { aCol, aPitch: pitch, cCol: 0, cPitch: N, accumulate: false },
        });
        const got = (await c.data()) as Float32Array;
        const packs = (await dev.stopProfile()).ops.find((o) => o.kind === 'matmul_pack')?.dispatches ?? 0;
        const label = `[${M}, ${pitch}] from column ${aCol}, K ${K}`;
        // Against float64 (sums of 8,192 terms in f32 order), and to the bit against the product of
        // A's columns sliced out first (a dense A, copied whole): the textures hold the same values.
        const err = Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]) / (1 + Math.abs(want[i]))));
        expect(err, label).toBeLessThan(2e-3);
        const dense = core.slice(at, [0, aCol], [M, aCol + K]);
        const viaDense = core.matmul(dense, bt);
        expect(got, label).toEqual((await viaDense.data()) as Float32Array);
        // B's rows (40 floats) are whole texels, copied as they are: the packing passes are A's.
        expect(packs, label).toBe(wantPacks);
        for (const t of [dense, viaDense]) t.dispose();
        for (const t of [at, bt, c]) t.dispose();
      }
    } finally {
      dev.matmulTextures = 'auto';
    }
  });

  it('matmulRowBlocks: x·Wᵀ over row blocks, in place on the texture path, concatenated elsewhere', async () => {
    const dev = core.getDevice();
    const texturesHere = dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8;
    const x = randn([2, 9, 20], rng);
    // 108 columns in all: the first block is stored as vec4s up to its partial last texel.
    const blocks = [randn([37, 20], rng), randn([64, 20], rng), randn([7, 20], rng)];
    const forward: Float32Array[] = [];
    try {
      for (const mode of ['always', 'never'] as const) {
        dev.matmulTextures = mode;
        dev.startProfile();
        await checkOp(
          `matmulRowBlocks (${mode})`,
          ([a, ...ws]) => core.matmulRowBlocks(a, ws),
          ([a, ...ws]) => R.matmul(a, R.concat(ws, 0), { transB: true }),
          [x, ...blocks],
        );
        const kinds = (await dev.stopProfile()).ops.map((o) => o.kind);
        // In place: neither the logits nor their gradient is concatenated or sliced.
        if (mode === 'always' && texturesHere) expect(kinds).not.toContain('copy_block');
        const xt = core.tensor(x.toFloat32(), x.shape);
        const wt = blocks.map((w) => core.tensor(w.toFloat32(), w.shape));
        const y = core.matmulRowBlocks(xt, wt);
        forward.push((await y.data()) as Float32Array);
        for (const t of [y, xt, ...wt]) t.dispose();
      }
      // Each block's columns are one product either way: the same values to the bit.
      expect(forward[0]).toEqual(forward[1]);
    } finally {
      dev.matmulTextures = 'auto';
    }
  });

  it('reshape, permute, transpose, concat, slice', async () => {
    const x = randn([3, 4, 5], rng);
    await checkOp(
      'reshape',
      ([a]) => core.reshape(a, [4, -1]),
      ([a]) => R.reshape(a, [4, -1]),
      [x],
    );
    await checkOp(
      'permute',
      ([a]) => core.permute(a, [2, 0, 1]),
      ([a]) => R.permute(a, [2, 0, 1]),
      [x],
    );
    await checkOp(
      'transpose',
      ([a]) => core.transpose(a, 0, 2),
      ([a]) => R.permute(a, [2, 1, 0]),
      [x],
    );
    const y = randn([3, 2, 5], rng);
    await checkOp(
      'concat axis 1',
      ([a, b]) => core.concat([a, b], 1),
      ([a, b]) => R.concat([a, b], 1),
      [x, y],
    );
    await checkOp(
      'concat axis -1',
      ([a, b]) => core.concat([a, b], -1),
      ([a, b]) => R.concat([a, b], -1),
      [randn([2, 3], rng), randn([2, 7], rng)],
    );
    await checkOp(
      'slice',
      ([a]) => core.slice(a, [1, 0, 1], [3, -1, 5]),
      ([a]) => R.slice(a, [1, 0, 1], [3, -1, 5]),
      [x],
    );
  });

  it('an input read by several products gets their summed gradient from the products themselves', async () => {
    const x = randn([37, 24], rng);
    const [w1, w2, w3] = [randn([20, 24], rng, 0.3), randn([24, 20], rng, 0.3), randn([24, 20], rng, 0.3)];
    // x·w1ᵀ, x·w2 accumulated onto it (addmm), and x·w3 beside them: three uses of x in one backward.
    const gpu = ([a, b, c, d]: core.Tensor[]) =>
      core.add(core.tanh(core.addmm(core.matmul(a, b, { transB: true }), a, c)), core.matmul(a, d));
    const ref = ([a, b, c, d]: F64[]) =>
      R.add(R.tanh(R.add(R.matmul(a, b, { transB: true }), R.matmul(a, c))), R.matmul(a, d));
    await checkOp('x read by three products', gpu, ref, [x, w1, w2, w3]);
    // x + x·w: the sum's gradient reaches x and the product as views of one buffer, so the product
    // must not accumulate into x's prior in place (it reads the same buffer as its upstream gradient).
    await checkOp(
      'x + x·w',
      ([a, b]) => core.add(a, core.matmul(a, b)),
      ([a, b]) => R.add(a, R.matmul(a, b)),
      [randn([13, 12], rng), randn([12, 12], rng, 0.3)],
    );
    // x twice in one product: its prior is folded into one of the two results only.
    await checkOp(
      'x·xᵀ then ·x',
      ([a]) => core.matmul(core.tanh(core.matmul(a, a, { transB: true })), a),
      ([a]) => R.matmul(R.tanh(R.matmul(a, a, { transB: true })), a),
      [randn([9, 6], rng, 0.5)],
    );
    // No add pass sums x's gradients: each product after the first accumulates onto them, in place
    // (the one buffer copy is the read-back).
    const report = await backwardProfile(gpu, [x, w1, w2, w3]);
    const keys = traceKeys(report);
    expect(keys.filter((k) => k.startsWith('mm_')).length).toBeGreaterThanOrEqual(3);
    expect(keys.filter((k) => k.startsWith('binary:add'))).toEqual([]);
    expect(report.transfers.find((t) => t.kind === 'copy')?.count).toBe(1);
  });

  it('a weight shared by several products gets their summed gradient from the products themselves', async () => {
    // w [6, 24] (a LoRA A matrix shared across layers) read by four products: x·wᵀ for two batched
    // inputs and a matrix input (broadcast onto them), then the sum of their tanh times w.
    const inputs = [
      randn([6, 24], rng, 0.3),
      randn([2, 19, 24], rng),
      randn([2, 19, 24], rng),
      randn([19, 24], rng),
    ];
    const gpu = ([w, a, b, c]: core.Tensor[]) => {
      const h = (x: core.Tensor) => core.tanh(core.matmul(x, w, { transB: true }));
      return core.matmul(core.add(core.add(h(a), h(b)), h(c)), w);
    };
    const ref = ([w, a, b, c]: F64[]) => {
      const h = (x: F64) => R.tanh(R.matmul(x, w, { transB: true }));
      return R.matmul(R.add(R.add(h(a), h(b)), h(c)), w);
    };
    await checkOp('w read by four products', gpu, ref, inputs);
    // Only w requiring grad: no add pass sums its gradients, each product after the first accumulates,
    // and into the gradient's own buffer (no copy of it): the one buffer copy is the read-back.
    const report = await backwardProfile(gpu, inputs);
    expect(traceKeys(report).filter((k) => k.startsWith('binary:add'))).toEqual([]);
    expect(report.transfers.find((t) => t.kind === 'copy')?.count).toBe(1);
  });

  it('row kernels taking several rows per workgroup give the values and gradients of one row per workgroup, bit for bit', async () => {
    const dev = core.getDevice();
    // 2053 rows: up to 8 per workgroup on a CPU adapter, the last group partial; 250-row slices: one each.
    const [rows, n, slice] = [2053, 24, 250];
    const x = randn([rows, n], rng);
    const gamma = randn([n], rng, 0.5, 1);
    const beta = randn([n], rng, 0.1);
    const targets = Int32Array.from({ length: rows }, (_, i) => (i * 7) % n);
    const up = randn([rows, n], rng);
    const [g, b] = [gamma, beta].map((t) => core.tensor(t.toFloat32(), [n]));
    const ops: Array<[string, (a: core.Tensor, r0: number, r1: number) => core.Tensor]> = [
      ['layerNorm', (a) => core.layerNorm(a, g, b, 1e-5)],
      ['rmsNorm', (a) => core.rmsNorm(a, g, 1e-6)],
      ['softmax', (a) => core.softmax(a)],
      ['logSoftmax', (a) => core.logSoftmax(a)],
      [
        'crossEntropy',
        (a, r0, r1) => {
          const t = core.tensor(targets.subarray(r0, r1), [r1 - r0], 'i32');
          return core.reshape(core.crossEntropy(a, t, { reduction: 'none' }), [r1 - r0, 1]);
        },
      ],
    ];
    // The op on rows [r0, r1) of x: its values, x's gradient for upstream `up` (its first columns
    // when the output is narrower) and the kernels' keys.
    const run = async (
      f: (a: core.Tensor, r0: number, r1: number) => core.Tensor,
      r0: number,
      r1: number,
    ) => {
      const a = core.tensor(x.toFloat32().subarray(r0 * n, r1 * n), [r1 - r0, n]);
      a.requiresGrad = true;
      dev.startProfile();
      const y = f(a, r0, r1);
      const cols = y.shape[1];
      const upRows = up.toFloat32();
      const u = core.tensor(
        Float32Array.from({ length: y.size }, (_, i) => upRows[(r0 + Math.floor(i / cols)) * n + (i % cols)]),
        y.shape,
      );
      core.tidy(() => core.backward(core.sum(core.mul(y, u))));
      const values = (await y.data()) as Float32Array;
      const dx = a.grad as core.Tensor;
      const grad = (await dx.data()) as Float32Array;
      const keys = (await dev.stopProfile()).trace.map((e) => String(e.args?.key ?? ''));
      for (const t of [a, y, u, dx]) t.dispose();
      return { values, grad, keys };
    };
    for (const [name, f] of ops) {
      const whole = await run(f, 0, rows);
      const parts: Array<{ values: Float32Array; grad: Float32Array; keys: string[] }> = [];
      for (let r0 = 0; r0 < rows; r0 += slice) parts.push(await run(f, r0, Math.min(rows, r0 + slice)));
      const cat = (k: 'values' | 'grad') => Float32Array.from(parts.flatMap((p) => [...p[k]]));
      expect(whole.values, `${name} values`).toEqual(cat('values'));
      expect(whole.grad, `${name} gradient`).toEqual(cat('grad'));
      if (dev.info.isSoftware && (dev.info.subgroupMinSize ?? 0) >= 8) {
        expect(
          whole.keys.some((k) => /:r8(:|$)/.test(k)),
          `${name}: 8 rows per workgroup`,
        ).toBe(true);
        expect(
          parts[0].keys.some((k) => /:r8(:|$)/.test(k)),
          `${name}: one row per workgroup`,
        ).toBe(false);
      }
    }
  });

  it("a residual stream gets the norm's input gradient added by the norm's backward pass", async () => {
    const x = randn([11, 12], rng);
    const gamma = randn([12], rng, 0.5, 1);
    const beta = randn([12], rng, 0.1);
    const w = randn([12, 12], rng, 0.3);
    for (const layer of [true, false]) {
      // x + norm(x)·w: x's gradient is the residual's plus the norm's.
      const gpu = ([a, m, g, b]: core.Tensor[]) =>
        core.add(a, core.matmul(layer ? core.layerNorm(a, g, b, 1e-5) : core.rmsNorm(a, g, 1e-6), m));
      const ref = ([a, m, g, b]: F64[]) =>
        R.add(a, R.matmul(layer ? R.layerNorm(a, g, b, 1e-5) : R.rmsNorm(a, g, 1e-6), m));
      const inputs = layer ? [x, w, gamma, beta] : [x, w, gamma];
      await checkOp(`x + ${layer ? 'layer' : 'RMS'} norm(x)·w`, gpu, ref, inputs, { bwdTol: 2e-4 });
      const keys = await backwardKeys(gpu, inputs);
      expect(keys).toContainEqual(expect.stringMatching(/^norm_bwd:.*:acc$/));
      expect(keys.filter((k) => k.startsWith('binary:add'))).toEqual([]);
    }
  });

  it('composite: a shared tensor used many times gets the sum of its gradients', async () => {
    const x = randn([4, 6], rng);
    const w = randn([6, 6], rng, 0.3);
    await checkOp(
      'x·w·w·w then tanh',
      ([a, b]) => core.tanh(core.matmul(core.matmul(core.matmul(a, b), b), b)),
      ([a, b]) => R.tanh(R.matmul(R.matmul(R.matmul(a, b), b), b)),
      [x, w],
    );
  });
});

/**
 * The row kernels again with subgroups turned off: the shared-memory combine that adapters without
 * subgroups run (the device caches these pipelines apart).
 */
describe('conformance: row kernels without subgroups', () => {
  const gpu = useGpu();
  const rng = new Rng(4321);
  const portable = (check: (r: Rng) => Promise<void>) => async () => {
    gpu.device().subgroupsDisabledForTesting = true;
    try {
      await check(rng);
    } finally {
      gpu.device().subgroupsDisabledForTesting = false;
    }
  };
  it('sum / mean / max over each axis', portable(reductionChecks));
  it('softmax and logSoftmax over the last axis', portable(softmaxChecks));
  it('layerNorm and rmsNorm', portable(normChecks));
});
