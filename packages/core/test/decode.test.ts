/**
 * The single-token decode phases, each run as a kernel of its own on random odd shapes against a
 * float64 reference: matrix-vector products (f32, f16 and bf16 weights, with RMSNorm, SwiGLU and
 * residual variants), attention over a cache (odd head dims and cache lengths, grouped-query
 * heads), rotary + cache write, and the token choice: greedy, and top-k / top-p sampling against
 * a CPU implementation of the same draw.
 */
import { describe, expect, it } from 'vitest';
import { encodeBF16, encodeF16 } from '../src/float-codecs.js';
import { decode, getDevice, Rng, Tensor, tensor } from '../src/node.js';
import { useGpu } from './gpu.js';

useGpu();
const a4 = (n: number) => Math.ceil(n / 4) * 4;

type Binding = [string, string, 'read' | 'read_write', Tensor | GPUTexture];

/**
 * Runs one kernel over P and the given tensors (bound whole, in order: weights..., A, [KC, VC,] S).
 * Shapes live in P, so each phase compiles once for all the cases of a describe block.
 */
async function run(
  bindings: Binding[],
  body: string,
  params: decode.DecodeParams,
  workgroups: [number, number, number],
): Promise<void> {
  const dev = getDevice();
  const wgsl = decode.decodeKernel({
    lanes: decode.subgroupWidth(),
    bindings: bindings.map(([name, type, access]) => ({ name, type, access })),
    body,
  });
  const words = params.data();
  const P = tensor(new Int32Array(words.buffer), [words.length], 'i32');
  new decode.DecodeProgram(dev, [
    {
      key: `test|${wgsl}`,
      wgsl,
      buffers: [P.buffer, ...bindings.map((b) => (b[3] instanceof Tensor ? b[3].buffer : b[3]))],
      workgroups,
    },
  ]).submit(1);
  await dev.sync();
  P.dispose();
}

/** The arena, K and V caches and state, as the cache phases bind them. */
const cacheBindings = (A: Tensor, KC: Tensor, VC: Tensor, S: Tensor): Binding[] => [
  ['A', 'vec4<f32>', 'read_write', A],
  ['KC', 'vec4<f32>', 'read_write', KC],
  ['VC', 'vec4<f32>', 'read_write', VC],
  ['S', 'u32', 'read_write', S],
];

/** State with every row at position `pos[b]` (prompt length 0: the sampler would pick). */
function state(B: number, capacity: number, pos: number[], tok: number[] = []): Tensor {
  const s = new Int32Array(decode.STATE_HEADER + B * (decode.ROW_WORDS + capacity));
  for (let b = 0; b < B; b++) {
    s[decode.STATE_HEADER + b * decode.ROW_WORDS] = tok[b] ?? 0;
    s[decode.STATE_HEADER + b * decode.ROW_WORDS + 1] = pos[b];
  }
  return tensor(s, [s.length], 'i32');
}

const rand = (rng: Rng, n: number) => Float64Array.from({ length: n }, () => rng.uniform() * 2 - 1);

/** Rows of K values padded with zeros to a multiple of 4, as the kernels read weights. */
function padRows(w: Float64Array, K: number): Float64Array {
  const Kp = a4(K);
  const out = new Float64Array((w.length / K) * Kp);
  for (let r = 0; r < w.length / K; r++) out.set(w.subarray(r * K, (r + 1) * K), r * Kp);
  return out;
}

function weightTensor(w: Float64Array, dtype: decode.WeightDType): { t: Tensor; vals: Float64Array } {
  if (dtype === 'f32') {
    const f = Float32Array.from(w);
    return { t: tensor(f, [f.length]), vals: Float64Array.from(f) };
  }
  const bits = dtype === 'bf16' ? encodeBF16(Float32Array.from(w)) : encodeF16(Float32Array.from(w));
  // Packed as u32 words (two halves each), padded to whole vec2<u32> groups.
  const words = new Int32Array(a4(Math.ceil(bits.length / 2)));
  new Uint16Array(words.buffer).set(bits);
  const back = Float64Array.from(
    dtype === 'bf16'
      ? Array.from(bits, (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0])
      : Array.from(bits, (h) => halfToFloat(h)),
  );
  return { t: tensor(words, [words.length], 'i32'), vals: back };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const maxErr = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let e = 0;
  let s = 1e-6;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i] - want[i]));
    s = Math.max(s, Math.abs(want[i]));
  }
  return e / s;
};

