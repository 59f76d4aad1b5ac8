import { describe, expect, it } from 'vitest';
import {
  backward,
  Dropout,
  Embedding,
  getDevice,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  mul,
  noGrad,
  Parameter,
  RMSNorm,
  Rng,
  StateDictError,
  scale,
  sum,
  type Tensor,
  tensor,
  tidy,
  transpose,
} from '../src/node.js';
import { useGpu } from './gpu.js';
import { assertClose, vjpFiniteDiff } from './reference/gradcheck.js';
import { F64, randn, roundToF32 } from './reference/ndarray.js';
import * as ref from './reference/ops.js';

class Attention extends Module {
  q_proj: Linear;
  v_proj: Linear;
  constructor(d: number, rng: Rng) {
    super();
    this.q_proj = new Linear(d, d, { bias: false, rng });
    this.v_proj = new Linear(d, d, { rng });
  }
  forward(x: Tensor): Tensor {
    return this.v_proj.forward(this.q_proj.forward(x));
  }
}

class Block extends Module {
  self_attn: Attention;
  norm: RMSNorm;
  constructor(d: number, rng: Rng) {
    super();
    this.self_attn = new Attention(d, rng);
    this.norm = new RMSNorm(d);
  }
}

class Tiny extends Module {
  embed_tokens: Embedding;
  layers: ModuleList<Block>;
  final_norm: LayerNorm;
  lm_head: Linear;
  constructor(seed: number, d = 4, vocab = 6, nLayers = 2) {
    super();
    const rng = new Rng(seed);
    this.embed_tokens = new Embedding(vocab, d, { rng });
    this.layers = new ModuleList(Array.from({ length: nLayers }, () => new Block(d, rng)));
    this.final_norm = new LayerNorm(d);
    this.lm_head = new Linear(d, vocab, { bias: false, rng });
    this.lm_head.weight = this.embed_tokens.weight; // tied, as GPT-2
  }
}

async function hostDict(
  m: Module,
): Promise<Record<string, { data: Float32Array; shape: readonly number[] }>> {
  const out: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
  for (const [n, t] of Object.entries(m.stateDict()))
    out[n] = { data: (await t.data()) as Float32Array, shape: t.shape };
  return out;
}

