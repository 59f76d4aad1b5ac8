import { afterEach, describe, expect, it } from 'vitest';
import { setTextureBlocksForTesting, textureMatmulAvailable } from '../src/kernels/matmul/run-texture.js';
import {
  assignTensor,
  backward,
  cast,
  concat,
  DTypeError,
  decodeBF16,
  decodeF16,
  Embedding,
  embedding,
  encodeBF16,
  f32ToBf16Bits,
  f32ToF16Bits,
  full,
  type HalfDType,
  Linear,
  matmul,
  mul,
  Parameter,
  permute,
  Rng,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../src/node.js';
import { useGpu } from './gpu.js';
import { expectReadAsStored } from './matmul-check.js';

const HALVES: HalfDType[] = ['bf16', 'f16'];

/** The stored bytes of a tensor, without any decoding. */
async function rawBits(t: Tensor): Promise<ArrayBuffer> {
  return t.device.read(t.buffer, 0, t.bytes);
}

const allPatterns = () => Uint16Array.from({ length: 65536 }, (_, i) => i);
const isNaN16 = (h: HalfDType, b: number) =>
  h === 'bf16' ? (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0 : (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;

function randomValues(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  // Mixed magnitudes: normal values, tiny ones (subnormal in f16), huge ones (overflow in f16).
  return Float32Array.from({ length: n }, (_, i) => r.normal() * 10 ** ((i % 13) - 8));
}

/**
 * matmul(x, w, { transB }), or `product` when given (the same product computed otherwise: a
 * gradient), against a float64 product of the stored (rounded) values: x [.., M, K], w [.., K, N]
 * or [.., N, K], batch dims matching. Fails with the first element off by more than 1e-5 of the
 * sum of its terms' magnitudes.
 */
async function expectProductMatchesFloat64(
  x: Tensor,
  w: Tensor,
  transB: boolean,
  label: string,
  product?: Tensor,
): Promise<void> {
  const [M, K] = x.shape.slice(-2);
  const N = transB ? w.shape[w.rank - 2] : w.shape[w.rank - 1];
  const batch = x.size / (M * K);
  const y = product ?? matmul(x, w, { transB });
  const wv = (await w.data()) as Float32Array;
  const xv = (await x.data()) as Float32Array;
  const got = (await y.data()) as Float32Array;
  if (!product) y.dispose();
  for (let b = 0; b < batch; b++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let ref = 0;
        let mag = 0;
        for (let k = 0; k < K; k++) {
          const wk = wv[b * N * K + (transB ? n * K + k : k * N + n)];
          ref += xv[(b * M + m) * K + k] * wk;
          mag += Math.abs(xv[(b * M + m) * K + k] * wk);
        }
        const v = got[(b * M + m) * N + n];
        if (!(Math.abs(v - ref) <= 1e-5 * mag + 1e-30))
          expect.fail(`${label}: [${b}, ${m}, ${n}] = ${v}, float64 ${ref}`);
      }
}

describe('half-precision tensors', () => {
  const gpu = useGpu();
  afterEach(() => gpu.device().setBindingLimitForTesting(null));

  for (const h of HALVES) {
    it(`${h}: all 65536 bit patterns survive half -> f32 -> half on the GPU (NaN stays NaN)`, async () => {
      const bits = allPatterns();
      const t = tensor(bits, [bits.length], h);
      const f = cast(t, 'f32');
      const back = cast(f, h);
      const f32Bits = new Uint32Array(await rawBits(f));
      const expected = h === 'bf16' ? decodeBF16(bits) : decodeF16(bits);
      const expectedBits = new Uint32Array(expected.buffer);
      const got = new Uint16Array(await rawBits(back));
      for (let i = 0; i < bits.length; i++) {
        if (isNaN16(h, i)) {
          expect(Number.isNaN(new Float32Array(f32Bits.buffer, i * 4, 1)[0])).toBe(true);
          expect(isNaN16(h, got[i]), `NaN ${i.toString(16)}`).toBe(true);
        } else {
          // Exact decode (bf16: the bits shifted up; f16: as the CPU table, subnormals and ±Inf included).
          if (f32Bits[i] !== expectedBits[i])
            expect(f32Bits[i], `decode ${i.toString(16)}`).toBe(expectedBits[i]);
          if (got[i] !== i) expect(got[i], `round trip ${i.toString(16)}`).toBe(i);
        }
      }
      for (const x of [t, f, back]) x.dispose();
    });

    it(`${h}: f32 -> ${h} rounds to nearest even exactly as the CPU encoder`, async () => {
      const r = new Rng(7);
      // Random bit patterns cover every exponent (NaN, Inf, subnormals, overflow); then exact ties.
      const words = Uint32Array.from({ length: 200_000 }, () => r.nextU32());
      const ties = [
        0x3f808000, 0x3f818000, 0x3f800fff, 0x477fefff, 0x477ff000, 0x33000000, 0x33000001, 0x387fe000,
      ];
      const all = Uint32Array.from([...words, ...ties, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000000]);
      const vals = new Float32Array(all.buffer);
      const t = tensor(vals, [vals.length]);
      const got = new Uint16Array(await rawBits(cast(t, h)));
      const enc = h === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
      let mismatches = 0;
      for (let i = 0; i < vals.length; i++) {
        const nan = Number.isNaN(vals[i]);
        if (nan ? !isNaN16(h, got[i]) : got[i] !== enc(vals[i])) mismatches++;
      }
      expect(mismatches).toBe(0);
    });

    // 5037: odd, scalar kernels and a last word holding one element; 5120: vec4 kernels, 5 windows.
    it.each([5037, 5120])(
      `${h}: %i elements in windows (upload, fill, casts, read back, accounting)`,
      async (n) => {
        const vals = randomValues(n, 3);
        const whole = tidy(() => {
          const t = tensor(vals, [n], h);
          return { up: cast(t, 'f32'), down: cast(tensor(vals), h) };
        });
        const wholeUp = await whole.up.data();
        const wholeDown = new Uint16Array(await rawBits(whole.down));
        gpu.device().setBindingLimitForTesting(4096);
        const before = gpu.device().memoryReport().live.total;
        const t = tensor(vals, [n], h);
        expect(gpu.device().memoryReport().live.total - before).toBe(2 * n);
        expect(t.bytes).toBe(2 * n);
        expect(await cast(t, 'f32').data()).toEqual(wholeUp);
        expect(await t.data()).toEqual(wholeUp);
        expect(new Uint16Array(await rawBits(cast(tensor(vals), h)))).toEqual(wholeDown);
        const filled = await full([n], -1.5, h).data();
        expect(filled.every((v) => v === -1.5)).toBe(true);
      },
    );
  }

  it('bf16 <-> f16 and half <-> i32 convert through f32', async () => {
    const vals = Float32Array.from([0.5, -2, 3, 65504, 1e-7, 70000]);
    const b = tensor(vals, [vals.length], 'bf16');
    const f = cast(b, 'f16');
    expect(f.dtype).toBe('f16');
    expect(await f.data()).toEqual(decodeF16(Uint16Array.from(await b.data(), (v) => f32ToF16Bits(v))));
    expect(Array.from(await cast(b, 'i32').data()).slice(0, 3)).toEqual([0, -2, 3]);
    expect(await cast(tensor(Int32Array.from([1, -7, 300])), 'bf16').data()).toEqual(
      Float32Array.from([1, -7, 300]),
    );
  });

  for (const h of HALVES) {
    it(`${h} matmul operand: same result and input gradient as its f32 values, no f32 copy`, async () => {
      const rng = new Rng(11);
      const wVals = Float32Array.from({ length: 24 * 10 }, () => rng.normal());
      const xVals = Float32Array.from({ length: 3 * 5 * 10 }, () => rng.normal());
      const w = tensor(wVals, [24, 10], h);
      const w32 = cast(w, 'f32');
      const run = async (weight: Tensor) => {
        const x = tensor(xVals, [3, 5, 10]);
        x.requiresGrad = true;
        const y = matmul(x, weight, { transB: true });
        backward(tidy(() => sum(y)));
        const out = { y: await y.data(), gx: await (x.grad as Tensor).data() };
        x.dispose();
        y.dispose();
        return out;
      };
      const ref = await run(w32);
      const got = await run(w);
      expect(got.y).toEqual(ref.y);
      expect(got.gx).toEqual(ref.gx);
      // The kernel reads w as stored: y is the only allocation.
      const x = tensor(xVals, [15, 10]);
      const before = gpu.device().memoryReport().live.total;
      gpu.device().memory.resetPeak();
      const y = matmul(x, w, { transB: true });
      const rep = gpu.device().memoryReport();
      expect(rep.peak.total - before).toBe(y.bytes);
      // Not transposed, with a batched a.
      const wT = tensor(wVals.subarray(0, 10 * 12), [10, 12], h);
      const a = tensor(xVals, [3, 5, 10]);
      expect(await matmul(a, wT).data()).toEqual(await matmul(a, cast(wT, 'f32')).data());
      w.requiresGrad = true;
      expect(() => matmul(a, w, { transB: true })).toThrow(DTypeError);
    });

    it(`${h} weight read in place by every matmul kernel family: odd sizes against float64`, async () => {
      const dev = gpu.device();
      const rng = new Rng(29);
      // [M, N, K, transB]: vec4 and per-element reads (odd K and N), a K % 4 tail, lanes along M
      // (skinny N), split-K (few rows, long K), a batched weight, decode-shaped M = 1.
      const cases: Array<[number, number, number, boolean, number]> = [
        [5, 24, 16, true, 1],
        [7, 13, 11, true, 1],
        [6, 9, 13, false, 1],
        [3, 40, 22, false, 1],
        [70, 6, 12, true, 1],
        [2, 8, 1030, true, 1],
        [1, 37, 64, true, 1],
        [4, 12, 8, true, 3],
      ];
      for (const textures of ['never', 'always'] as const) {
        dev.matmulTextures = textures;
        for (const [M, N, K, transB, batch] of cases) {
          const wShape = batch > 1 ? [batch, ...(transB ? [N, K] : [K, N])] : transB ? [N, K] : [K, N];
          const w = tensor(
            Float32Array.from({ length: batch * N * K }, () => rng.normal()),
            wShape,
            h,
          );
          const x = tensor(
            Float32Array.from({ length: batch * M * K }, () => rng.normal()),
            batch > 1 ? [batch, M, K] : [M, K],
          );
          await expectProductMatchesFloat64(
            x,
            w,
            transB,
            `${textures} M=${M} N=${N} K=${K}${transB ? ' Bt' : ''} batch ${batch}`,
          );
          for (const t of [w, x]) t.dispose();
        }
      }
      dev.matmulTextures = 'auto';
    });

    it(`${h} weight copied as stored into the texture matmul: blocks along M and K, against float64`, async () => {
      const dev = gpu.device();
      const texturesHere = textureMatmulAvailable();
      const rng = new Rng(31);
      const rand = (shape: number[], dtype: 'f32' | HalfDType = 'f32') =>
        tensor(
          Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
          shape,
          dtype,
        );
      dev.matmulTextures = 'always';
      // Blocks far below the defaults: the transposed products' A (the weight) splits along M, and
      // B's K blocks start mid-weight. A weight read as A keeps K whole.
      setTextureBlocksForTesting({ M: 32, K: 12, N: 136 });
      dev.startProfile();
      try {
        // [M, N, K, transB]: x·Wᵀ computed transposed (W as A; 200 rows in two blocks, K 24 past the
        // K block); dY·W (W as B, 128 wide, K in two blocks and in one; 64 wide, on medium tiles);
        // then a gradient.
        for (const [M, N, K, transB] of [
          [5, 200, 24, true],
          [3, 16, 8, true],
          [20, 128, 24, false],
          [17, 128, 12, false],
          [9, 64, 136, false],
        ] as Array<[number, number, number, boolean]>) {
          const w = rand(transB ? [N, K] : [K, N], h);
          const x = rand([M, K]);
          await expectProductMatchesFloat64(x, w, transB, `M=${M} N=${N} K=${K}${transB ? ' Bt' : ''}`);
          for (const t of [w, x]) t.dispose();
        }
        // x's gradient through x·Wᵀ (W as A, transposed) is g·W (W as B, as stored): for
        // loss = sum(y ⊙ g), against float64.
        const w = rand([40, 128], h);
        const x = rand([5, 128]);
        x.requiresGrad = true;
        const g = rand([5, 40]);
        backward(tidy(() => sum(mul(matmul(x, w, { transB: true }), g))));
        await expectProductMatchesFloat64(g, w, false, 'x.grad of x·Wᵀ', x.grad as Tensor);
        for (const t of [w, x, g, x.grad as Tensor]) t.dispose();
      } finally {
        const keys = (await dev.stopProfile()).trace.map((e) => String(e.args?.key ?? ''));
        dev.matmulTextures = 'auto';
        setTextureBlocksForTesting(null);
        if (texturesHere) {
          expectReadAsStored(keys, h);
        }
      }
    });

    it(`${h} embedding table is gathered from directly (odd width, out-of-range ids NaN)`, async () => {
      const V = 9;
      const D = 7;
      const vals = randomValues(V * D, 5);
      const table = tensor(vals, [V, D], h);
      const ids = tensor(Int32Array.from([8, 0, 3, 3, 9, -1, 5]), [7]);
      const got = await embedding(table, ids).data();
      const ref = await embedding(cast(table, 'f32'), ids).data();
      for (let i = 0; i < ref.length; i++) {
        if (Number.isNaN(ref[i])) expect(got[i]).toBeNaN();
        else expect(got[i]).toBe(ref[i]);
      }
      expect(got.subarray(5 * D, 6 * D).every(Number.isNaN)).toBe(true);
    });
  }

  it('nn.Linear and nn.Embedding keep a frozen bf16 weight and match f32 layers holding its values', async () => {
    const lin = new Linear(6, 4, { rng: 1, dtype: 'bf16' });
    expect(lin.weight.value.dtype).toBe('bf16');
    expect(lin.weight.trainable).toBe(false);
    expect(lin.bias?.value.dtype).toBe('f32');
    const ref = new Linear(6, 4, { rng: 2 });
    assignTensor(ref.weight.value, cast(lin.weight.value, 'f32'));
    assignTensor((ref.bias as Parameter).value, (lin.bias as Parameter).value);
    const x = tensor(randomValues(2 * 6, 9), [2, 6]);
    expect(await lin.forward(x).data()).toEqual(await ref.forward(x).data());
    expect(gpu.device().memoryReport().live.weights).toBeGreaterThan(0);

    const emb = new Embedding(5, 3, { rng: 1, dtype: 'f16' });
    expect(emb.weight.value.dtype).toBe('f16');
    const ids = tensor(Int32Array.from([4, 1]), [2]);
    expect(await emb.forward(ids).data()).toEqual(await embedding(cast(emb.weight.value, 'f32'), ids).data());
  });

  it('a half-precision parameter cannot be made trainable', () => {
    const lin = new Linear(4, 4, { dtype: 'bf16' });
    expect(() => {
      lin.weight.trainable = true;
    }).toThrow(/bf16, which can only be frozen.*f32/);
    expect(lin.weight.trainable).toBe(false);
    expect(() => lin.unfreeze()).toThrow(DTypeError);
    expect(() => new Linear(4, 4, { dtype: 'f16', trainable: true })).toThrow(DTypeError);
    expect(() => new Parameter(tensor([1, 2], [2], 'bf16'))).toThrow(DTypeError);
    // The way out: an f32 value, then training.
    lin.weight.value = cast(lin.weight.value, 'f32');
    lin.weight.trainable = true;
    expect(lin.weight.value.requiresGrad).toBe(true);
  });

  it('host values assigned to a bf16 tensor are rounded to bf16', async () => {
    const t = full([3], 0, 'bf16');
    const vals = Float32Array.from([1 / 3, -1e30, 65504]);
    assignTensor(t, { data: vals, shape: [3] });
    expect(await t.data()).toEqual(decodeBF16(encodeBF16(vals)));
  });

  it('ops that move single elements reject bf16 clearly', () => {
    const t = tensor([1, 2, 3, 4], [2, 2], 'bf16');
    expect(() => permute(t, [1, 0])).toThrow(/permute: dtype bf16 not supported/);
    expect(() => concat([t, t], 0)).toThrow(DTypeError);
  });
});
