import { afterEach, describe, expect, it } from 'vitest';
import { backward, linearCrossEntropy, noGrad, Rng, randn, scale, type Tensor, tensor } from '../src/node.js';
import { useGpu } from './gpu.js';

/**
 * float64 reference: logits = x·Wᵀ (W the blocks stacked), per-row loss logsumexp − logit[target],
 * and the textbook gradients dlogits = (softmax − onehot)·f, dx = dlogits·W, dW = dlogitsᵀ·x, with
 * f = 1/kept ('mean') or 1 ('sum'), ignored rows contributing nothing.
 */
function reference(
  x: Float32Array,
  W: Float32Array,
  N: number,
  C: number,
  V: number,
  t: Int32Array,
  mean: boolean,
) {
  const kept = Array.from(t).filter((v) => v !== -100).length;
  const f = mean ? 1 / kept : 1;
  let loss = 0;
  const dx = new Float64Array(N * C);
  const dW = new Float64Array(V * C);
  for (let n = 0; n < N; n++) {
    if (t[n] === -100) continue;
    const z = Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let c = 0; c < C; c++) s += x[n * C + c] * W[v * C + c];
      return s;
    });
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, zv) => a + Math.exp(zv - m), 0));
    loss += lse - z[t[n]];
    for (let v = 0; v < V; v++) {
      const d = (Math.exp(z[v] - lse) - (v === t[n] ? 1 : 0)) * f;
      for (let c = 0; c < C; c++) {
        dx[n * C + c] += d * W[v * C + c];
        dW[v * C + c] += d * x[n * C + c];
      }
    }
  }
  return { loss: loss * f, dx, dW };
}

const maxRel = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let scaleOf = 0;
  for (let i = 0; i < want.length; i++) scaleOf = Math.max(scaleOf, Math.abs(want[i]));
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err / Math.max(scaleOf, 1e-30);
};

describe('linearCrossEntropy', () => {
  const gpu = useGpu();
  afterEach(() => {
    gpu.device().matmulTextures = 'auto';
  });

  // Odd sizes: V = 45 (rows of logits padded to 48), blocks of 17 and 28 rows, 37 rows of x.
  const [N, C, blocks] = [37, 20, [17, 28]];
  const V = blocks[0] + blocks[1];
  const rng = new Rng(7);
  const targets = new Int32Array(N).map((_, i) => (i % 5 === 3 ? -100 : rng.int(V)));

  async function run(opts: {
    textures: 'always' | 'never';
    mean: boolean;
    chunkBytes?: number;
    upstream?: number;
    blocks?: number[];
  }) {
    gpu.device().matmulTextures = opts.textures;
    const r = new Rng(3);
    const x = randn([N, C], { rng: r });
    const sizes = opts.blocks ?? blocks;
    const V = sizes[0] + sizes[1];
    const ws = sizes.map((rows) => randn([rows, C], { rng: r, std: 0.5 }));
    x.requiresGrad = true;
    ws[1].requiresGrad = true; // block 0 frozen, as a frozen LM head's
    const loss = linearCrossEntropy(x, ws, targets, {
      reduction: opts.mean ? 'mean' : 'sum',
      chunkBytes: opts.chunkBytes,
    });
    const up = opts.upstream ?? 1;
    backward(up === 1 ? loss : scale(loss, up));
    const W = new Float32Array(V * C);
    W.set((await ws[0].data()) as Float32Array, 0);
    W.set((await ws[1].data()) as Float32Array, sizes[0] * C);
    const want = reference((await x.data()) as Float32Array, W, N, C, V, targets, opts.mean);
    const got = {
      loss: ((await loss.data()) as Float32Array)[0],
      dx: (await (x.grad as Tensor).data()) as Float32Array,
      dW1: (await (ws[1].grad as Tensor).data()) as Float32Array,
    };
    expect(ws[0].grad).toBeFalsy();
    expect(Math.abs(got.loss - want.loss) / Math.abs(want.loss)).toBeLessThan(1e-5);
    expect(
      maxRel(
        got.dx,
        want.dx.map((v) => v * up),
      ),
    ).toBeLessThan(1e-5);
    expect(
      maxRel(
        got.dW1,
        want.dW.subarray(sizes[0] * C).map((v) => v * up),
      ),
    ).toBeLessThan(1e-5);
    for (const t of [x, ...ws, loss]) t.dispose();
  }

  it('matches float64 loss and gradients on the fused path, rows in three chunks', async () => {
    await run({ textures: 'always', mean: true, chunkBytes: 16 * 48 * 4 });
  });

  it('matches float64 with a summed loss, one chunk, and an upstream gradient of 2.5', async () => {
    await run({ textures: 'always', mean: false, upstream: 2.5 });
  });

  it('matches float64 with a vocabulary of whole vec4s (no partial last vec4 in a row)', async () => {
    await run({ textures: 'always', mean: true, blocks: [20, 28], chunkBytes: 16 * 48 * 4 });
  });

  it('matches float64 where the texture matmul does not run (logits through crossEntropy)', async () => {
    await run({ textures: 'never', mean: true, chunkBytes: 16 * 48 * 4 });
  });

  it.each(['always', 'never'] as const)(
    'keeps no logits between forward and backward (texture matmul: %s)',
    (textures) => {
      const dev = gpu.device();
      dev.matmulTextures = textures;
      const r = new Rng(5);
      const [n, c, v] = [64, 16, 999];
      const x = randn([n, c], { rng: r });
      const w = randn([v, c], { rng: r });
      x.requiresGrad = true;
      const before = dev.memoryReport().live.activations;
      const loss = linearCrossEntropy(x, [w], new Int32Array(n).fill(5));
      const held = dev.memoryReport().live.activations - before;
      // The stored input gradient (n·c floats) and the loss, far below the logits' n·v floats.
      expect(held).toBeLessThan((n * v * 4) / 8);
      expect(held).toBeGreaterThanOrEqual(n * c * 4);
      for (const t of [x, w, loss]) t.dispose();
    },
  );

  it('gives NaN for a target outside the vocabulary and for a mean over no targets, as crossEntropy', async () => {
    gpu.device().matmulTextures = 'always';
    const r = new Rng(9);
    const x = randn([20, 16], { rng: r });
    const w = randn([33, 16], { rng: r });
    const bad = new Int32Array(20).fill(1);
    bad[4] = 33;
    const outside = noGrad(() => linearCrossEntropy(x, [w], bad));
    expect(((await outside.data()) as Float32Array)[0]).toBeNaN();
    const none = noGrad(() => linearCrossEntropy(x, [w], new Int32Array(20).fill(-100)));
    expect(((await none.data()) as Float32Array)[0]).toBeNaN();
    for (const t of [x, w, outside, none]) t.dispose();
  });

  it('rejects mismatched shapes and target counts', () => {
    const x = tensor(new Float32Array(12), [3, 4]);
    const w = tensor(new Float32Array(10), [2, 5]);
    expect(() => linearCrossEntropy(x, [w], new Int32Array(3))).toThrow(/does not match/);
    expect(() => linearCrossEntropy(x, [], new Int32Array(3))).toThrow(/no weight blocks/);
    expect(() => linearCrossEntropy(x, [tensor(new Float32Array(8), [2, 4])], new Int32Array(2))).toThrow(
      /2 targets for 3 rows/,
    );
    x.dispose();
    w.dispose();
  });
});
