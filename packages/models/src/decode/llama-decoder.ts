/**
 * A LLaMA decoder built for T = 1: each sequence owns a preallocated slot of a key/value cache
 * written in place, a step is one fused kernel (embedding, every layer, logits, the token choice)
 * with a workgroup per sequence, and the chosen ids stay on the GPU, where the next step reads them.
 * The host submits many steps at once and reads back only the new token ids.
 *
 * The fused step runs each sequence in one workgroup, so it suits small models (it is chosen for
 * up to FUSED_MAX_WEIGHTS weights); larger ones keep the general forward path for now.
 */
import { type Device, decode, getDevice, Linear, ropeInvFreq, type Tensor, zeros } from '@sharelora/core';
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

/** Builds the packed f32 weights: each tensor at a 4-aligned offset. */
class Packer {
  private parts: Array<{ at: number; data: Float32Array }> = [];
  size = 0;
  add(data: Float32Array): number {
    const at = this.size;
    this.parts.push({ at, data });
    this.size = a4(at + data.length);
    return at;
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

/**
 * B sequence slots of `capacity` positions each over one LLaMA model. Rows are (re)started with
 * start(), advanced together by run(), and read with tokens().
 */
export class LlamaDecoder {
  private readonly dev: Device;
  private readonly program: decode.DecodeProgram;
  private readonly buffers: Tensor[] = [];
  private readonly state: Tensor;
  /** Host copy of each row's position, kept in step with the GPU's. */
  readonly positions: number[];

  private constructor(
    readonly model: LlamaForCausalLM,
    readonly batch: number,
    readonly capacity: number,
    greedy: boolean,
    packed: Float32Array,
    offsets: Offsets,
  ) {
    this.dev = getDevice();
    const c = model.config;
    const { hiddenSize: C, numHeads: H, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = c;
    const lanes = decode.subgroupWidth();
    const shape: decode.CacheShape = { heads: H, kvHeads: Hkv, headDim: D, capacity };
    // Arena of each row: x, q, k, v, attention output, MLP hidden, logits.
    const ar = { x: 0, q: 0, k: 0, v: 0, att: 0, h: 0, logits: 0 };
    let at = 0;
    for (const [k, n] of [
      ['x', C],
      ['q', H * D],
      ['k', Hkv * D],
      ['v', Hkv * D],
      ['att', H * D],
      ['h', I],
      ['logits', V],
    ] as const) {
      ar[k] = at;
      at = a4(at + n);
    }
    const rowStride = at;
    const layerCache = decode.cacheElements(shape, batch);
    const W = this.keep(zeros([packed.length]));
    this.dev.write(W.buffer, 0, packed);
    const A = this.keep(zeros([batch * rowStride]));
    const KC = this.keep(zeros([c.numLayers * layerCache]));
    const VC = this.keep(zeros([c.numLayers * layerCache]));
    const words = decode.STATE_HEADER + batch * (decode.ROW_WORDS + capacity);
    this.state = this.keep(zeros([words], 'i32'));
    const o = offsets;
    const wref = (off: string): decode.WeightRef => ({ buf: 'W', off, dtype: 'f32' });
    const lw = (k: keyof LayerOffsets) => wref(`${o.layer[k]}u + l * ${o.layerStride}u`);
    const eps = c.rmsNormEps;
    const cacheOff = `l * ${layerCache}u`;
    const layer = decode.inOrder([
      [
        decode.matvecPhase(
          { w: [lw('q')], N: H * D, K: C, x: ar.x, y: ar.q, mode: 'set', norm: { g: lw('inNorm'), eps } },
          lanes,
        ),
        decode.matvecPhase(
          { w: [lw('k')], N: Hkv * D, K: C, x: ar.x, y: ar.k, mode: 'set', norm: { g: lw('inNorm'), eps } },
          lanes,
        ),
        decode.matvecPhase(
          { w: [lw('v')], N: Hkv * D, K: C, x: ar.x, y: ar.v, mode: 'set', norm: { g: lw('inNorm'), eps } },
          lanes,
        ),
      ].join('\n'),
      decode.ropeCachePhase({
        ...shape,
        q: ar.q,
        k: ar.k,
        v: ar.v,
        rotaryDim: c.rope.rotaryDim,
        table: { buf: 'W', off: `${o.rope}u` },
        kc: 'KC',
        vc: 'VC',
        cacheOff,
      }),
      decode.attendPhase({ ...shape, q: ar.q, out: ar.att, kc: 'KC', vc: 'VC', cacheOff }),
      decode.matvecPhase({ w: [lw('o')], N: C, K: H * D, x: ar.att, y: ar.x, mode: 'add' }, lanes),
      decode.matvecPhase(
        {
          w: [lw('gate'), lw('up')],
          N: I,
          K: C,
          x: ar.x,
          y: ar.h,
          mode: 'set',
          norm: { g: lw('postNorm'), eps },
        },
        lanes,
      ),
      decode.matvecPhase({ w: [lw('down')], N: C, K: I, x: ar.h, y: ar.x, mode: 'add' }, lanes),
    ]);
    const body = decode.inOrder([
      decode.embedPhase({ e: wref(`${o.embed}u`), C, x: ar.x, rows0: 0, rows: V }),
      `for (var l = 0u; l < ${c.numLayers}u; l++) {\n${layer}\nstorageBarrier();\n}`,
      decode.matvecPhase(
        {
          w: [wref(`${o.lmHead}u`)],
          N: V,
          K: C,
          x: ar.x,
          y: ar.logits,
          mode: 'set',
          norm: { g: wref(`${o.finalNorm}u`), eps },
        },
        lanes,
      ),
      decode.samplePhase({ V, logits: ar.logits, B: batch, capacity, greedy }),
    ]);
    const wgsl = decode.decodeKernel({
      lanes,
      rowStride,
      bindings: [
        { name: 'W', type: 'vec4<f32>', access: 'read' },
        { name: 'A', type: 'vec4<f32>', access: 'read_write' },
        { name: 'KC', type: 'vec4<f32>', access: 'read_write' },
        { name: 'VC', type: 'vec4<f32>', access: 'read_write' },
        { name: 'S', type: 'u32', access: 'read_write' },
      ],
      body,
    });
    this.program = new decode.DecodeProgram(this.dev, [
      {
        key: `decode-llama-fused|${wgsl.length}|${hash(wgsl)}`,
        wgsl,
        buffers: [W, A, KC, VC, this.state].map((t) => t.buffer),
        workgroups: [1, batch, 1],
      },
    ]);
    this.positions = new Array<number>(batch).fill(0);
  }

  private keep(t: Tensor): Tensor {
    this.buffers.push(t);
    return t;
  }

  /** Prepares a decoder for `batch` sequences of up to `capacity` positions (prompt + new tokens). */
  static async create(
    model: LlamaForCausalLM,
    opts: { batch: number; capacity: number; greedy: boolean },
  ): Promise<LlamaDecoder> {
    const { packed, offsets } = await packWeights(model, opts.capacity);
    return new LlamaDecoder(model, opts.batch, opts.capacity, opts.greedy, packed, offsets);
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
    this.buffers.length = 0;
  }
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}

interface LayerOffsets {
  inNorm: number;
  q: number;
  k: number;
  v: number;
  o: number;
  postNorm: number;
  gate: number;
  up: number;
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
  const layerOffsets: LayerOffsets[] = [];
  for (const layer of model.model.layers) {
    const a = layer.self_attn;
    const m = layer.mlp;
    const entries: Array<[keyof LayerOffsets, Tensor]> = [
      ['inNorm', layer.input_layernorm.weight.value],
      ['q', a.q_proj.weight.value],
      ['k', a.k_proj.weight.value],
      ['v', a.v_proj.weight.value],
      ['o', a.o_proj.weight.value],
      ['postNorm', layer.post_attention_layernorm.weight.value],
      ['gate', m.gate_proj.weight.value],
      ['up', m.up_proj.weight.value],
      ['down', m.down_proj.weight.value],
    ];
    const off = {} as LayerOffsets;
    for (const [k, t] of entries) off[k] = p.add(await f32(t));
    layerOffsets.push(off);
  }
  const stride = layerOffsets.length > 1 ? layerOffsets[1].inNorm - layerOffsets[0].inNorm : 0;
  const rows = async (blocks: readonly { value: Tensor }[]) => {
    const parts = await Promise.all(blocks.map((b) => f32(b.value)));
    const out = new Float32Array(parts.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of parts) {
      out.set(x, at);
      at += x.length;
    }
    return out;
  };
  const finalNorm = p.add(await f32(model.model.norm.weight.value));
  const embedData = await rows(model.model.embed_tokens.blocks);
  const embed = p.add(embedData);
  const lmHead = model.lm_head ? p.add(await rows(model.lm_head.blocks)) : embed;
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