describe('nn.Module', () => {
  useGpu();

  it('names nested modules and parameters with dots; a tied parameter is listed once but saved under every name', () => {
    const m = new Tiny(1);
    const mods = m.namedModules().map(([n]) => n);
    expect(mods).toEqual([
      '',
      'embed_tokens',
      'layers',
      'layers.0',
      'layers.0.self_attn',
      'layers.0.self_attn.q_proj',
      'layers.0.self_attn.v_proj',
      'layers.0.norm',
      'layers.1',
      'layers.1.self_attn',
      'layers.1.self_attn.q_proj',
      'layers.1.self_attn.v_proj',
      'layers.1.norm',
      'final_norm',
      'lm_head',
    ]);
    const params = m.namedParameters().map(([n]) => n);
    expect(params).toEqual([
      'embed_tokens.weight',
      'layers.0.self_attn.q_proj.weight',
      'layers.0.self_attn.v_proj.weight',
      'layers.0.self_attn.v_proj.bias',
      'layers.0.norm.weight',
      'layers.1.self_attn.q_proj.weight',
      'layers.1.self_attn.v_proj.weight',
      'layers.1.self_attn.v_proj.bias',
      'layers.1.norm.weight',
      'final_norm.weight',
      'final_norm.bias',
    ]);
    expect(Object.keys(m.stateDict())).toEqual([...params, 'lm_head.weight']);
    expect(m.stateDict()['lm_head.weight']).toBe(m.stateDict()['embed_tokens.weight']);
    expect(m.parameters()).toHaveLength(11);
    expect(m.numParameters()).toBe(6 * 4 + 2 * (16 + 16 + 4 + 4) + 8);
    expect(m.embed_tokens.weight.name).toBe('embed_tokens.weight');
    m.dispose();
  });

  it('round-trips a state dict into a differently initialised model (host data and tensors)', async () => {
    const a = new Tiny(1);
    const b = new Tiny(2);
    const c = new Tiny(3);
    const saved = await hostDict(a);
    expect((await hostDict(b))['layers.0.self_attn.q_proj.weight'].data).not.toEqual(
      saved['layers.0.self_attn.q_proj.weight'].data,
    );
    const keepB = b.layers.at(0).self_attn.q_proj.weight;
    const res = await b.loadStateDict(saved);
    expect(res).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(b.layers.at(0).self_attn.q_proj.weight).toBe(keepB); // loaded in place
    expect(await hostDict(b)).toEqual(saved);
    await c.loadStateDict(a.stateDict());
    expect(await hostDict(c)).toEqual(saved);
    for (const m of [a, b, c]) m.dispose();
  });

  it('loadStateDict reports missing, unexpected and mismatched names and writes nothing on error', async () => {
    const m = new Tiny(1);
    const before = await hostDict(m);
    const dict: Record<string, { data: Float32Array; shape: readonly number[] }> = { ...before };
    delete dict['final_norm.bias'];
    dict['layers.7.mlp.weight'] = { data: new Float32Array(4), shape: [4] };
    dict['layers.0.norm.weight'] = { data: new Float32Array(5), shape: [5] };
    dict['embed_tokens.weight'] = { data: new Float32Array(24).fill(9), shape: [6, 4] };
    dict['lm_head.weight'] = dict['embed_tokens.weight']; // the same tied Parameter
    const err = await m.loadStateDict(dict).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect(e.code).toBe('SHAPE');
    expect(e.missing).toEqual(['final_norm.bias']);
    expect(e.unexpected).toEqual(['layers.7.mlp.weight']);
    expect(e.mismatched).toEqual([{ name: 'layers.0.norm.weight', expected: [4], got: [5] }]);
    expect(e.message).toMatch(/layers\.0\.norm\.weight expected \[4\] got \[5\]/);
    expect(e.message).toMatch(/missing: final_norm\.bias/);
    expect(e.message).toMatch(/unexpected: layers\.7\.mlp\.weight/);
    expect(await hostDict(m)).toEqual(before);
    // Non-strict: missing/unexpected are returned, not thrown; shape mismatches still throw.
    dict['layers.0.norm.weight'] = before['layers.0.norm.weight'];
    const res = await m.loadStateDict(dict, { strict: false });
    expect(res).toEqual({ missingKeys: ['final_norm.bias'], unexpectedKeys: ['layers.7.mlp.weight'] });
    expect([...(await m.embed_tokens.weight.value.data())]).toEqual(new Array(24).fill(9));
    m.dispose();
  });

  it('getSubmodule / setSubmodule replace a layer that forward() then uses', async () => {
    class Doubler extends Module {
      constructor(readonly inner: Linear) {
        super();
      }
      forward(x: Tensor): Tensor {
        return scale(this.inner.forward(x), 2);
      }
    }
    const m = new Tiny(1);
    const attn = m.layers.at(1).self_attn;
    const x = tensor(
      Float32Array.from({ length: 8 }, (_, i) => i - 3),
      [2, 4],
    );
    const before = tidy(() => attn.forward(x));
    const q = m.getSubmodule('layers.1.self_attn.q_proj');
    expect(q).toBe(attn.q_proj);
    const wrapped = new Doubler(q as Linear);
    m.setSubmodule('layers.1.self_attn.q_proj', wrapped);
    expect(attn.q_proj).toBe(wrapped);
    // v_proj is affine: v(2q) = 2·v(q) − b, so compare after removing the bias.
    const after = tidy(() => attn.forward(x));
    const bias = await attn.v_proj.bias!.value.data();
    const b0 = await before.data();
    const expected = (await after.data()).map((v, i) => (v + bias[i % 4]) / 2);
    assertClose(expected, b0, 1e-5, 'wrapped q_proj is used');
    for (const t of [x, before, after]) t.dispose();
    expect(m.namedParameters().map(([n]) => n)).toContain('layers.1.self_attn.q_proj.inner.weight');
    expect(() => m.getSubmodule('layers.5.self_attn')).toThrow(/no submodule "layers\.5\.self_attn"/);
    expect(() => m.setSubmodule('layers.9.x', wrapped)).toThrow(/no submodule/);
    m.setSubmodule('layers.0', new Block(4, new Rng(0)));
    expect(m.layers.length).toBe(2);
    m.dispose();
  });

  it('freeze/unfreeze move parameters between trainable and weights memory', () => {
    const dev = getDevice();
    const m = new Tiny(1);
    const bytes = m.numParameters() * 4;
    const base = dev.memoryReport().live;
    m.freeze();
    expect(m.parameters({ trainableOnly: true })).toHaveLength(0);
    expect(m.embed_tokens.weight.value.requiresGrad).toBe(false);
    const frozen = dev.memoryReport().live;
    expect(frozen.weights - base.weights).toBe(bytes);
    expect(base.trainable - frozen.trainable).toBe(bytes);
    m.layers.at(0).unfreeze();
    expect(m.parameters({ trainableOnly: true }).map((p) => p.name)).toEqual([
      'layers.0.self_attn.q_proj.weight',
      'layers.0.self_attn.v_proj.weight',
      'layers.0.self_attn.v_proj.bias',
      'layers.0.norm.weight',
    ]);
    const before = dev.memoryReport().live.total;
    m.dispose();
    expect(before - dev.memoryReport().live.total).toBe(bytes);
  });

  it('train()/eval() propagate through the tree', () => {
    const m = new Tiny(1);
    m.eval();
    expect(m.namedModules().every(([, x]) => !x.training)).toBe(true);
    m.train();
    expect(m.layers.at(1).norm.training).toBe(true);
    m.dispose();
  });
});