describe('decode matvec', () => {
  // gated: the input is silu(x) * x'; flags-off: norm, gate and add present but switched off at runtime.
  // 'f32 texture': the weights in a weight texture (uploadWeightTexture; lavapipe reads them).
  const cases: Array<
    [
      number,
      number,
      decode.WeightDType | 'f32 texture',
      'plain' | 'norm-add' | 'swiglu' | 'gated' | 'flags-off',
    ]
  > = [
    [13, 37, 'f32', 'plain'],
    [13, 37, 'f32 texture', 'plain'],
    [17, 24, 'f32 texture', 'swiglu'],
    [29, 64, 'f32 texture', 'norm-add'],
    [19, 30, 'f32', 'gated'],
    [11, 21, 'f32', 'flags-off'],
    [29, 64, 'f32', 'norm-add'],
    [17, 24, 'bf16', 'swiglu'],
    [33, 7, 'f16', 'norm-add'],
    [9, 40, 'f16', 'plain'],
    [21, 11, 'bf16', 'plain'],
  ];
  for (const [N, K, kind_, kind] of cases) {
    const dtype = kind_ === 'f32 texture' ? 'f32' : kind_;
    const texture = kind_ === 'f32 texture';
    it(`${N}x${K} ${kind_} ${kind} equals the float64 reference for 3 rows`, async () => {
      const rng = new Rng(N * 100 + K);
      const B = 3;
      const xo = 0;
      const yo = a4(K);
      // x, y, the scratch where a normed or gated input is built, x'.
      const so = yo + a4(N);
      const uo = so + a4(K);
      const stride = uo + a4(K);
      const arena = new Float32Array(B * stride);
      const xs = Array.from({ length: B }, () => rand(rng, K));
      const y0 = Array.from({ length: B }, () => rand(rng, N));
      const ups = Array.from({ length: B }, () => rand(rng, K));
      for (let b = 0; b < B; b++) {
        arena.set(Float32Array.from(xs[b]), b * stride + xo);
        arena.set(Float32Array.from(y0[b]), b * stride + yo);
        arena.set(Float32Array.from(ups[b]), b * stride + uo);
      }
      const w0 = weightTensor(padRows(rand(rng, N * K), K), dtype);
      const w1 = weightTensor(padRows(rand(rng, N * K), K), dtype);
      const g = Float32Array.from(padRows(rand(rng, K), K));
      const eps = 1e-5;
      const A = tensor(arena, [arena.length]);
      const G = tensor(g, [g.length]);
      const S = state(B, 1, [0, 0, 0]);
      const type = texture ? 'texture' : decode.weightArrayType(dtype);
      const P = new decode.DecodeParams({ rowStride: stride, batch: B, capacity: 1 });
      const ref = (buf: string): decode.WeightRef => ({ buf, off: P.u32(0), dtype, texture });
      // Texture weights: both matrices in one texture, W1 after W0 (a 4-aligned offset).
      const wt = texture
        ? decode.uploadWeightTexture(getDevice(), Float32Array.from([...w0.vals, ...w1.vals]))
        : null;
      const at1 = texture ? P.u32(w0.vals.length) : P.u32(0);
      const normed = kind === 'norm-add' || kind === 'swiglu' || kind === 'flags-off';
      const phase = decode.matvecPhase({
        w: kind === 'swiglu' ? [ref('W0'), { ...ref(texture ? 'W0' : 'W1'), off: at1 }] : [ref('W0')],
        N: P.u32(N),
        K: P.u32(K),
        x: P.u32(xo),
        y: P.u32(yo),
        mode: kind === 'norm-add' ? 'add' : kind === 'flags-off' ? { addIf: P.u32(0) } : 'set',
        norm: normed
          ? {
              g: { buf: 'G', off: P.u32(0), dtype: 'f32' },
              eps: P.f32(eps),
              when: P.u32(kind === 'flags-off' ? 0 : 1),
            }
          : undefined,
        gated:
          kind === 'gated' || kind === 'flags-off'
            ? { up: P.u32(uo), when: P.u32(kind === 'gated' ? 1 : 0) }
            : undefined,
        scratch: P.u32(so),
      });
      // Auto layouts drop bindings a shader never uses: bind only what this variant reads.
      await run(
        [
          ['W0', type, 'read', wt ? wt.texture : w0.t],
          ...(kind === 'swiglu' && !wt ? [['W1', type, 'read', w1.t] as const] : []),
          ...(normed ? [['G', 'vec4<f32>', 'read', G] as const] : []),
          ['A', 'vec4<f32>', 'read_write', A],
          ['S', 'u32', 'read_write', S],
        ] as Binding[],
        phase,
        P,
        [2, B, 1],
      );
      const out = (await A.data()) as Float32Array;
      for (let b = 0; b < B; b++) {
        let x = xs[b].map((v) => Math.fround(v));
        if (kind === 'gated') x = x.map((v, k) => (v / (1 + Math.exp(-v))) * Math.fround(ups[b][k]));
        if (kind === 'norm-add' || kind === 'swiglu') {
          const ms = x.reduce((s, v) => s + v * v, 0) / K;
          x = x.map((v, k) => (v / Math.sqrt(ms + eps)) * g[k]);
        }
        const dot = (w: Float64Array, n: number) => x.reduce((s, v, k) => s + w[n * a4(K) + k] * v, 0);
        const want = Array.from({ length: N }, (_, n) => {
          if (kind === 'swiglu') {
            const a = dot(w0.vals, n);
            return (a / (1 + Math.exp(-a))) * dot(w1.vals, n);
          }
          return dot(w0.vals, n) + (kind === 'norm-add' ? Math.fround(y0[b][n]) : 0);
        });
        const got = out.subarray(b * stride + yo, b * stride + yo + N);
        expect(maxErr(got, want), `row ${b}`).toBeLessThan(1e-5);
      }
      for (const t of [A, G, S, w0.t, w1.t]) t.dispose();
      wt?.release();
    });
  }
});

