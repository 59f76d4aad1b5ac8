import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  add,
  backward,
  DYNAMIC_MAP,
  dequantize,
  dequantize4bit,
  dequantizeInt8,
  encodeDynamic,
  encodeFP4,
  encodeNF4,
  getDevice,
  keep,
  Linear,
  matmul,
  mul,
  type QuantFormat,
  QuantizedTensor,
  quantize,
  quantize4bit,
  quantizeInt8,
  Rng,
  randn,
  scale,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../src/index.js';
import { setTextureBlocksForTesting, textureMatmulAvailable } from '../src/kernels/matmul/run-texture.js';
import { useGpu } from './gpu.js';
import {
  expectClose,
  expectQuantizedProduct,
  expectReadAsStored,
  refMatmul,
  withTextures,
} from './matmul-check.js';
import {
  dynamicMapF64,
  FP4_SPLITS,
  fp4Code,
  NF4,
  nf4Code,
  pack4,
  quant4,
  quantInt8,
} from './reference/quant.js';

useGpu();

/** Values spanning several magnitudes, with exact zeros, ties to the levels and an outlier. */
function weights(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const w = Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * 0.2);
  for (let i = 0; i < n; i += 37) w[i] = 0;
  if (n > 100) w[100] = 3.5;
  return w;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = join(
  process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data'),
  'stories260K/stories260K.bin',
);
const haveData = existsSync(BIN);
if (!haveData && process.env.CI !== 'true')
  console.warn(`SKIPPING the stories260K quantization test: ${BIN} not found (set SHARELORA_DATA)`);

/** stories260K's attention q and k weights, all layers stacked: llama2.c .bin header then f32 tensors. */
function storiesMatrices(): Array<{ name: string; rows: number; cols: number; w: Float32Array }> {
  const buf = readFileSync(BIN);
  const h = new Int32Array(buf.buffer, buf.byteOffset, 7);
  const [dim, , layers, heads, kvHeads, vocab] = h;
  const f32 = new Float32Array(buf.buffer.slice(buf.byteOffset + 28));
  const kv = (dim / heads) * kvHeads;
  let at = Math.abs(vocab) * dim + layers * dim; // token embeddings, attention RMS norms
  const wq = f32.slice(at, at + layers * dim * dim);
  at += layers * dim * dim;
  const wk = f32.slice(at, at + layers * kv * dim);
  return [
    { name: 'wq', rows: layers * dim, cols: dim, w: wq },
    { name: 'wk', rows: layers * kv, cols: dim, w: wk },
  ];
}

function expectBits(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i]) && !(got[i] === 0 && want[i] === 0))
      expect(got[i], `${what}[${i}]`).toBe(want[i]);
}

function check4bit(w: Float32Array, format: 'nf4' | 'fp4', what: string) {
  const ref = quant4(w, format);
  const q = quantize4bit(w, format);
  expectBits(q.codes, pack4(ref.codes), `${what} codes`);
  expectBits(q.absmaxCodes, ref.absmaxCodes, `${what} absmax codes`);
  expectBits(q.absmax2, ref.absmax2, `${what} absmax2`);
  expect(q.offset).toBe(ref.offset);
  expectBits(dequantize4bit(q, w.length), ref.values, `${what} values`);
}