describe('nn layers', () => {
  useGpu();

  it('Linear forward matches a float64 CPU computation, and kaiming/bias init bounds hold', async () => {
    const lin = new Linear(20, 7, { rng: new Rng(5) });
    const w = await lin.weight.value.data();
    const b = await lin.bias!.value.data();
    const bound = 1 / Math.sqrt(20);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...b.map(Math.abs))).toBeLessThanOrEqual(bound);
    const xs = Float32Array.from({ length: 3 * 5 * 20 }, (_, i) => Math.sin(i * 0.37) * 2);
    const y = tidy(() => noGrad(() => lin.forward(tensor(xs, [3, 5, 20]))));
    expect(y.shape).toEqual([3, 5, 7]);
    const expected = ref.add(
      ref.matmul(new F64([3, 5, 20], xs), new F64([7, 20], w), { transB: true }),
      new F64([7], b),
    );
    assertClose(await y.data(), expected, 1e-5, 'Linear');
    y.dispose();
    lin.dispose();
  });

  it('Linear out_in and in_out (Conv1D) give equal results with transposed weights, and equal gradients', async () => {
    const a = new Linear(6, 4, { rng: new Rng(1) });
    const c = new Linear(6, 4, { layout: 'in_out', rng: new Rng(2) });
    expect(c.weight.shape).toEqual([6, 4]);
    await c.loadStateDict({
      weight: tidy(() => noGrad(() => transpose(a.weight.value))),
      bias: a.bias!.value,
    });
    const x = tensor(
      Float32Array.from({ length: 2 * 3 * 6 }, (_, i) => Math.cos(i)),
      [2, 3, 6],
    );
    const [ya, yc] = tidy(() => [a.forward(x), c.forward(x)]);
    assertClose(await yc.data(), await ya.data(), 1e-6, 'in_out vs out_in');
    tidy(() => {
      backward(sum(ya));
      backward(sum(yc));
    });
    const gT = tidy(() => transpose(a.weight.grad!));
    assertClose(await c.weight.grad!.data(), await gT.data(), 1e-6, 'weight grads');
    for (const t of [x, ya, yc, gT]) t.dispose();
    a.dispose();
    c.dispose();
  });

  it('Linear with a residual gives residual + x·Wᵀ + b and its gradients (float64: finite differences, textbook formulas), with no add pass for the residual (nor the bias on the texture path)', async () => {
    const dev = getDevice();
    // [rows, in, out], both layouts, on the buffer kernels and the texture path (which accumulates in its store).
    for (const [rows, inF, outF] of [
      [15, 13, 7],
      [37, 19, 45],
    ])
      for (const layout of ['out_in', 'in_out'] as const)
        for (const textures of ['never', 'always'] as const) {
          dev.matmulTextures = textures;
          const label = `${rows}x${inF}->${outF} ${layout} textures ${textures}`;
          const lin = new Linear(inF, outF, { layout, rng: new Rng(rows + outF) });
          const xs = roundToF32(randn([rows, inF], 1));
          const rs = roundToF32(randn([rows, outF], 2));
          const gs = roundToF32(randn([rows, outF], 3));
          const x = tensor(xs.toFloat32(), [rows, inF]);
          const r = tensor(rs.toFloat32(), [rows, outF]);
          x.requiresGrad = true;
          r.requiresGrad = true;
          dev.startProfile();
          const y = lin.forward(x, r);
          const kinds = (await dev.stopProfile()).ops.map((o) => o.kind);
          // The residual needs no add pass; the bias one, except where the texture product adds it.
          const texturesHere = dev.info.readableStorageTextures && (dev.info.subgroupMinSize ?? 0) >= 8;
          const biasPasses = textures === 'always' && texturesHere ? 0 : 1;
          expect(
            kinds.filter((k) => k === 'binary'),
            label,
          ).toHaveLength(biasPasses);
          const w = new F64(lin.weight.shape, await lin.weight.value.data());
          const b = new F64([outF], await lin.bias!.value.data());
          const f = ([xi, wi, bi, ri]: F64[]) =>
            ref.add(ref.add(ri, ref.matmul(xi, wi, { transB: layout === 'out_in' })), bi);
          assertClose(await y.data(), f([xs, w, b, rs]), 1e-5, `${label}: forward`);
          tidy(() => backward(sum(mul(y, tensor(gs.toFloat32(), [rows, outF])))));
          // Finite differences on the small shape; the textbook gradients (float64) on the larger one.
          const [dx, dw, db, dr] =
            rows < 20
              ? vjpFiniteDiff(f, [xs, w, b, rs], gs)
              : [
                  ref.matmul(gs, w, { transB: layout === 'in_out' }),
                  layout === 'out_in'
                    ? ref.matmul(gs, xs, { transA: true })
                    : ref.matmul(xs, gs, { transA: true }),
                  ref.sum(gs, 0),
                  gs,
                ];
          assertClose(await x.grad!.data(), dx, 1e-4, `${label}: dx`);
          assertClose(await lin.weight.grad!.data(), dw, 1e-4, `${label}: dW`);
          assertClose(await lin.bias!.grad!.data(), db, 1e-4, `${label}: db`);
          assertClose(await r.grad!.data(), dr, 1e-4, `${label}: dresidual`);
          for (const t of [x, r, y, x.grad!, r.grad!]) t.dispose();
          lin.dispose();
        }
    dev.matmulTextures = 'auto';
  });

  it('a frozen Linear computes no weight or bias gradient, only the input gradient', async () => {
    const lin = new Linear(6, 4, { rng: new Rng(3) });
    lin.freeze();
    const x = tensor(
      Float32Array.from({ length: 2 * 3 * 6 }, (_, i) => Math.sin(i)),
      [2, 3, 6],
    );
    x.requiresGrad = true;
    const dev = getDevice();
    dev.startProfile();
    tidy(() => backward(sum(lin.forward(x))));
    const kinds = (await dev.stopProfile()).ops.map((o) => o.kind);
    expect(lin.weight.grad).toBeNull();
    expect(lin.bias?.grad).toBeNull();
    expect(x.grad).not.toBeNull();
    // The bias gradient would be a column reduction of the upstream gradient.
    expect(kinds).not.toContain('reduce_col');
    x.grad?.dispose();
    x.dispose();
    lin.dispose();
  });

  it('Dropout is the identity in eval mode and a reproducible inverted mask in training', async () => {
    const x = tensor(new Float32Array(4000).fill(1), [40, 100]);
    const d = new Dropout(0.25, { seed: 17 });
    d.eval();
    expect(d.forward(x)).toBe(x);
    d.train();
    const y1 = d.forward(x);
    const y2 = d.forward(x);
    const v1 = await y1.data();
    const v2 = await y2.data();
    const kept = v1.filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
    expect(Math.abs(kept.length / 4000 - 0.75)).toBeLessThan(0.03);
    expect(v2).not.toEqual(v1); // the offset advanced
    const again = new Dropout(0.25, { seed: 17 });
    const z = again.forward(x);
    expect(await z.data()).toEqual(v1);
    expect(again.offset).toBe(4000);
    for (const t of [x, y1, y2, z]) t.dispose();
  });

  it('Embedding initialises N(0, std²) and LayerNorm/RMSNorm start as identity affine', async () => {
    const e = new Embedding(200, 50, { std: 0.02, rng: new Rng(8) });
    const w = (await e.weight.value.data()) as Float32Array;
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(std / 0.02 - 1)).toBeLessThan(0.03);
    const ln = new LayerNorm(8, { affine: false });
    expect(ln.parameters()).toHaveLength(0);
    const x = tensor(
      Float32Array.from({ length: 16 }, (_, i) => i * i),
      [2, 8],
    );
    const y = tidy(() => ln.forward(x));
    assertClose(
      await y.data(),
      ref.layerNorm(new F64([2, 8], await x.data()), null, null),
      1e-5,
      'layerNorm',
    );
    const before = getDevice().memoryReport().live.total;
    ln.dispose();
    expect(before - getDevice().memoryReport().live.total).toBe(32); // its constant gamma buffer
    for (const t of [x, y]) t.dispose();
    e.dispose();
  });

  it('a Parameter keeps its tensor alive across tidy and owns its category', () => {
    const p = tidy(() => new Parameter(tensor([1, 2, 3], [3]), { trainable: false }));
    expect(p.value.isDisposed).toBe(false);
    expect(p.value.storage.category).toBe('weights');
    p.trainable = true;
    expect(p.value.storage.category).toBe('trainable');
    expect(p.value.requiresGrad).toBe(true);
    p.dispose();
  });
});