describe('decode attention over the cache', () => {
  const cases: Array<[number, number, number, number[]]> = [
    // heads, kv heads, head dim, position of each row
    [4, 2, 7, [0, 12]],
    [6, 3, 5, [30, 3]],
    [3, 3, 16, [9, 1]],
    [8, 1, 9, [17, 0]],
  ];
  for (const [H, Hkv, D, pos] of cases) {
    it(`H=${H} Hkv=${Hkv} D=${D} positions ${pos} equal the float64 reference`, async () => {
      const rng = new Rng(H * 31 + D);
      const B = pos.length;
      const capacity = 37;
      const Dp = a4(D);
      const shape = { heads: H, kvHeads: Hkv, headDim: D, capacity };
      const n = decode.cacheElements(shape, B);
      const k = Float32Array.from(rand(rng, n));
      const v = Float32Array.from(rand(rng, n));
      // The cache's padding lanes are zero, as the decoder keeps them.
      for (let i = 0; i < n; i++) if (i % Dp >= D) k[i] = v[i] = 0;
      const stride = a4(H * D) * 2;
      const arena = new Float32Array(B * stride);
      for (let b = 0; b < B; b++) arena.set(Float32Array.from(rand(rng, H * D)), b * stride);
      const A = tensor(arena, [arena.length]);
      const KC = tensor(k, [n]);
      const VC = tensor(v, [n]);
      const S = state(B, capacity, pos);
      const P = new decode.DecodeParams({ rowStride: stride, batch: B, capacity });
      const phase = decode.attendPhase({
        heads: P.u32(H),
        kvHeads: P.u32(Hkv),
        headDim: D,
        q: P.u32(0),
        out: P.u32(a4(H * D)),
        kc: 'KC',
        vc: 'VC',
        cacheOff: P.u32(0),
      });
      await run(cacheBindings(A, KC, VC, S), phase, P, [2, B, 1]);
      const out = (await A.data()) as Float32Array;
      for (let b = 0; b < B; b++) {
        const want: number[] = [];
        for (let h = 0; h < H; h++) {
          const kh = Math.floor(h / (H / Hkv));
          const cell = (t: number, d: number) => ((b * Hkv + kh) * capacity + t) * Dp + d;
          const q = Array.from({ length: D }, (_, d) => arena[b * stride + h * D + d]);
          const s = Array.from(
            { length: pos[b] + 1 },
            (_, t) => q.reduce((acc, qd, d) => acc + qd * k[cell(t, d)], 0) / Math.sqrt(D),
          );
          const m = Math.max(...s);
          const p = s.map((x) => Math.exp(x - m));
          const z = p.reduce((a, x) => a + x, 0);
          for (let d = 0; d < D; d++) want.push(p.reduce((acc, pt, t) => acc + pt * v[cell(t, d)], 0) / z);
        }
        const got = out.subarray(b * stride + a4(H * D), b * stride + a4(H * D) + H * D);
        expect(maxErr(got, want), `row ${b}`).toBeLessThan(1e-5);
      }
      for (const t of [A, KC, VC, S]) t.dispose();
    });
  }
});

