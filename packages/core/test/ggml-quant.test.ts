/**
 * llama.cpp's Q8_0 / Q4_0 / Q4_K / Q6_K blocks: the CPU unpacking against a float64 transcription
 * of the reference dequantization loops (ggml's dequantize_row_* as the GGUF spec describes them,
 * written here block by block from the byte layout, independently of quant/ggml.ts), and blocks
 * built by hand whose values are worked out in the comments. On the GPU, the kernels that read them
 * in place against those values.
 */
import { describe, expect, it } from 'vitest';
import {
  add,
  backward,
  dequantize,
  dequantizeGgml,
  dequantizeGgmlParts,
  GGML_LAYOUTS,
  type GgmlFormat,
  getDevice,
  ggmlFormatOf,
  ggmlStoredBytes,
  keep,
  Linear,
  matmul,
  mul,
  QuantizedTensor,
  Rng,
  randn,
  scale,
  sum,
  tensor,
  tidy,
  unpackGgml,
} from '../src/index.js';
import { useGpu } from './gpu.js';
import { expectClose, expectQuantizedProduct, withTextures } from './matmul-check.js';

useGpu();

const f = Math.fround;

/** IEEE half bits → value, in float64 (independent of core's codec). */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The reference loops, each product rounded to f32 as C's float arithmetic does. */
function reference(format: GgmlFormat, b: Uint8Array, n: number): Float64Array {
  const y = new Float64Array(n);
  const half = (at: number) => halfValue(b[at] | (b[at + 1] << 8));
  const i8 = (v: number) => (v << 24) >> 24;
  const { block, blockBytes } = GGML_LAYOUTS[format];
  for (let i = 0; i < n / block; i++) {
    const x = i * blockBytes;
    const o = i * block;
    if (format === 'q8_0') {
      const d = half(x);
      for (let j = 0; j < 32; j++) y[o + j] = f(i8(b[x + 2 + j]) * d);
    } else if (format === 'q4_0') {
      const d = half(x);
      for (let j = 0; j < 16; j++) {
        y[o + j] = f(((b[x + 2 + j] & 0x0f) - 8) * d);
        y[o + j + 16] = f(((b[x + 2 + j] >> 4) - 8) * d);
      }
    } else if (format === 'q4_k') {
      const d = half(x);
      const min = half(x + 2);
      const sc = (j: number): [number, number] => {
        const q = (k: number) => b[x + 4 + k];
        return j < 4
          ? [q(j) & 63, q(j + 4) & 63]
          : [(q(j + 4) & 0xf) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4)];
      };
      let q = x + 16;
      let out = o;
      for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
        const [s1, m1] = sc(is);
        const [s2, m2] = sc(is + 1);
        const d1 = f(d * s1);
        const mm1 = f(min * m1);
        const d2 = f(d * s2);
        const mm2 = f(min * m2);
        for (let l = 0; l < 32; l++) y[out++] = f(f(d1 * (b[q + l] & 0xf)) - mm1);
        for (let l = 0; l < 32; l++) y[out++] = f(f(d2 * (b[q + l] >> 4)) - mm2);
        q += 32;
      }
    } else {
      const d = half(x + 208);
      let ql = x;
      let qh = x + 128;
      let sc = x + 192;
      for (let nn = 0; nn < 256; nn += 128) {
        for (let l = 0; l < 32; l++) {
          const is = Math.floor(l / 16);
          const q1 = ((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
          const q2 = ((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
          const q3 = ((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
          const q4 = ((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
          y[o + nn + l] = f(f(d * i8(b[sc + is])) * q1);
          y[o + nn + l + 32] = f(f(d * i8(b[sc + is + 2])) * q2);
          y[o + nn + l + 64] = f(f(d * i8(b[sc + is + 4])) * q3);
          y[o + nn + l + 96] = f(f(d * i8(b[sc + is + 6])) * q4);
        }
        ql += 64;
        qh += 32;
        sc += 8;
      }
    }
  }
  return y;
}

/** Random blocks: random code bytes with finite, modest f16 scales where the format has them. */
function randomBlocks(format: GgmlFormat, blocks: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const { blockBytes } = GGML_LAYOUTS[format];
  const b = new Uint8Array(blocks * blockBytes);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rng.uniform() * 256);
  // f16 with exponent 9..16 (about 2^-6 .. 2^1), random sign and mantissa.
  const scale = () =>
    (Math.floor(rng.uniform() * 2) << 15) |
    ((9 + Math.floor(rng.uniform() * 8)) << 10) |
    Math.floor(rng.uniform() * 1024);
  for (let i = 0; i < blocks; i++) {
    const x = i * blockBytes;
    const at = format === 'q6_k' ? [x + 208] : format === 'q4_k' ? [x, x + 2] : [x];
    for (const a of at) {
      const h = scale();
      b[a] = h & 255;
      b[a + 1] = h >> 8;
    }
  }
  return b;
}

const FORMATS: GgmlFormat[] = ['q8_0', 'q4_0', 'q4_k', 'q6_k'];

describe('llama.cpp block formats on the CPU', () => {
  for (const format of FORMATS) {
    it(`${format}: unpacked values equal the reference dequantization bit for bit`, () => {
      const { block } = GGML_LAYOUTS[format];
      for (const [blocks, seed] of [
        [1, 1],
        [3, 2],
        [17, 3],
      ]) {
        const n = blocks * block;
        const bytes = randomBlocks(format, blocks, seed);
        expect(ggmlStoredBytes(format, n)).toBe(bytes.length);
        const ours = dequantizeGgml(format, bytes, n);
        const ref = reference(format, bytes, n);
        expect(ours.length).toBe(n);
        for (let i = 0; i < n; i++)
          if (!Object.is(ours[i], ref[i]) && !(ours[i] === 0 && ref[i] === 0))
            throw new Error(`${format} element ${i} of ${n}: ${ours[i]} vs reference ${ref[i]}`);
        // What the kernels read (unpacked codes and scales) decodes to the same values.
        expect(dequantizeGgmlParts(unpackGgml(format, bytes, n))).toEqual(ours);
      }
    });
  }

  it('GGUF type ids', () => {
    expect(FORMATS.map((t) => GGML_LAYOUTS[t].typeId)).toEqual([8, 2, 12, 14]);
    expect(ggmlFormatOf(12)).toBe('q4_k');
    expect(ggmlFormatOf(3)).toBeUndefined(); // Q4_1: not kept quantized
  });

  it('blocks by hand', () => {
    // Q8_0: d = 0.5 (f16 0x3800), q = -128, 127, 3, then zeros.
    const q8 = new Uint8Array(34);
    q8.set([0x00, 0x38, 0x80, 0x7f, 0x03]);
    expect(Array.from(dequantizeGgml('q8_0', q8, 32).slice(0, 4))).toEqual([-64, 63.5, 1.5, 0]);

    // Q4_0: d = 2 (0x4000); byte 0 = 0x1f: element 0 = (15 - 8)·2 = 14, element 16 = (1 - 8)·2 = -14;
    // other bytes 0x88: (8 - 8)·2 = 0.
    const q4 = new Uint8Array(18).fill(0x88);
    q4.set([0x00, 0x40, 0x1f]);
    const v4 = dequantizeGgml('q4_0', q4, 32);
    expect([v4[0], v4[16], v4[1], v4[31]]).toEqual([14, -14, 0, 0]);

    // Q4_K: d = 1 (0x3c00), dmin = 0.25 (0x3400). Scale bytes: sub-block 0 scale 3 (byte 0), min 4
    // (byte 4); sub-block 5 (j ≥ 4): scale = (byte 9 & 15) | (byte 1 >> 6) << 4 = 2 | 1 << 4 = 18,
    // min = (byte 9 >> 4) | (byte 5 >> 6) << 4 = 1 | 2 << 4 = 33.
    const k4 = new Uint8Array(144);
    k4.set([0x00, 0x3c, 0x00, 0x34]);
    k4.set([3, 0x40, 0, 0, 4, 0x80, 0, 0, 0, 0x12, 0, 0], 4);
    // Code byte 0: low nibble 5 → element 0; high nibble 9 → element 32 (sub-block 1: scale 0,
    // min 0 → 0). Code byte 64 + 7 (third 32-byte group, l = 7): high nibble 10 → element
    // 128 + 32 + 7 = 167, in sub-block 5.
    k4[16] = 0x95;
    k4[16 + 64 + 7] = 0xa0;
    const vk = dequantizeGgml('q4_k', k4, 256);
    expect(vk[0]).toBe(3 * 5 - 0.25 * 4); // 14
    expect(vk[1]).toBe(-1); // code 0: 0 - 1
    expect(vk[32]).toBe(0);
    expect(vk[167]).toBe(18 * 10 - 0.25 * 33); // 171.75
    expect(vk[160]).toBe(-0.25 * 33);

    // Q6_K: d = 0.5 (bytes 208..209). scales[0] = 2, scales[3] = -4. Element 0: low 4 bits from
    // ql[0] & 15 = 7, high 2 bits from qh[0] & 3 = 2 → 39 - 32 = 7 → 0.5·2·7 = 7. Element 48 (l = 16,
    // second quarter, scale index is + 2 = 3): low bits ql[48] & 15 = 1, high (qh[16] >> 2) & 3 = 0
    // → 1 - 32 = -31 → 0.5·(-4)·(-31) = 62.
    const k6 = new Uint8Array(210);
    k6[208] = 0x00;
    k6[209] = 0x38;
    k6[192] = 2;
    k6[195] = 0xfc;
    k6[0] = 0x07;
    k6[128] = 0x02;
    k6[48] = 0x01;
    const v6 = dequantizeGgml('q6_k', k6, 256);
    expect(v6[0]).toBe(7);
    expect(v6[48]).toBe(62);
    expect(v6[1]).toBe(0.5 * 2 * -32);
  });

  it('refuses a size that is not whole blocks or bytes that are too short', () => {
    expect(() => dequantizeGgml('q4_k', new Uint8Array(144), 128)).toThrow(/whole blocks of 256/);
    expect(() => dequantizeGgml('q8_0', new Uint8Array(33), 32)).toThrow(/need 34 bytes/);
  });
});

/** A weight [N, K] of random blocks, uploaded; with its CPU-decoded values. */
function ggmlWeight(format: GgmlFormat, N: number, K: number, seed: number) {
  const bytes = randomBlocks(format, (N * K) / GGML_LAYOUTS[format].block, seed);
  const q = QuantizedTensor.allocate(format, [N, K]);
  q.write(unpackGgml(format, bytes, N * K));
  return { q, values: dequantizeGgml(format, bytes, N * K) };
}

describe('llama.cpp block formats on the GPU', () => {
  it('dequantize() equals the CPU decoding bit for bit; memory counts codes and scales as weights', async () => {
    for (const format of FORMATS) {
      const [N, K] = [3, 2 * GGML_LAYOUTS[format].block];
      const before = getDevice().memoryReport().live.weights;
      const { q, values } = ggmlWeight(format, N, K, 21);
      expect(getDevice().memoryReport().live.weights - before).toBe(q.bytes);
      expect(q.bytes).toBe(QuantizedTensor.bytesFor(format, [N, K]));
      const d = dequantize(q);
      const got = (await d.data()) as Float32Array;
      for (let i = 0; i < values.length; i++)
        if (!Object.is(got[i], values[i]) && !(got[i] === 0 && values[i] === 0))
          throw new Error(`${format} element ${i}: GPU ${got[i]} vs CPU ${values[i]}`);
      d.dispose();
      q.dispose();
    }
  });

  it('refuses rows that are not whole blocks', () => {
    expect(() => QuantizedTensor.allocate('q4_k', [4, 128])).toThrow(/whole blocks of 256/);
  });

  // One row (the decoding kernel), odd row counts (scalar tails), and enough rows for textures.
  const SHAPES: Array<[number, number, number]> = [
    [1, 13, 1],
    [5, 9, 2],
    [1, 12, 3],
    [33, 70, 1],
  ];
  for (const textures of ['never', 'always'] as const)
    it(`x·Wᵀ and its input gradient dY·W equal the CPU-decoded weight's (textures: ${textures})`, () =>
      withTextures(textures, async () => {
        for (const format of FORMATS)
          for (const [M, N, blocks] of SHAPES) {
            const K = blocks * GGML_LAYOUTS[format].block;
            const { q, values } = ggmlWeight(format, N, K, M + N + K);
            const rng = new Rng(M * N);
            const x = Float32Array.from({ length: M * K }, () => rng.normal());
            const g = Float32Array.from({ length: M * N }, () => rng.normal());
            await expectQuantizedProduct(q, values, x, g, `${format} [${M}, ${K}]·[${N}, ${K}]ᵀ`);
            q.dispose();
          }
      }));

  it("a LoRA step over a Linear whose weight is set to a llama.cpp type gives the f32 base's adapter gradients", async () => {
    const [inF, outF, r] = [256, 19, 4];
    for (const format of FORMATS) {
      const run = async (quantized: boolean) => {
        const base = new Linear(inF, outF, { rng: new Rng(5), trainable: false });
        const { q, values } = ggmlWeight(format, outF, inF, 8);
        if (quantized) base.setQuantized(q);
        else {
          q.dispose();
          base.weight.value = keep(tensor(values, [outF, inF]));
        }
        const A = keep(randn([r, inF], { rng: new Rng(1), std: 0.3 }));
        const B = keep(randn([outF, r], { rng: new Rng(2), std: 0.3 }));
        A.requiresGrad = true;
        B.requiresGrad = true;
        const x = keep(randn([2, 3, inF], { rng: new Rng(3) }));
        x.requiresGrad = true;
        const before = getDevice().memoryReport().live.weights;
        tidy(() => {
          const y = add(
            base.forward(x),
            scale(matmul(matmul(x, A, { transB: true }), B, { transB: true }), 2),
          );
          backward(sum(mul(y, randn(y.shape, { rng: new Rng(9) }))));
        });
        const res = {
          gA: (await A.grad?.data()) as Float32Array,
          gB: (await B.grad?.data()) as Float32Array,
          gx: (await x.grad?.data()) as Float32Array,
          frozen: !base.weight.trainable,
          leaked: getDevice().memoryReport().live.weights - before,
        };
        for (const t of [A, B, x]) t.dispose();
        base.dispose();
        return res;
      };
      const q = await run(true);
      const f = await run(false);
      expect(q.frozen).toBe(true);
      expect(q.leaked).toBe(0);
      for (const k of ['gA', 'gB', 'gx'] as const) expectClose(q[k], f[k], 1e-5, `${format} ${k}`);
    }
  });

  it('Linear.setQuantized refuses a weight of another shape', () => {
    const lin = new Linear(256, 4, { trainable: false });
    const q = QuantizedTensor.allocate('q8_0', [4, 512]);
    expect(() => lin.setQuantized(q)).toThrow(/does not fit a weight of shape \[4, 256\]/);
    q.dispose();
    lin.dispose();
  });
});
