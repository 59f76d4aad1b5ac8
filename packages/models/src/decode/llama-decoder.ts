/**
 * A LLaMA decoder built for T = 1: each sequence owns a preallocated slot of a key/value cache
 * written in place, a step is one fused kernel (embedding, every layer, logits, the token choice)
 * with a workgroup per sequence, and the chosen ids stay on the GPU, where the next step reads them.
 * The host submits many steps at once and reads back only the new token ids.
 *
 * The fused step runs each sequence in one workgroup, so it suits small models (it is chosen for
 * up to FUSED_MAX_WEIGHTS weights); larger ones keep the general forward path for now.
 */
import {
  type Device,
  decode,
  dequantize,
  getDevice,
  Linear,
  ropeInvFreq,
  type Tensor,
  zeros,
} from '@sharelora/core';
import type { LlamaForCausalLM } from '../arch/llama.js';
import type { CausalLM } from '../arch/types.js';

/** Most weights (elements) for which the one-workgroup-per-sequence step is used. */
export const FUSED_MAX_WEIGHTS = 4_000_000;

const a4 = (n: number) => Math.ceil(n / 4) * 4;

/** Why this model cannot use the decoder, or null when it can. */
export function decoderUnsupported(model: CausalLM): string | null {
  if (model.config.arch !== 'llama') return `${model.config.arch} models use the forward path`;
  if (decode.subgroupWidth() < 8) return 'the device has no subgroups of 8 or more lanes';
  const m = model as unknown as LlamaForCausalLM;
  const c = model.config;
  if (c.attentionBias || c.mlpBias) return 'projection biases are not supported';
  for (const layer of m.model.layers) {
    const mods = [
      layer.self_attn.q_proj,
      layer.self_attn.k_proj,
      layer.self_attn.v_proj,
      layer.self_attn.o_proj,
    ];
    mods.push(layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj);
    if (!mods.every((l) => l instanceof Linear)) return 'the model has adapter layers (merge them first)';
  }
  if (m.parameters().reduce((n, p) => n + p.value.size, 0) > FUSED_MAX_WEIGHTS)
    return `more than ${FUSED_MAX_WEIGHTS} weights`;
  return null;
}