describe('decode rotary + cache write', () => {
  const cases: Array<[number, number, number, number, number[]]> = [
    // heads, kv heads, head dim, rotary dims, position of each row
    [4, 2, 7, 6, [0, 11]],
    [3, 3, 10, 4, [5, 2]],
    [6, 1, 8, 8, [12, 7]],
  ];
  for (const [H, Hkv, D, R, pos] of cases) {
    it(`H=${H} Hkv=${Hkv} D=${D} rotary ${R} at positions ${pos} equals the float64 reference`, async () => {
      const rng = new Rng(H * 7 + D * 3 + R);
      const B = pos.length;
      const capacity = 13;
      const R2 = R / 2;
      const Dp = a4(D);
      // Arena per row: q [H·D], k and v [Hkv·D] back to back.
      const kOff = H * D;
      const vOff = kOff + Hkv * D;
      const stride = a4(vOff + Hkv * D);
      const arena = Float32Array.from(rand(rng, B * stride));
      const inv = Array.from({ length: R2 }, (_, i) => 10000 ** ((-2 * i) / R));
      const table = new Float32Array(capacity * R2 * 2);
      for (let p = 0; p < capacity; p++)
        for (let i = 0; i < R2; i++) {
          table[(p * R2 + i) * 2] = Math.cos(p * inv[i]);
          table[(p * R2 + i) * 2 + 1] = Math.sin(p * inv[i]);
        }
      const shape = { heads: H, kvHeads: Hkv, headDim: D, capacity };
      const n = decode.cacheElements(shape, B);
      const A = tensor(arena.slice(), [arena.length]);
      const T = tensor(table, [table.length]);
      const KC = tensor(new Float32Array(n), [n]);
      const VC = tensor(new Float32Array(n), [n]);
      const S = state(B, capacity, pos);
      const P = new decode.DecodeParams({ rowStride: stride, batch: B, capacity });
      const phase = decode.ropeCachePhase({
        heads: P.u32(H),
        kvHeads: P.u32(Hkv),
        headDim: P.u32(D),
        q: P.u32(0),
        k: P.u32(kOff),
        v: P.u32(vOff),
        rotaryDim: P.u32(R),
        table: { buf: 'T', off: P.u32(0) },
        kc: 'KC',
        vc: 'VC',
        cacheOff: P.u32(0),
      });
      await run([['T', 'vec4<f32>', 'read', T], ...cacheBindings(A, KC, VC, S)], phase, P, [2, B, 1]);
      const gotA = (await A.data()) as Float32Array;
      const gotK = (await KC.data()) as Float32Array;
      const gotV = (await VC.data()) as Float32Array;
      // Rotate-half on pairs (i, i + R/2) of the leading R dims; the rest pass through.
      const rotate = (x: ArrayLike<number>, p: number) =>
        Array.from({ length: D }, (_, d) => {
          if (d >= R) return x[d];
          const i = d % R2;
          const [c, s] = [Math.cos(p * inv[i]), Math.sin(p * inv[i])];
          return d < R2 ? x[i] * c - x[i + R2] * s : x[i + R2] * c + x[i] * s;
        });
      const wantK = new Float64Array(n);
      const wantV = new Float64Array(n);
      for (let b = 0; b < B; b++) {
        const row = arena.subarray(b * stride, (b + 1) * stride);
        const q = Array.from({ length: H }, (_, h) =>
          rotate(row.subarray(h * D, (h + 1) * D), pos[b]),
        ).flat();
        const got = gotA.subarray(b * stride, b * stride + H * D);
        expect(maxErr(got, q), `q of row ${b}`).toBeLessThan(1e-6);
        // k and v themselves are left as they were.
        expect(gotA.subarray(b * stride + kOff, (b + 1) * stride)).toEqual(row.subarray(kOff));
        for (let kh = 0; kh < Hkv; kh++) {
          const k = rotate(row.subarray(kOff + kh * D, kOff + (kh + 1) * D), pos[b]);
          const cell = ((b * Hkv + kh) * capacity + pos[b]) * Dp;
          for (let d = 0; d < D; d++) {
            wantK[cell + d] = k[d];
            wantV[cell + d] = row[vOff + kh * D + d];
          }
        }
      }
      // Every other cache cell (other positions, the padding dims) stays zero.
      expect(maxErr(gotK, wantK)).toBeLessThan(1e-6);
      expect(maxErr(gotV, wantV)).toBeLessThan(1e-6);
      for (const t of [A, T, KC, VC, S]) t.dispose();
    });
  }
});