describe('quantization formats against the float64 reference', () => {
  it('the dynamic map is the recipe in f32: sorted, 0 at 127, 1 at 255, each entry within 2 ulp', () => {
    const exact = dynamicMapF64();
    expect(exact.length).toBe(256);
    for (let i = 0; i < 256; i++) {
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(exact[i]) || 1)) - 23);
      expect(Math.abs(DYNAMIC_MAP[i] - exact[i]), `map[${i}]`).toBeLessThanOrEqual(2 * ulp);
      if (i > 0) expect(DYNAMIC_MAP[i]).toBeGreaterThan(DYNAMIC_MAP[i - 1]);
    }
    expect(DYNAMIC_MAP[127]).toBe(0);
    expect(DYNAMIC_MAP[255]).toBe(1);
  });

  it('dynamic-map codes: nearest value, midpoint ties as the binary search takes them', () => {
    const xs: number[] = [-1, 1, 0, -0.99, 1e-7, -1e-7];
    for (let j = 0; j < 255; j++) {
      const mid = Math.fround((DYNAMIC_MAP[j] + DYNAMIC_MAP[j + 1]) * 0.5);
      xs.push(DYNAMIC_MAP[j], mid, Math.fround(mid * (1 + 2 ** -20)), Math.fround(mid * (1 - 2 ** -20)));
    }
    const rng = new Rng(3);
    for (let i = 0; i < 2000; i++) xs.push(Math.fround((rng.uniform() * 2 - 1) ** 5));
    for (const x of xs) expect(encodeDynamic(x), `x = ${x}`).toBe(reference(x));
    function reference(x: number) {
      return x > 0 || x < 0 || x === 0 ? refCode(x) : 0;
    }
    function refCode(x: number) {
      // a second, brute-force statement of the rule: nearest by f32 midpoints, ties to the even index
      let best = 0;
      for (let j = 0; j < 255; j++) {
        const mid = Math.fround((DYNAMIC_MAP[j] + DYNAMIC_MAP[j + 1]) * 0.5);
        if (x > mid || (x === mid && (j + 1) % 2 === 0)) best = j + 1;
      }
      return best;
    }
  });

  for (const format of ['nf4', 'fp4'] as const)
    it(`${format}: codes, double-quantized absmax and values on odd sizes`, () => {
      for (const [n, seed] of [
        [1, 1],
        [63, 2],
        [65, 3],
        [129 * 7, 4],
        [64 * 256 + 77, 5], // two absmax blocks, the second short
        [64 * 300, 6],
      ])
        check4bit(weights(n, seed), format, `${format} n=${n}`);
      check4bit(new Float32Array(130), format, `${format} zeros`);
    });

  it('int8: per-row codes and values', () => {
    for (const [r, c] of [
      [1, 1],
      [3, 5],
      [17, 33],
    ]) {
      const w = weights(r * c, r + c);
      w.fill(0, 0, c); // a zero row
      const ref = quantInt8(w, r, c);
      const q = quantizeInt8(w, r, c);
      expectBits(q.codes, ref.codes, 'codes');
      expectBits(q.rowAbsmax, ref.absmax, 'absmax');
      expectBits(dequantizeInt8(q, c), ref.values, 'values');
    }
  });

  (haveData || process.env.CI === 'true' ? it : it.skip)('on stories260K weights', () => {
    for (const m of storiesMatrices()) {
      for (const format of ['nf4', 'fp4'] as const) check4bit(m.w, format, `${m.name} ${format}`);
      const ref = quantInt8(m.w, m.rows, m.cols);
      expectBits(quantizeInt8(m.w, m.rows, m.cols).codes, ref.codes, `${m.name} int8`);
    }
  });

  it('NF4 and FP4 codes at and next to every decision point (a tie takes the lower code)', () => {
    const bits = new Int32Array(1);
    const fl = new Float32Array(bits.buffer);
    const step = (x: number, d: number) => {
      fl[0] = x;
      bits[0] += x > 0 ? d : -d;
      return fl[0];
    };
    const nf4Cuts = NF4.slice(0, 15).map((v, j) => Math.fround((v + NF4[j + 1]) / 2));
    const fp4Cuts = FP4_SPLITS.map(([t]) => Math.fround(t));
    for (const [encode, ref, cuts] of [
      [encodeNF4, nf4Code, nf4Cuts],
      [encodeFP4, fp4Code, [...fp4Cuts, ...fp4Cuts.map((c) => -c)]],
    ] as const)
      for (const c of cuts)
        for (const x of [step(c, -1), c, step(c, 1)]) expect(encode(x), `x = ${x}`).toBe(ref(x));
    expect(encodeNF4(nf4Cuts[7])).toBe(7); // exactly between 0 and 0.0796: the lower level, 0
    expect(encodeNF4(step(nf4Cuts[7], 1))).toBe(8);
  });

  it('NF4 and FP4 by hand from the published tables', () => {
    // Block [0.5, -1, 0.04, 0.0397, ...zeros]: absmax 1. 0.5 lies between 0.4407 and 0.5626
    // (midpoint 0.50166): code 12; -1 is code 0; 0.04 is above the midpoint 0.03979 of 0 and
    // 0.0796: code 8; 0.0397 below it: code 7 (the 0 level); padding zeros: code 7.
    const q = quantize4bit(Float32Array.from([0.5, -1, 0.04, 0.0397, 0]), 'nf4');
    expect(Array.from(q.codes)).toEqual([0xc0, 0x87, 0x77]);
    expect(nf4Code(0.5)).toBe(12);
    // FP4: 0.5 is e2m1 6/12 = code 0b101; -1 is 12/12 with the sign bit = 0b1011; 0.2 is nearer
    // 0.1667 (code 0b110) than 0.25 (threshold 0.2083).
    const p = quantize4bit(Float32Array.from([0.5, -1, 0.2, 0]), 'fp4');
    expect(Array.from(p.codes)).toEqual([0x5b, 0x60]);
    expect(fp4Code(-1)).toBe(0b1011);
    // One block's absmax alone: the offset is the absmax, the centered value 0 takes code 127 (0.0).
    expect(q.offset).toBe(1);
    expect(Array.from(q.absmaxCodes)).toEqual([0]);
    expect(Array.from(dequantize4bit(q, 5))).toEqual(
      [0.44070982933044434, -1, 0.07958029955625534, 0, 0].map(Math.fround),
    );
  });
});

