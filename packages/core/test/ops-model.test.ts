/**
 * Model-level ops (embedding, attention, RoPE, dropout, cross entropy) against the float64 references:
 * forward and backward (finite differences of the reference with a random upstream gradient).
 */
import { describe, expect, it } from 'vitest';
import * as core from '../src/node.js';
import { useGpu } from './gpu.js';
import { assertClose, vjpFiniteDiff } from './reference/gradcheck.js';
import { F64, randInts, randn, roundToF32 } from './reference/ndarray.js';
import * as ref from './reference/ops.js';

const FWD_TOL = 1e-4;
const BWD_TOL = 1e-4;

const f32 = (x: F64, requiresGrad = false): core.Tensor => {
  const t = core.tensor(x.toFloat32(), x.shape);
  t.requiresGrad = requiresGrad;
  return t;
};
const i32 = (v: ArrayLike<number>, shape: number[] = [v.length]): core.Tensor =>
  core.tensor(Int32Array.from(v), shape, 'i32');
const rand = (shape: number[], seed: number, std = 1): F64 => roundToF32(randn(shape, seed, std));

/** Detaches a leaf's gradient so disposing the leaf (at the end of tidy) does not free it. */
function takeGrad(t: core.Tensor): core.Tensor {
  const g = t.grad;
  if (!g) throw new Error('no gradient');
  t.grad = null;
  return g;
}

/** Runs `fn` in a tidy scope, reads back the tensors it returns, frees them. */
async function read(fn: () => core.Tensor[]): Promise<Float32Array[]> {
  const ts = core.tidy(fn);
  try {
    return (await Promise.all(ts.map((t) => t.data()))) as Float32Array[];
  } finally {
    for (const t of ts) t.dispose();
  }
}

/**
 * Checks `gpu(inputs)` against `cpu(inputs)` and every input gradient of sum(out * upstream) against
 * finite differences of `cpu`.
 */
async function check(
  label: string,
  inputs: F64[],
  gpu: (xs: core.Tensor[]) => core.Tensor,
  cpu: (xs: F64[]) => F64,
  seed = 7,
): Promise<void> {
  const expected = cpu(inputs);
  const up = rand(expected.shape, seed);
  const [out, ...grads] = await read(() => {
    const xs = inputs.map((x) => f32(x, true));
    const y = gpu(xs);
    expect(y.shape, `${label} shape`).toEqual(expected.shape);
    core.backward(y, f32(up));
    return [y, ...xs.map(takeGrad)];
  });
  assertClose(out, expected, FWD_TOL, `${label} forward`);
  const refGrads = vjpFiniteDiff(cpu, inputs, up);
  for (const [i, g] of grads.entries()) assertClose(g, refGrads[i], BWD_TOL, `${label} backward input ${i}`);
}

function liveStorages(): number {
  return core.getDevice().memory.storages;
}