describe('decode token choice', () => {
  it('greedy takes the first largest logit, past NaN, and advances the row', async () => {
    const V = 45;
    const B = 3;
    const capacity = 8;
    const rows = [
      Array.from({ length: V }, (_, i) => (i === 40 ? 3 : i === 7 ? 3 : 0)),
      Array.from({ length: V }, (_, i) => (i === 2 ? Number.NaN : i === 30 ? 1 : -1)),
      Array.from({ length: V }, (_, i) => -i),
    ];
    const stride = a4(V);
    const arena = new Float32Array(B * stride);
    rows.forEach((r, b) => {
      arena.set(r, b * stride);
    });
    const A2 = tensor(arena, [arena.length]);
    const S = state(B, capacity, [2, 4, 0]);
    const P = new decode.DecodeParams({ rowStride: stride, batch: B, capacity });
    await run(
      [
        ['A', 'vec4<f32>', 'read_write', A2],
        ['S', 'u32', 'read_write', S],
      ],
      decode.samplePhase({ V: P.u32(V), logits: P.u32(0), greedy: true }),
      P,
      [1, B, 1],
    );
    const s = (await S.data()) as Int32Array;
    const row = (b: number) =>
      Array.from(
        s.subarray(
          decode.STATE_HEADER + b * decode.ROW_WORDS,
          decode.STATE_HEADER + b * decode.ROW_WORDS + 2,
        ),
      );
    expect([row(0), row(1), row(2)]).toEqual([
      [7, 3],
      [30, 5],
      [0, 1],
    ]);
    expect(s[decode.historyOffset(B, capacity, 0) + 3]).toBe(7);
    for (const t of [A2, S]) t.dispose();
  });

  /** pcg-based uniform in [0, 1) of (seed, stream, position), as the kernel draws it. */
  const pcg = (v: number) => {
    const st = (Math.imul(v, 747796405) + 2891336453) >>> 0;
    const w = Math.imul(((st >>> ((st >>> 28) + 4)) ^ st) >>> 0, 277803737) >>> 0;
    return ((w >>> 22) ^ w) >>> 0;
  };
  const uniform = (seed: number, stream: number, p: number) =>
    (pcg((pcg((pcg(seed) ^ stream) >>> 0) ^ p) >>> 0) >>> 8) / 16777216;

  /**
   * The draw on the CPU: keep the top-k logits, then the fewest largest that hold top-p of the mass
   * (ties at a cut-off kept), and invert the CDF of the kept weights in id order.
   */
  function sampleRef(logits: number[], topK: number, topP: number, temp: number, u: number): number {
    const mx = Math.max(...logits);
    const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a]);
    let cut = topK > 0 && topK < logits.length ? logits[order[topK - 1]] : -Infinity;
    const w = (x: number, c: number) => (x >= c ? Math.exp((x - mx) / temp) : 0);
    const total = logits.reduce((a, x) => a + w(x, cut), 0);
    if (topP < 1) {
      let mass = 0;
      for (const i of order) {
        if (logits[i] < cut) break;
        mass += w(logits[i], cut);
        if (mass >= topP * total) {
          cut = Math.max(cut, logits[i]);
          break;
        }
      }
    }
    const kept = logits.reduce((a, x) => a + w(x, cut), 0);
    let cum = 0;
    for (const [i, x] of logits.entries()) {
      cum += w(x, cut);
      if (w(x, cut) > 0 && cum > u * kept) return i;
    }
    return order[0];
  }

  const settings: Array<[number, number, number]> = [
    // top-k, top-p, temperature
    [5, 1, 1],
    [0, 0.6, 1],
    [12, 0.9, 0.7],
    [0, 1, 1.5],
    [1, 1, 1],
  ];
  for (const [topK, topP, temp] of settings) {
    it(`top-k ${topK}, top-p ${topP}, temperature ${temp}: the CPU's draw for each of 6 rows`, async () => {
      const V = 37;
      const B = 6;
      const capacity = 16;
      const seed = 1234;
      const rng = new Rng(topK * 100 + Math.round(topP * 10) + temp * 1000);
      const logits = Array.from({ length: B }, () => Array.from(rand(rng, V), (x) => Math.fround(3 * x)));
      const stride = a4(V);
      const arena = new Float32Array(B * stride);
      logits.forEach((l, b) => {
        arena.set(l, b * stride);
      });
      const pos = [3, 9, 0, 14, 6, 1];
      const S = state(B, capacity, pos);
      const words = (await S.data()) as Int32Array;
      const header = new Float32Array(new Int32Array([topK, 0, 0, seed]).buffer);
      header[1] = topP;
      header[2] = 1 / temp;
      words.set(new Int32Array(header.buffer));
      // Stream ids 40, 41, ...: each row's draw depends only on the seed, its stream and position.
      for (let b = 0; b < B; b++) words[decode.STATE_HEADER + b * decode.ROW_WORDS + 4] = 40 + b;
      const S2 = tensor(words, [words.length], 'i32');
      const A2 = tensor(arena, [arena.length]);
      const P = new decode.DecodeParams({ rowStride: stride, batch: B, capacity });
      await run(
        [
          ['A', 'vec4<f32>', 'read_write', A2],
          ['S', 'u32', 'read_write', S2],
        ],
        decode.samplePhase({ V: P.u32(V), logits: P.u32(0), greedy: false }),
        P,
        [1, B, 1],
      );
      const out = (await S2.data()) as Int32Array;
      const got = Array.from({ length: B }, (_, b) => out[decode.STATE_HEADER + b * decode.ROW_WORDS]);
      const want = logits.map((l, b) => sampleRef(l, topK, topP, temp, uniform(seed, 40 + b, pos[b])));
      expect(got).toEqual(want);
      if (topK === 1) expect(got).toEqual(logits.map((l) => l.indexOf(Math.max(...l))));
      // Different draws happen: the rows do not all take their argmax unless top-k is 1.
      else expect(got).not.toEqual(logits.map((l) => l.indexOf(Math.max(...l))));
      for (const t of [A2, S, S2]) t.dispose();
    });
  }
});