const FORMATS: QuantFormat[] = ['nf4', 'fp4', 'int8'];

/** x·Wᵀ and x's gradient for a random `format` weight W [N, K] and x [M, K], against float64. */
async function expectRandomQuantizedProduct(format: QuantFormat, M: number, N: number, K: number) {
  const q = await quantize(weights(N * K, M + N + K), format, [N, K]);
  const wd = (await tidy(() => dequantize(q)).data()) as Float32Array;
  const x = Float32Array.from(weights(M * K, 7), (v) => v * 10);
  const g = Float32Array.from(weights(M * N, 8), (v) => v * 10);
  await expectQuantizedProduct(q, wd, x, g, `${format} [${M}, ${K}]·[${N}, ${K}]ᵀ`);
  q.dispose();
}

describe('quantized tensors on the GPU', () => {
  it('dequantize() equals the CPU decoding bit for bit; memory counts the packed bytes as weights', async () => {
    for (const format of FORMATS) {
      const [N, K] = [7, 75];
      const w = weights(N * K, 11);
      const before = getDevice().memoryReport().live.weights;
      const q = await quantize(w, format, [N, K]);
      const want =
        format === 'int8'
          ? dequantizeInt8(quantizeInt8(w, N, K), K)
          : dequantize4bit(quantize4bit(w, format), N * K);
      const d = dequantize(q);
      expectBits((await d.data()) as Float32Array, want, `${format} dequantize`);
      d.dispose();
      const bytes = getDevice().memoryReport().live.weights - before;
      expect(bytes).toBe(q.bytes);
      const packed = format === 'int8' ? N * K + 4 * N : Math.ceil((N * K) / 2) + Math.ceil((N * K) / 64) + 4;
      expect(q.bytes - packed).toBeLessThan(8); // u32-word padding only
      q.dispose();
    }
  });

  // Shapes: odd everywhere (scalar loads), multiples of 4 (vec4 loads), one row, and a long K
  // that takes split-K.
  const SHAPES: Array<[number, number, number]> = [
    [5, 9, 67],
    [1, 13, 131],
    [1, 12, 128],
    [8, 16, 64],
    [3, 20, 2048],
    [33, 70, 96],
  ];
  for (const textures of ['never', 'always'] as const)
    it(`x·Wᵀ and its input gradient dY·W equal dequantize-then-f32 (textures: ${textures})`, () =>
      withTextures(textures, async () => {
        for (const format of FORMATS)
          for (const [M, N, K] of SHAPES) await expectRandomQuantizedProduct(format, M, N, K);
      }));

  for (const format of ['nf4', 'fp4', 'int8'] as const)
    it(`${format} codes copied as stored into the texture matmul: blocks along M and K, against float64`, async () => {
      const dev = getDevice();
      const texturesHere = textureMatmulAvailable();
      dev.matmulTextures = 'always';
      // Blocks far below the defaults: the transposed products' A (the weight) splits along M
      // (rows 136.. start mid-weight), and B's K blocks start at weight row 12.
      setTextureBlocksForTesting({ M: 32, K: 12, N: 136 });
      dev.startProfile();
      try {
        // [M, N, K] of x·Wᵀ (W [N, K]): computed transposed with W as A (200 rows in two blocks),
        // rows of one or two 64-element scale blocks (int8: a step per row); then x's gradient g·W with W as B (128 wide,
        // or 64 on medium tiles; its K = N in two to seventeen blocks).
        for (const [M, N, K] of [
          [5, 200, 128],
          [3, 16, 128],
          [20, 24, 128],
          [17, 28, 128],
          [9, 136, 64],
        ] as Array<[number, number, number]>) {
          await expectRandomQuantizedProduct(format, M, N, K);
        }
      } finally {
        const keys = (await dev.stopProfile()).trace.map((e) => String(e.args?.key ?? ''));
        dev.matmulTextures = 'auto';
        setTextureBlocksForTesting(null);
        if (texturesHere) {
          expectReadAsStored(keys, format);
        }
      }
    });

  it('products over the binding limit run in windows of rows against the whole quantized weight', async () => {
    const [M, N, K] = [301, 70, 40];
    const q = await quantize(weights(N * K, 12), 'nf4', [N, K]);
    const wd = (await tidy(() => dequantize(q)).data()) as Float32Array;
    const x = weights(M * K, 13);
    const g = weights(M * N, 14);
    getDevice().setBindingLimitForTesting(64 * 70 * 4); // x (48 KB), y and dY (84 KB) are split
    try {
      const xt = tensor(x, [M, K]);
      xt.requiresGrad = true;
      const y = matmul(xt, q, { transB: true });
      backward(y, tensor(g, [M, N])); // a reduction of y would not fit the lowered limit
      expectClose((await y.data()) as Float32Array, refMatmul(x, wd, M, N, K, true), 1e-5, 'y');
      expectClose((await xt.grad?.data()) as Float32Array, refMatmul(g, wd, M, K, N, false), 1e-5, 'dx');
    } finally {
      getDevice().setBindingLimitForTesting(null);
      q.dispose();
    }
  });

  it('a LoRA step over an NF4 base gives the adapter gradients of the dequantized f32 base', async () => {
    const [inF, outF, r, rows] = [67, 45, 4, 6];
    const run = async (quantized: boolean) => {
      const base = new Linear(inF, outF, { rng: new Rng(5), trainable: false });
      let wd: Tensor | null = null;
      if (quantized) await base.quantizeWeight('nf4');
      else {
        const q = await quantize(base.weight.value, 'nf4');
        wd = dequantize(q);
        q.dispose();
        base.weight.value = keep(wd);
      }
      const A = keep(randn([r, inF], { rng: new Rng(1), std: 0.3 }));
      const B = keep(randn([outF, r], { rng: new Rng(2), std: 0.3 }));
      A.requiresGrad = true;
      B.requiresGrad = true;
      const x = keep(randn([2, rows, inF], { rng: new Rng(3) }));
      x.requiresGrad = true;
      tidy(() => {
        const lora = matmul(matmul(x, A, { transB: true }), B, { transB: true });
        const y = base.forward(x);
        const out = add(y, scale(lora, 2));
        backward(sum(mul(out, tensor(weights(out.size, 9), out.shape))));
      });
      const res = {
        gA: (await A.grad?.data()) as Float32Array,
        gB: (await B.grad?.data()) as Float32Array,
        gx: (await x.grad?.data()) as Float32Array,
        weights: getDevice().memoryReport().live.weights,
      };
      for (const t of [A, B, x]) t.dispose();
      base.weight.value.dispose();
      base.quantized?.dispose();
      base.bias?.value.dispose();
      return res;
    };
    const q = await run(true);
    const f = await run(false);
    for (const k of ['gA', 'gB', 'gx'] as const) expectClose(q[k], f[k], 1e-5, k);
  });

  it('Linear.quantizeWeight: frozen, packed, forward equals the dequantized weight', async () => {
    const lin = new Linear(64, 10, { rng: new Rng(4) });
    const x = keep(randn([3, 64], { rng: new Rng(6) }));
    const q = await lin.quantizeWeight('int8');
    expect(lin.weight.trainable).toBe(false);
    expect(lin.weight.value).toBe(q.codes);
    expect(() => {
      lin.weight.trainable = true;
    }).toThrow(/can only be frozen/);
    await expect(lin.quantizeWeight('nf4')).rejects.toThrow(/already quantized/);
    const y = (await tidy(() => lin.forward(x)).data()) as Float32Array;
    const wd = (await tidy(() => dequantize(q)).data()) as Float32Array;
    const b = (await lin.bias?.value.data()) as Float32Array;
    const want = refMatmul((await x.data()) as Float32Array, wd, 3, 10, 64, true).map(
      (v, i) => v + b[i % 10],
    );
    expectClose(y, want, 1e-5, 'forward');
    expect(lin.weight.shape).toEqual([10, 64]);
    expect(lin.numParameters()).toBe(64 * 10 + 10);
    x.dispose();
  });

  it('Linear({ quantize }) allocates packed buffers only; write() fills them as quantize() would', async () => {
    for (const format of ['nf4', 'fp4', 'int8'] as const) {
      const [N, K] = [7, 37];
      const w = weights(N * K, 11);
      const before = getDevice().memoryReport().live.weights;
      const lin = new Linear(K, N, { quantize: format, bias: false });
      const q = lin.quantized as QuantizedTensor;
      expect(getDevice().memoryReport().live.weights - before).toBe(q.bytes);
      expect(QuantizedTensor.bytesFor(format, [N, K])).toBe(q.bytes);
      expect(q.bytes).toBeLessThan(N * K * (format === 'int8' ? 2 : 1));
      expect(lin.weight.shape).toEqual([N, K]);
      expect(lin.weight.packed).toBe(true);
      expect(lin.numParameters()).toBe(N * K);
      expect(() => {
        lin.weight.trainable = true;
      }).toThrow(/frozen/);
      q.write(format === 'int8' ? quantizeInt8(w, N, K) : quantize4bit(w, format));
      const ref = await quantize(w, format, [N, K]);
      expect(q.offset).toBe(ref.offset);
      const got = (await tidy(() => dequantize(q)).data()) as Float32Array;
      const want = (await tidy(() => dequantize(ref)).data()) as Float32Array;
      expectBits(got, want, `${format} written`);
      expect(() => q.write(quantizeInt8(w.subarray(0, 36), 4, 9))).toThrow(/do not fit/);
      ref.dispose();
      lin.dispose();
      expect(getDevice().memoryReport().live.weights).toBe(before);
    }
    // By hand for a [2048, 8192] projection: nf4 is 4 bits per value, one 8-bit absmax code per 64
    // values and one f32 per 256 codes; int8 one byte per value and an f32 step per row.
    expect(QuantizedTensor.bytesFor('nf4', [2048, 8192])).toBe(2048 * 4096 + 262144 + 4 * 1024);
    expect(QuantizedTensor.bytesFor('int8', [2048, 8192])).toBe(2048 * 8192 + 4 * 2048);
  });
});