/** Sampling settings the step reads from the state header. */
export interface DecoderSampling {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** Builds the packed f32 weights: each tensor at a 4-aligned offset, matrix rows padded to 4. */
class Packer {
  private parts: Array<{ at: number; data: Float32Array }> = [];
  size = 0;
  add(data: Float32Array): number {
    const at = this.size;
    this.parts.push({ at, data });
    this.size = a4(at + data.length);
    return at;
  }
  /** A row-major matrix with K columns, each row padded with zeros to a multiple of 4. */
  addMatrix(data: Float32Array, K: number): number {
    const Kp = a4(K);
    if (Kp === K) return this.add(data);
    const rows = data.length / K;
    const out = new Float32Array(rows * Kp);
    for (let r = 0; r < rows; r++) out.set(data.subarray(r * K, (r + 1) * K), r * Kp);
    return this.add(out);
  }
  build(): Float32Array {
    const out = new Float32Array(Math.max(4, this.size));
    for (const p of this.parts) out.set(p.data, p.at);
    return out;
  }
}

async function f32(t: Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

/** A linear layer's weight as f32 values, decoded from its quantization when it has one. */
async function linearWeight(l: Linear): Promise<Float32Array> {
  if (!l.quantized) return f32(l.weight.value);
  const w = dequantize(l.quantized);
  try {
    return await f32(w);
  } finally {
    w.dispose();
  }
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of parts) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

/**
 * B sequence slots of `capacity` positions each over one LLaMA model. Rows are (re)started with
 * start(), advanced together by run(), and read with tokens().
 */
export class LlamaDecoder {
  private readonly dev: Device;
  private readonly program: decode.DecodeProgram;
  private readonly buffers: Tensor[] = [];
  private readonly releaseWeights: () => void;
  private readonly state: Tensor;
  /** Host copy of each row's position, kept in step with the GPU's. */
  readonly positions: number[];

  private constructor(
    readonly model: LlamaForCausalLM,
    readonly batch: number,
    readonly capacity: number,
    greedy: boolean,
    packed: Float32Array,
    o: Offsets,
    weightsIn: 'texture' | 'buffer',
  ) {
    this.dev = getDevice();
    const texture = weightsIn === 'texture';
    const c = model.config;
    const { hiddenSize: C, numHeads: H, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = c;
    const shape: decode.CacheShape = { heads: H, kvHeads: Hkv, headDim: D, capacity };
    // Arena of each row: x, then q, k, v back to back (one product writes all three), the attention
    // output, the MLP's gate and up halves (one product, the up half 4-aligned), the logits and the
    // scratch where a product's normed or gated input is built.
    const sizes = {
      x: C,
      qkv: (H + 2 * Hkv) * D,
      att: H * D,
      h: a4(I) + I,
      logits: V,
      scratch: Math.max(C, I),
    };
    const ar = {} as Record<keyof typeof sizes, number>;
    let rowStride = 0;
    for (const [k, n] of Object.entries(sizes) as Array<[keyof typeof sizes, number]>) {
      ar[k] = rowStride;
      rowStride = a4(rowStride + n);
    }
    const layerCache = decode.cacheElements(shape, batch);
    // Every size and offset but the head dim is a word of P, added in the same order for every model,
    // so that models of one head dim share the kernel's text (and its compiled pipeline).
    const P = new decode.DecodeParams({ rowStride, batch, capacity });
    const n = {
      C: P.u32(C),
      V: P.u32(V),
      H: P.u32(H),
      Hkv: P.u32(Hkv),
      D: P.u32(D),
      rotary: P.u32(c.rope.rotaryDim),
      layers: P.u32(c.numLayers),
      eps: P.f32(c.rmsNormEps),
    };
    const at = {
      x: P.u32(ar.x),
      q: P.u32(ar.qkv),
      k: P.u32(ar.qkv + H * D),
      v: P.u32(ar.qkv + (H + Hkv) * D),
      att: P.u32(ar.att),
      logits: P.u32(ar.logits),
    };
    const stride = P.u32(o.layerStride);
    const cacheOff = `l * ${P.u32(layerCache)}`;
    const heads = { heads: n.H, kvHeads: n.Hkv, headDim: n.D };
    // The step's five matrix-vector products (q/k/v, o, gate/up, down per layer, then the output
    // head) are rows of a table that one copy of the product's code reads at runtime: each copy is
    // seconds of lavapipe compile time. Flags: 1 adds to y, 2 input is SwiGLU of its two halves,
    // 4 RMSNorm of the input, 8 offsets advance per layer.
    const L0 = o.layer;
    // Each row: N, K, x, y, weight, norm weight (read only with flag 4), flags.
    const table = P.table([
      ...[sizes.qkv, C, ar.x, ar.qkv, L0.qkv, L0.inNorm, 4 | 8],
      ...[C, H * D, ar.att, ar.x, L0.o, L0.inNorm, 1 | 8],
      ...[sizes.h, C, ar.x, ar.h, L0.gateUp, L0.postNorm, 4 | 8],
      ...[C, I, ar.h, ar.x, L0.down, L0.inNorm, 1 | 2 | 8],
      ...[V, C, ar.x, ar.logits, o.lmHead, o.finalNorm, 4],
    ]);
    const mv = (j: number) => `P[${table}u + d * 7u + ${j}u]`;
    const flags = mv(6);
    const w = (j: number): decode.WeightRef => ({ buf: 'W', off: `${mv(j)} + lo`, dtype: 'f32', texture });
    const up = P.u32(ar.h + a4(I));
    const body = decode.inOrder([
      decode.embedPhase({
        e: { buf: 'W', off: P.u32(o.embed), dtype: 'f32', texture },
        C: n.C,
        V: n.V,
        x: at.x,
      }),
      `for (var i = 0u; i <= 4u * ${n.layers}; i++) {
  let l = i / 4u;
  let d = select(i % 4u, 4u, i == 4u * ${n.layers});
  let lo = select(0u, l * ${stride}, (${flags} & 8u) != 0u);
  if (d == 1u) {
${decode.inOrder([
  decode.ropeCachePhase({
    ...heads,
    q: at.q,
    k: at.k,
    v: at.v,
    rotaryDim: n.rotary,
    table: { buf: 'W', off: P.u32(o.rope), texture },
    kc: 'KC',
    vc: 'VC',
    cacheOff,
  }),
  decode.attendPhase({
    heads: n.H,
    kvHeads: n.Hkv,
    headDim: D,
    q: at.q,
    out: at.att,
    kc: 'KC',
    vc: 'VC',
    cacheOff,
  }),
])}
  storageBarrier();
  }
${decode.matvecPhase({
  w: [w(4)],
  N: mv(0),
  K: mv(1),
  x: mv(2),
  y: mv(3),
  mode: { addIf: `${flags} & 1u` },
  norm: { g: w(5), eps: n.eps, when: `${flags} & 4u` },
  gated: { up, when: `${flags} & 2u` },
  scratch: P.u32(ar.scratch),
})}
  storageBarrier();
}`,
      decode.samplePhase({ V: n.V, logits: at.logits, greedy }),
    ]);
    const wgsl = decode.decodeKernel({
      lanes: decode.subgroupWidth(),
      bindings: [
        { name: 'W', type: texture ? 'texture' : 'vec4<f32>', access: 'read' },
        { name: 'A', type: 'vec4<f32>', access: 'read_write' },
        { name: 'KC', type: 'vec4<f32>', access: 'read_write' },
        { name: 'VC', type: 'vec4<f32>', access: 'read_write' },
        { name: 'S', type: 'u32', access: 'read_write' },
      ],
      body,
    });
    const params = P.data();
    const Pt = this.keep(zeros([params.length], 'i32'));
    this.dev.write(Pt.buffer, 0, params);
    let W: GPUBuffer | GPUTexture;
    if (texture) {
      const t = decode.uploadWeightTexture(this.dev, packed);
      W = t.texture;
      this.releaseWeights = t.release;
    } else {
      const t = this.keep(zeros([packed.length]));
      this.dev.write(t.buffer, 0, packed);
      W = t.buffer;
      this.releaseWeights = () => {};
    }
    const A = this.keep(zeros([batch * rowStride]));
    const KC = this.keep(zeros([c.numLayers * layerCache]));
    const VC = this.keep(zeros([c.numLayers * layerCache]));
    const words = decode.STATE_HEADER + batch * (decode.ROW_WORDS + capacity);
    this.state = this.keep(zeros([words], 'i32'));
    this.program = new decode.DecodeProgram(this.dev, [
      {
        key: `decode-llama|${wgsl}`,
        wgsl,
        buffers: [Pt.buffer, W, ...[A, KC, VC, this.state].map((t) => t.buffer)],
        workgroups: [1, batch, 1],
      },
    ]);
    this.positions = new Array<number>(batch).fill(0);
  }

  private keep(t: Tensor): Tensor {
    this.buffers.push(t);
    return t;
  }

  /**
   * Prepares a decoder for `batch` sequences of up to `capacity` positions (prompt + new tokens).
   * The weights go into a texture where the device can read storage textures (faster loads on
   * lavapipe), else into a buffer; `weightsIn` picks one (tests compare them).
   */
  static async create(
    model: LlamaForCausalLM,
    opts: { batch: number; capacity: number; greedy: boolean; weightsIn?: 'texture' | 'buffer' },
  ): Promise<LlamaDecoder> {
    const { packed, offsets } = await packWeights(model, opts.capacity);
    const weightsIn = opts.weightsIn ?? (getDevice().info.readableStorageTextures ? 'texture' : 'buffer');
    return new LlamaDecoder(model, opts.batch, opts.capacity, opts.greedy, packed, offsets, weightsIn);
  }

  /** Sets the sampling settings (read by every row after its prompt). */
  setSampling(s: DecoderSampling): void {
    const head = new Uint32Array(decode.STATE_HEADER);
    const f = new Float32Array(head.buffer);
    head[0] = s.topK;
    f[1] = s.topP;
    f[2] = s.temperature > 0 ? 1 / s.temperature : 0;
    head[3] = s.seed >>> 0;
    this.dev.write(this.state.buffer, 0, head);
  }

  /** Starts row `row` on a prompt (at least one token); `stream` keys its random draws. */
  start(row: number, prompt: readonly number[], stream: number): void {
    if (prompt.length === 0 || prompt.length > this.capacity) throw new Error('prompt does not fit the row');
    this.dev.write(
      this.state.buffer,
      4 * (decode.STATE_HEADER + row * decode.ROW_WORDS),
      Uint32Array.from([prompt[0], 0, prompt.length, 0, stream, 0, 0, 0]),
    );
    this.dev.write(
      this.state.buffer,
      4 * decode.historyOffset(this.batch, this.capacity, row),
      Int32Array.from(prompt),
    );
    this.positions[row] = 0;
  }

  /** Stops computing row `row` until it is started again. */
  finish(row: number): void {
    this.dev.write(
      this.state.buffer,
      4 * (decode.STATE_HEADER + row * decode.ROW_WORDS + 3),
      Uint32Array.of(1),
    );
    this.positions[row] = this.capacity;
  }

  /**
   * Runs `steps` steps on every unfinished row and returns, per row, the ids at the positions it
   * advanced to (prompt tokens included), read back in one copy per row.
   */
  async run(steps: number): Promise<number[][]> {
    const spans = this.positions.map((p) => {
      const from = Math.min(p + 1, this.capacity);
      return [from, Math.min(p + steps + 1, this.capacity)] as const;
    });
    const counts = spans.map(([a, b]) => b - a);
    const total = counts.reduce((s, n) => s + n, 0);
    const staging = this.dev.gpu.createBuffer({ size: Math.max(4, 4 * total), usage: 0x1 | 0x8 });
    this.program.submit(steps, (enc) => {
      let at = 0;
      for (const [row, [a]] of spans.entries()) {
        if (counts[row] === 0) continue;
        const h = decode.historyOffset(this.batch, this.capacity, row);
        enc.copyBufferToBuffer(this.state.buffer, 4 * (h + a), staging, 4 * at, 4 * counts[row]);
        at += counts[row];
      }
    });
    try {
      await this.dev.waitFor(staging.mapAsync(0x1));
      const ids = new Int32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      this.dev.throwPendingError();
      let at = 0;
      return counts.map((n, row) => {
        this.positions[row] = Math.min(this.positions[row] + steps, this.capacity);
        const out = Array.from(ids.subarray(at, at + n));
        at += n;
        return out;
      });
    } finally {
      staging.destroy();
    }
  }

  /** Dispatches per step (1: the fused kernel). */
  get dispatchesPerStep(): number {
    return this.program.dispatches;
  }

  dispose(): void {
    for (const t of this.buffers) t.dispose();
    this.releaseWeights();
    this.buffers.length = 0;
  }
}

interface LayerOffsets {
  inNorm: number;
  qkv: number;
  o: number;
  postNorm: number;
  /** Gate rows, zero rows up to a multiple of 4, up rows. */
  gateUp: number;
  down: number;
}

interface Offsets {
  layer: LayerOffsets;
  layerStride: number;
  finalNorm: number;
  lmHead: number;
  embed: number;
  rope: number;
}

/**
 * Every weight as f32 in one buffer: per layer the same layout at a fixed stride (the step loops over
 * layers), then the final norm, output matrix, embedding and the rotary table (cos, sin per position
 * and pair, computed in float64).
 */
async function packWeights(
  model: LlamaForCausalLM,
  capacity: number,
): Promise<{ packed: Float32Array; offsets: Offsets }> {
  const p = new Packer();
  const { hiddenSize: C, intermediateSize: I, numHeads: H, headDim: D } = model.config;
  const layerOffsets: LayerOffsets[] = [];
  for (const layer of model.model.layers) {
    const a = layer.self_attn;
    const m = layer.mlp;
    const qkv = await Promise.all([a.q_proj, a.k_proj, a.v_proj].map(linearWeight));
    const off: LayerOffsets = {
      inNorm: p.add(await f32(layer.input_layernorm.weight.value)),
      qkv: p.addMatrix(concat(qkv), C),
      o: p.addMatrix(await linearWeight(a.o_proj), H * D),
      postNorm: p.add(await f32(layer.post_attention_layernorm.weight.value)),
      gateUp: p.addMatrix(
        concat([
          await linearWeight(m.gate_proj),
          new Float32Array((a4(I) - I) * C),
          await linearWeight(m.up_proj),
        ]),
        C,
      ),
      down: p.addMatrix(await linearWeight(m.down_proj), I),
    };
    layerOffsets.push(off);
  }
  const stride = layerOffsets.length > 1 ? layerOffsets[1].inNorm - layerOffsets[0].inNorm : 0;
  const rows = async (blocks: readonly { value: Tensor }[]) =>
    concat(await Promise.all(blocks.map((b) => f32(b.value))));
  const finalNorm = p.add(await f32(model.model.norm.weight.value));
  const embed = p.addMatrix(await rows(model.model.embed_tokens.blocks), C);
  const lmHead = model.lm_head ? p.addMatrix(await rows(model.lm_head.blocks), C) : embed;
  const r = model.config.rope;
  const inv = ropeInvFreq(r.rotaryDim, r.theta, r.scaling);
  const table = new Float32Array(capacity * inv.length * 2);
  for (let pos = 0; pos < capacity; pos++) {
    for (let i = 0; i < inv.length; i++) {
      table[(pos * inv.length + i) * 2] = Math.cos(pos * inv[i]);
      table[(pos * inv.length + i) * 2 + 1] = Math.sin(pos * inv[i]);
    }
  }
  const rope = p.add(table);
  return {
    packed: p.build(),
    offsets: { layer: layerOffsets[0], layerStride: stride, finalNorm, lmHead, embed, rope },
  };
}