describe('model ops', () => {
  useGpu();

  describe('embedding', () => {
    it('gathers rows and scatter-adds repeated ids exactly', async () => {
      const [V, D] = [37, 5];
      const ids = randInts(21, 6, 3); // 21 positions over 6 ids: many repeats, most rows unseen
      const w = rand([V, D], 1);
      const up = rand([3, 7, D], 2);
      const before = liveStorages();
      const [out, dw] = await read(() => {
        const wt = f32(w, true);
        const y = core.embedding(wt, i32(ids, [3, 7]));
        expect(y.shape).toEqual([3, 7, D]);
        core.backward(y, f32(up));
        return [y, takeGrad(wt)];
      });
      expect(liveStorages()).toBe(before);
      expect(Array.from(out)).toEqual(Array.from(ref.embedding(w, ids, [3, 7]).data));
      const expected = new F64([V, D]);
      ids.forEach((id, p) => {
        for (let c = 0; c < D; c++) expected.data[id * D + c] += up.data[p * D + c];
      });
      assertClose(dw, expected, 1e-6, 'embedding dW');
      for (let r = 6; r < V; r++)
        expect(Array.from(dw.subarray(r * D, (r + 1) * D))).toEqual(new Array(D).fill(0));
    });

    it('scatter-adds a mix of ids seen once (no chain scan) and repeated ids', async () => {
      const [V, D] = [13, 6];
      const ids = [5, 2, 9, 2, 7, 5, 11, 2, 0];
      const w = rand([V, D], 7);
      const up = rand([ids.length, D], 8);
      const [dw] = await read(() => {
        const wt = f32(w, true);
        core.backward(core.embedding(wt, i32(ids)), f32(up));
        return [takeGrad(wt)];
      });
      const expected = new F64([V, D]);
      ids.forEach((id, p) => {
        for (let c = 0; c < D; c++) expected.data[id * D + c] += up.data[p * D + c];
      });
      assertClose(dw, expected, 1e-6, 'embedding dW (mixed)');
    });

    it('backward is bit-identical across runs', async () => {
      const [V, D] = [5, 9];
      const ids = randInts(300, V, 11);
      const w = rand([V, D], 4);
      const up = rand([300, D], 5);
      const grad = async (): Promise<Uint32Array> => {
        const [dw] = await read(() => {
          const wt = f32(w, true);
          core.backward(core.embedding(wt, i32(ids)), f32(up));
          return [takeGrad(wt)];
        });
        return new Uint32Array(dw.buffer);
      };
      const a = await grad();
      const b = await grad();
      expect(Array.from(a)).toEqual(Array.from(b));
    });

    it('gathers rows wider than one pass of lanes, of odd width', async () => {
      for (const D of [16, 37, 130]) {
        const ids = randInts(9, 11, 4);
        const w = rand([11, D], 5);
        const [out] = await read(() => [core.embedding(f32(w), i32(ids, [3, 3]))]);
        expect(Array.from(out)).toEqual(Array.from(ref.embedding(w, ids, [3, 3]).data));
      }
    });

    it("a table's block: ids less its offset, zero rows for the others, gradient for its own rows", async () => {
      const [D, rows] = [5, 6];
      const w = rand([11, D], 9); // blocks [0, 6) and [6, 11) of one table
      const ids = [7, 2, 10, 7, -1, 5, 6, 11, 2, 7, 0];
      const up = rand([ids.length, D], 10);
      const blocks = [0, 1].map((b) => {
        const [r0, r1] = [b * rows, Math.min(11, (b + 1) * rows)];
        const x = new F64([r1 - r0, D]);
        x.data.set(w.data.subarray(r0 * D, r1 * D));
        return { r0, r1, x };
      });
      for (const { r0, r1, x } of blocks) {
        const [out, dw] = await read(() => {
          const wt = f32(x, true);
          const y = core.embedding(wt, i32(ids), { offset: r0, outside: 'zero' });
          core.backward(y, f32(up));
          return [y, takeGrad(wt)];
        });
        const inside = (id: number) => id >= r0 && id < r1;
        const expected = new F64([ids.length, D]);
        const expectedDw = new F64([r1 - r0, D]);
        ids.forEach((id, p) => {
          if (!inside(id)) return;
          for (let c = 0; c < D; c++) {
            expected.data[p * D + c] = w.data[id * D + c];
            expectedDw.data[(id - r0) * D + c] += up.data[p * D + c];
          }
        });
        expect(Array.from(out)).toEqual(Array.from(expected.toFloat32()));
        assertClose(dw, expectedDw, 1e-6, `block [${r0}, ${r1}) dW`);
      }
      await expect(async () => core.embedding(f32(w), i32(ids), { offset: 0.5 })).rejects.toThrow(/offset/);
    });

    it('out-of-range ids give NaN rows and no gradient, without reading out of bounds', async () => {
      const w = rand([4, 3], 6);
      const ids = [1, 4, -1, 1];
      const [out, dw] = await read(() => {
        const wt = f32(w, true);
        const y = core.embedding(wt, i32(ids));
        core.backward(y, core.onesLike(y));
        return [y, takeGrad(wt)];
      });
      expect(Array.from(out.subarray(0, 3))).toEqual(Array.from(w.toFloat32().subarray(3, 6)));
      expect(Array.from(out.subarray(3, 9)).every(Number.isNaN)).toBe(true);
      expect(Array.from(dw)).toEqual([0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0]);
    });
  });

  describe('scaledDotProductAttention', () => {
    interface Case {
      name: string;
      B: number;
      Hq: number;
      Hkv: number;
      T: number;
      S: number;
      D: number;
      Dv: number;
      causal?: boolean;
      mask?: number[];
      maskType?: 'f32' | 'i32';
      scale?: number;
      portable?: boolean;
    }
    const cases: Case[] = [
      { name: 'MHA non-causal', B: 2, Hq: 3, Hkv: 3, T: 7, S: 7, D: 5, Dv: 3 },
      { name: 'GQA 6/2 causal', B: 2, Hq: 6, Hkv: 2, T: 7, S: 7, D: 5, Dv: 4, causal: true },
      {
        // Left padding plus a KV-cache offset: query 0 (absolute position 5) sees only padded keys.
        name: 'GQA 6/3 causal T<S with left padding',
        B: 2,
        Hq: 6,
        Hkv: 3,
        T: 4,
        S: 9,
        D: 5,
        Dv: 3,
        causal: true,
        mask: [...[0, 0, 0, 0, 0, 0, 1, 1, 1], ...[1, 1, 1, 1, 1, 1, 1, 1, 1]],
      },
      {
        name: 'padding mask i32 with a fully padded row, custom scale',
        B: 2,
        Hq: 2,
        Hkv: 1,
        T: 5,
        S: 9,
        D: 3,
        Dv: 5,
        mask: [...[1, 1, 0, 1, 1, 1, 0, 1, 1], ...new Array(9).fill(0)],
        maskType: 'i32',
        scale: 0.3,
      },
      // Head sizes that are multiples of 4 take the vec4 kernels; 8 and 64 are stories260K's and GPT-2's.
      { name: 'GQA 8/4 causal, D 8 (vec4)', B: 2, Hq: 4, Hkv: 2, T: 19, S: 19, D: 8, Dv: 8, causal: true },
      // Longer than one subgroup workgroup's rows (8 lanes x 4 rows for heads up to 16, x 2 above;
      // the dK/dV pass x 1 for heads over 32), the last block partial.
      {
        name: 'GQA 2/1 causal, D 8, three row blocks',
        B: 1,
        Hq: 2,
        Hkv: 1,
        T: 70,
        S: 70,
        D: 8,
        Dv: 8,
        causal: true,
      },
      {
        name: 'MHA causal, D 20, three row blocks',
        B: 1,
        Hq: 1,
        Hkv: 1,
        T: 37,
        S: 37,
        D: 20,
        Dv: 20,
        causal: true,
      },
      {
        name: 'MHA causal, D 64 (vec4), odd length',
        B: 1,
        Hq: 1,
        Hkv: 1,
        T: 13,
        S: 13,
        D: 64,
        Dv: 64,
        causal: true,
      },
      {
        name: 'GQA 2/1 causal, D 64, two key blocks of one row per lane',
        B: 1,
        Hq: 2,
        Hkv: 1,
        T: 11,
        S: 11,
        D: 64,
        Dv: 64,
        causal: true,
      },
      // Heads over 32 take the forward's key-by-key order (fwdRowsOuter), the smaller ones row by row.
      {
        name: 'vec4 D 40, Dv 36, T<S with padding, i32 mask',
        B: 2,
        Hq: 2,
        Hkv: 1,
        T: 5,
        S: 10,
        D: 40,
        Dv: 36,
        causal: true,
        mask: [...[0, 1, 1, 1, 1, 1, 1, 1, 1, 1], ...[1, 1, 1, 0, 1, 1, 1, 1, 1, 1]],
        maskType: 'i32',
      },
      {
        name: 'vec4 T<S with padding, f32 mask',
        B: 2,
        Hq: 4,
        Hkv: 2,
        T: 3,
        S: 11,
        D: 12,
        Dv: 4,
        causal: true,
        mask: [...[0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], ...[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]],
      },
      {
        name: 'causal T>S (leading rows fully masked)',
        B: 1,
        Hq: 4,
        Hkv: 2,
        T: 9,
        S: 5,
        D: 5,
        Dv: 3,
        causal: true,
      },
    ];
    // The reference works heads-first; the other layouts are permuted (and packed) views of it.
    const headsFirst = (x: F64) => ref.permute(x, [0, 2, 1, 3]);
    /** [B, T, (Hq + 2·Hkv)·D] -> q, k, v heads-first. */
    const unpack = (qkv: F64, c: Case): F64[] => {
      const [B, T] = qkv.shape;
      const parts: Array<[number, number]> = [
        [0, c.Hq],
        [c.Hq, c.Hq + c.Hkv],
        [c.Hq + c.Hkv, c.Hq + 2 * c.Hkv],
      ];
      const heads = ref.reshape(qkv, [B, T, c.Hq + 2 * c.Hkv, c.D]);
      return parts.map(([h0, h1]) => headsFirst(ref.slice(heads, [0, 0, h0, 0], [B, T, h1, c.D])));
    };
    type Layout = 'bhtd' | 'bthd' | 'packed';
    // Every case on the subgroup kernels (where the adapter has subgroups) and on the portable ones,
    // heads-first, time-first, and packed q|k|v where the case is self-attention with equal head sizes.
    const runs = cases.flatMap((k) =>
      (['bhtd', 'bthd', 'packed'] as Layout[])
        .filter((layout) => layout !== 'packed' || (k.S === k.T && k.D === k.Dv))
        .flatMap((layout) => [
          { ...k, layout },
          { ...k, layout, portable: true },
        ]),
    );
    for (const c of runs) {
      it(`${c.name}, ${c.layout}${c.portable ? ' (portable kernels)' : ''}`, async () => {
        core.getDevice().subgroupsDisabledForTesting = c.portable ?? false;
        const q = rand([c.B, c.Hq, c.T, c.D], 10);
        const k = rand([c.B, c.Hkv, c.S, c.D], 11);
        const v = rand([c.B, c.Hkv, c.S, c.Dv], 12);
        const mask = () =>
          c.mask
            ? c.maskType === 'i32'
              ? i32(c.mask, [c.B, c.S])
              : core.tensor(c.mask, [c.B, c.S])
            : undefined;
        const opts = { causal: c.causal, scale: c.scale };
        const cpu = (qr: F64, kr: F64, vr: F64) => ref.sdpa(qr, kr, vr, { ...opts, keyPaddingMask: c.mask });
        const before = liveStorages();
        const run =
          c.layout === 'bhtd'
            ? check(
                c.name,
                [q, k, v],
                ([qt, kt, vt]) =>
                  core.scaledDotProductAttention(qt, kt, vt, { ...opts, keyPaddingMask: mask() }),
                ([qr, kr, vr]) => cpu(qr, kr, vr),
              )
            : c.layout === 'bthd'
              ? check(
                  c.name,
                  [q, k, v].map(headsFirst),
                  ([qt, kt, vt]) =>
                    core.scaledDotProductAttention(qt, kt, vt, {
                      ...opts,
                      keyPaddingMask: mask(),
                      axes: 'bthd',
                    }),
                  ([qr, kr, vr]) => headsFirst(cpu(headsFirst(qr), headsFirst(kr), headsFirst(vr))),
                )
              : check(
                  c.name,
                  [rand([c.B, c.T, (c.Hq + 2 * c.Hkv) * c.D], 13)],
                  ([qkv]) =>
                    core.packedQkvAttention(qkv, {
                      ...opts,
                      keyPaddingMask: mask(),
                      heads: c.Hq,
                      kvHeads: c.Hkv,
                    }),
                  ([qkv]) => {
                    const [qr, kr, vr] = unpack(qkv, c);
                    return ref.reshape(headsFirst(cpu(qr, kr, vr)), [c.B, c.T, c.Hq * c.D]);
                  },
                );
        await run.finally(() => {
          core.getDevice().subgroupsDisabledForTesting = false;
        });
        expect(liveStorages()).toBe(before);
      });
    }

    it('outputs exact zeros for fully masked rows', async () => {
      const [out] = await read(() => [
        core.scaledDotProductAttention(
          f32(rand([1, 2, 3, 4], 1)),
          f32(rand([1, 1, 4, 4], 2)),
          f32(rand([1, 1, 4, 2], 3)),
          {
            keyPaddingMask: core.tensor([0, 0, 0, 0], [1, 4]),
          },
        ),
      ]);
      expect(Array.from(out)).toEqual(new Array(12).fill(0));
    });

    it('reads broadcast rows from textures on CPU adapters, to the bit as from buffers (separate, GQA with a mask, packed)', async () => {
      const dev = core.getDevice();
      const texturesHere = core.matmulPath() === 'textures';
      const [B, Hq, Hkv, T, D] = [2, 4, 2, 21, 8];
      const mask = () =>
        core.tensor(
          Int32Array.from({ length: B * T }, (_, i) => (i % 7 === 3 ? 0 : 1)),
          [B, T],
          'i32',
        );
      const cases: Array<[string, () => core.Tensor[], (xs: core.Tensor[]) => core.Tensor]> = [
        [
          'separate q, k, v',
          () =>
            [rand([B, Hq, T, D], 51), rand([B, Hq, T, D], 52), rand([B, Hq, T, D], 53)].map((x) =>
              f32(x, true),
            ),
          ([q, k, v]) => core.scaledDotProductAttention(q, k, v, { causal: true }),
        ],
        [
          'GQA with a key mask',
          () =>
            [rand([B, Hq, T, D], 54), rand([B, Hkv, T, D], 55), rand([B, Hkv, T, D], 56)].map((x) =>
              f32(x, true),
            ),
          ([q, k, v]) => core.scaledDotProductAttention(q, k, v, { causal: true, keyPaddingMask: mask() }),
        ],
        [
          'packed q|k|v',
          () => [f32(rand([B, T, (Hq + 2 * Hkv) * D], 57), true)],
          ([qkv]) => core.packedQkvAttention(qkv, { causal: true, heads: Hq, kvHeads: Hkv }),
        ],
      ];
      try {
        for (const [name, inputs, f] of cases) {
          const results: Float32Array[][] = [];
          for (const mode of ['auto', 'never'] as const) {
            dev.matmulTextures = mode;
            const xs = inputs();
            dev.startProfile();
            const out = f(xs);
            core.backward(out, core.onesLike(out));
            const got = [
              (await out.data()) as Float32Array,
              ...(await Promise.all(xs.map((x) => x.grad?.data() as Promise<Float32Array>))),
            ];
            const keys = (await dev.stopProfile()).trace
              .filter((e) => e.cat === 'encode')
              .map((e) => String(e.args?.key ?? ''))
              .filter((k) => k.startsWith('attn_'));
            expect(keys.length, name).toBe(3);
            expect(
              keys.every((k) => k.includes(':tex')),
              `${name} (${mode})`,
            ).toBe(mode === 'auto' && texturesHere);
            results.push(got);
            for (const x of [out, ...xs]) x.dispose();
          }
          for (const [i, r] of results[0].entries())
            expect(r, `${name}: output / gradient ${i}`).toEqual(results[1][i]);
        }
      } finally {
        dev.matmulTextures = 'auto';
      }
    });

    it('rejects Hq not a multiple of Hkv', () => {
      core.tidy(() => {
        const q = core.zeros([1, 5, 2, 4]);
        const kv = core.zeros([1, 2, 2, 4]);
        expect(() => core.scaledDotProductAttention(q, kv, kv)).toThrow(core.ShapeError);
      });
    });

    it('rejects a packed width that is not a multiple of the head rows', () => {
      core.tidy(() => {
        const qkv = core.zeros([1, 3, 4 * 7 + 1]);
        expect(() => core.packedQkvAttention(qkv, { heads: 3, kvHeads: 2 })).toThrow(/packed qkv/);
      });
    });
  });

  describe('rope', () => {
    const llama3: core.RopeScaling = {
      type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    const cases: Array<{ name: string; shape: number[]; pos: number[]; opts: core.RopeOptions }> = [
      {
        name: 'half theta 1e4',
        shape: [2, 3, 7, 8],
        pos: [3, 4, 5, 6, 7, 8, 9],
        opts: { theta: 10000, layout: 'half' },
      },
      {
        name: 'interleaved theta 5e5',
        shape: [1, 3, 7, 6],
        pos: [0, 1, 2, 3, 4, 5, 6],
        opts: { theta: 500000, layout: 'interleaved' },
      },
      {
        name: 'half llama3 scaling, long positions',
        shape: [1, 2, 5, 16],
        pos: [0, 8191, 20000, 131071, 1000003],
        opts: { theta: 500000, layout: 'half', scaling: llama3 },
      },
      {
        name: 'interleaved llama3 scaling',
        shape: [2, 1, 5, 12],
        pos: [17, 900, 4000, 12000, 65536],
        opts: { theta: 500000, layout: 'interleaved', scaling: llama3 },
      },
      {
        name: 'half linear scaling',
        shape: [1, 2, 4, 10],
        pos: [0, 5, 9, 100],
        opts: { theta: 10000, layout: 'half', scaling: { type: 'linear', factor: 4 } },
      },
      {
        name: 'half partial rotaryDim 4 of 10',
        shape: [2, 2, 3, 10],
        pos: [2, 7, 11],
        opts: { theta: 10000, layout: 'half', rotaryDim: 4 },
      },
      {
        name: 'interleaved partial rotaryDim 6 of 9',
        shape: [1, 3, 3, 9],
        pos: [1, 2, 3],
        opts: { theta: 10000, layout: 'interleaved', rotaryDim: 6 },
      },
      {
        name: 'positions near 2^24',
        shape: [1, 1, 3, 8],
        pos: [16777215, -16777215, 12345678],
        opts: { theta: 10000, layout: 'half' },
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        await check(
          c.name,
          [rand(c.shape, 20)],
          ([x]) => core.rope(x, i32(c.pos), c.opts),
          ([x]) => ref.rope(x, c.pos, c.opts),
        );
      });
    }

    it('per-batch positions [B, T]', async () => {
      const [B, H, T, D] = [2, 3, 5, 6];
      const pos = [0, 1, 2, 3, 4, 7, 8, 9, 10, 11];
      const opts: core.RopeOptions = { theta: 10000, layout: 'interleaved' };
      const cpu = ([x]: F64[]): F64 => {
        const per = Array.from({ length: B }, (_, b) =>
          ref.rope(ref.slice(x, [b, 0, 0, 0], [b + 1, H, T, D]), pos.slice(b * T, (b + 1) * T), opts),
        );
        return ref.concat(per, 0);
      };
      await check('rope [B,T]', [rand([B, H, T, D], 21)], ([x]) => core.rope(x, i32(pos, [B, T]), opts), cpu);
    });

    it('time-first [B, T, H, D] with per-batch positions, partial rotary', async () => {
      const [B, T, H, D] = [2, 5, 3, 10];
      const pos = [0, 1, 2, 3, 4, 9, 10, 11, 12, 13];
      const opts: core.RopeOptions = { theta: 10000, layout: 'half', rotaryDim: 6, axes: 'bthd' };
      const swap = (x: F64) => ref.permute(x, [0, 2, 1, 3]);
      const cpu = ([x]: F64[]): F64 => {
        const per = Array.from({ length: B }, (_, b) =>
          ref.rope(swap(ref.slice(x, [b, 0, 0, 0], [b + 1, T, H, D])), pos.slice(b * T, (b + 1) * T), opts),
        );
        return swap(ref.concat(per, 0));
      };
      await check('rope bthd', [rand([B, T, H, D], 22)], ([x]) => core.rope(x, i32(pos, [B, T]), opts), cpu);
    });

    it('whole heads read as vec4s: time-first and heads-first, per-batch positions, both layouts, both directions', async () => {
      const [B, T, H] = [2, 5, 3];
      const pos = [0, 1, 2, 3, 4, 9, 10, 11, 12, 13];
      for (const [layout, D] of [
        ['half', 16],
        ['interleaved', 8],
        ['interleaved', 12],
      ] as Array<[core.RopeOptions['layout'], number]>) {
        for (const axes of ['bthd', 'bhtd'] as const) {
          const opts: core.RopeOptions = { theta: 10000, layout, axes };
          const swap = (x: F64) => (axes === 'bthd' ? ref.permute(x, [0, 2, 1, 3]) : x);
          const shape = axes === 'bthd' ? [B, T, H, D] : [B, H, T, D];
          const cpu = ([x]: F64[]): F64 => {
            const per = Array.from({ length: B }, (_, b) => {
              const xb = ref.slice(x, [b, 0, 0, 0], [b + 1, ...shape.slice(1)]);
              return ref.rope(swap(xb), pos.slice(b * T, (b + 1) * T), opts);
            });
            return swap(ref.concat(per, 0));
          };
          // check() compares the output and, by finite differences, the backward rotation.
          await check(
            `rope ${layout} D ${D} ${axes}`,
            [rand(shape, 23)],
            ([x]) => core.rope(x, i32(pos, [B, T]), opts),
            cpu,
          );
        }
      }
    });

    it('with angles from ropeCosSin, as a model passes them to every layer', async () => {
      for (const c of [cases[2], cases[5], cases[6]]) {
        const D = c.shape[3];
        await check(
          `${c.name} cosSin`,
          [rand(c.shape, 23)],
          ([x]) => {
            const pos = i32(c.pos);
            return core.rope(x, pos, { ...c.opts, cosSin: core.ropeCosSin(pos, c.opts, D) });
          },
          ([x]) => ref.rope(x, c.pos, c.opts),
        );
      }
      const [B, H, T, D] = [2, 1, 3, 8];
      const opts: core.RopeOptions = { theta: 10000, layout: 'half', axes: 'bthd' };
      const pos = [5, 6, 7, 0, 1, 2];
      await check(
        'per-batch cosSin',
        [rand([B, T, H, D], 24)],
        ([x]) => {
          const p = i32(pos, [B, T]);
          return core.rope(x, p, { ...opts, cosSin: core.ropeCosSin(p, opts, D) });
        },
        ([x]) =>
          ref.permute(
            ref.concat(
              [0, 1].map((b) =>
                ref.rope(
                  ref.permute(ref.slice(x, [b, 0, 0, 0], [b + 1, T, H, D]), [0, 2, 1, 3]),
                  pos.slice(b * T, (b + 1) * T),
                  opts,
                ),
              ),
              0,
            ),
            [0, 2, 1, 3],
          ),
      );
    });

    it('refuses angles of other positions or another rotary dim', () => {
      core.tidy(() => {
        const x = f32(rand([1, 2, 3, 8], 25));
        const opts: core.RopeOptions = { theta: 10000, layout: 'half' };
        const pos = i32([0, 1, 2]);
        expect(() => core.rope(x, pos, { ...opts, cosSin: core.ropeCosSin(i32([0, 1]), opts, 8) })).toThrow(
          /cosSin must be \[3, 4, 2\]/,
        );
        expect(() =>
          core.rope(x, pos, { ...opts, cosSin: core.ropeCosSin(pos, { ...opts, rotaryDim: 4 }, 8) }),
        ).toThrow(/cosSin must be/);
        expect(() => core.ropeCosSin(pos, { ...opts, rotaryDim: 10 }, 8)).toThrow(/exceeds head dim/);
      });
    });

    it('inverse frequencies match the reference in float64', () => {
      for (const [R, theta, scaling] of [
        [128, 500000, llama3],
        [64, 10000, { type: 'linear', factor: 2 }],
        [6, 10000, undefined],
      ] as const) {
        assertClose(
          core.ropeInvFreq(R, theta, scaling),
          ref.ropeInvFreq(R, theta, scaling),
          1e-15,
          `inv_freq R=${R}`,
        );
      }
    });
  });

  describe('dropout', () => {
    const n = 100_000;
    const p = 0.3;
    const x = F64.full([n], 1.5);

    it('is deterministic per seed, keeps 1-p of the elements and scales them by 1/(1-p)', async () => {
      const [a, b, c, shifted, y] = await read(() => {
        const xt = f32(x);
        const big = f32(F64.full([n + 10], 1.5));
        return [
          core.dropout(xt, p, 42),
          core.dropout(xt, p, 42),
          core.dropout(xt, p, 43),
          core.dropout(big, p, 42, 0),
          core.dropout(xt, p, 42, 10),
        ];
      });
      expect(Array.from(a)).toEqual(Array.from(b));
      const kept = a.filter((v) => v !== 0).length / n;
      // Binomial std is sqrt(p(1-p)/n) ~ 1.4e-3; allow 5 sigma.
      expect(Math.abs(kept - (1 - p))).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
      const scaled = Math.fround(1.5 * Math.fround(1 / (1 - p)));
      expect(a.every((v) => v === 0 || v === scaled)).toBe(true);
      // Another seed: masks disagree on ~2p(1-p) of the elements.
      const differ = a.filter((v, i) => (v === 0) !== (c[i] === 0)).length / n;
      expect(Math.abs(differ - 2 * p * (1 - p))).toBeLessThan(0.01);
      // Counter-based: an offset selects a window of the same stream.
      expect(Array.from(y)).toEqual(Array.from(shifted.subarray(10)));
    });

    it('backward applies the forward mask', async () => {
      const xs = rand([7, 33], 30);
      const up = rand([7, 33], 31);
      const [out, g] = await read(() => {
        const xt = f32(xs, true);
        const y = core.dropout(xt, 0.5, 9, 1000);
        core.backward(y, f32(up));
        return [y, takeGrad(xt)];
      });
      out.forEach((v, i) => {
        expect(g[i]).toBe(v === 0 ? 0 : Math.fround(Math.fround(up.data[i]) * 2));
      });
      expect(out.some((v) => v === 0) && out.some((v) => v !== 0)).toBe(true);
    });

    // 7 x 33 elements take the scalar kernel, 4 x 33 the vec4 one.
    for (const shape of [
      [7, 33],
      [4, 33],
    ])
      it(`with a residual: residual + dropout(x) in one pass, bit for bit, with both gradients, ${shape.join('x')}`, async () => {
        const xs = rand(shape, 32);
        const rs = rand(shape, 33);
        const up = rand(shape, 34);
        const [fused, plain, gx, gr] = await read(() => {
          const xt = f32(xs, true);
          const rt = f32(rs, true);
          const y = core.dropout(xt, 0.5, 11, 500, rt);
          core.backward(y, f32(up));
          const z = core.add(rt, core.dropout(xt, 0.5, 11, 500));
          return [y, z, takeGrad(xt), takeGrad(rt)];
        });
        expect(Array.from(fused)).toEqual(Array.from(plain));
        // x's gradient is the upstream one through the same mask, times 2; the residual's is the upstream one.
        fused.forEach((v, i) => {
          const dropped = v === Math.fround(rs.data[i]);
          expect(gx[i]).toBe(dropped ? 0 : Math.fround(Math.fround(up.data[i]) * 2));
        });
        expect(Array.from(gr)).toEqual(Array.from(Float32Array.from(up.data)));
        // One pass: the dropout's, no add.
        const dev = core.getDevice();
        dev.startProfile();
        await read(() => [core.dropout(f32(xs), 0.5, 11, 500, f32(rs))]);
        expect((await dev.stopProfile()).ops.map((o) => o.kind)).toEqual(['dropout']);
      });

    it('p = 0 returns a view of x; p = 1 gives zeros', async () => {
      const [same, zero, g] = await read(() => {
        const xt = f32(x, true);
        const y = core.dropout(xt, 0, 1);
        expect(y.buffer).toBe(xt.buffer);
        core.backward(core.sum(y));
        return [y, core.dropout(xt, 1, 1), takeGrad(xt)];
      });
      expect(Array.from(same)).toEqual(Array.from(x.toFloat32()));
      expect(zero.every((v) => v === 0)).toBe(true);
      expect(g.every((v) => v === 1)).toBe(true);
    });
  });

  describe('crossEntropy', () => {
    const [N, C] = [13, 37];
    const targets = randInts(N, C, 40);
    targets[2] = -100;
    targets[7] = -100;
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      it(`reduction ${reduction} with ignored targets`, async () => {
        const before = liveStorages();
        await check(
          `crossEntropy ${reduction}`,
          [rand([N, C], 41, 3)],
          ([l]) => core.crossEntropy(l, i32(targets), { reduction }),
          ([l]) => ref.crossEntropy(l, targets, { reduction }),
        );
        expect(liveStorages()).toBe(before);
      });
    }

    it('rows read as vec4s (C a multiple of 4): every reduction, ignored targets, targets at both ends', async () => {
      const C4 = 36;
      const t4 = randInts(N, C4, 45);
      t4[0] = 0;
      t4[1] = C4 - 1;
      t4[4] = -100;
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        await check(
          `crossEntropy vec4 ${reduction}`,
          [rand([N, C4], 46, 3)],
          ([l]) => core.crossEntropy(l, i32(t4), { reduction }),
          ([l]) => ref.crossEntropy(l, t4, { reduction }),
        );
      }
    });

    it('rows that start mid-vec4 (C = 37) and short rows (C = 5): targets at both ends of each row', async () => {
      // 13 rows of 37 start at every offset within a vec4: each row's first and last elements lie
      // outside its whole vec4s. Rows shorter than 8 are read element by element.
      for (const c of [37, 5]) {
        const t = randInts(N, c, 47);
        t[0] = 0;
        t[1] = c - 1;
        t[2] = 0;
        t[3] = c - 1;
        t[5] = -100;
        for (const reduction of ['mean', 'none'] as const) {
          await check(
            `crossEntropy C ${c} ${reduction}`,
            [rand([N, c], 48, 3)],
            ([l]) => core.crossEntropy(l, i32(t), { reduction }),
            ([l]) => ref.crossEntropy(l, t, { reduction }),
          );
        }
      }
    });

    it('custom ignoreIndex and large logits', async () => {
      const t = targets.map((v) => (v === -100 ? 5 : v));
      const logits = ref.add(rand([N, C], 42), 1000);
      await check(
        'crossEntropy ignoreIndex 5',
        [roundToF32(logits)],
        ([l]) => core.crossEntropy(l, i32(t), { ignoreIndex: 5 }),
        ([l]) => ref.crossEntropy(l, t, { ignoreIndex: 5 }),
      );
    });

    it('all targets ignored: mean is NaN, sum is 0', async () => {
      const [mean, sum] = await read(() => {
        const l = f32(rand([3, 4], 43));
        const t = i32([-100, -100, -100]);
        return [core.crossEntropy(l, t), core.crossEntropy(l, t, { reduction: 'sum' })];
      });
      expect(mean[0]).toBeNaN();
      expect(sum[0]).toBe(0);
    });

    it('an out-of-range target gives NaN in its row only', async () => {
      const l = rand([3, 4], 44);
      const [loss, g] = await read(() => {
        const lt = f32(l, true);
        const y = core.crossEntropy(lt, i32([1, 4, 2]), { reduction: 'none' });
        core.backward(y, core.onesLike(y));
        return [y, takeGrad(lt)];
      });
      expect(loss[1]).toBeNaN();
      expect(Array.from(g.subarray(4, 8)).every(Number.isNaN)).toBe(true);
      const good = ref.crossEntropy(l, [1, 0, 2], { reduction: 'none' });
      assertClose([loss[0], loss[2]], [good.data[0], good.data[2]], FWD_TOL, 'valid rows');
    });
  });
});
