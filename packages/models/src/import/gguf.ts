/**
 * GGUF (llama.cpp) reader: v2/v3 little-endian files. The header (metadata and tensor infos) is
 * parsed with buffered positioned reads; tensor data is read one tensor at a time on demand.
 */
import {
  dequantizeGgml,
  GGML_LAYOUTS,
  type GgmlFormat,
  ggmlFormatOf,
  ggmlStoredBytes,
} from '@sharelora/core';
import type { BinaryFile } from './file.js';
import {
  type HfLlamaConfig,
  interleavedToRotateHalf,
  type LlamaShape,
  type OutputData,
  type OutputDtype,
  type PlannedTensor,
} from './hf-llama.js';

/** Metadata values: integers and floats as numbers (64-bit integers above 2^53 as bigint). */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the contiguous (innermost) dimension. */
  dims: number[];
  /** Row-major shape (dims reversed), as PyTorch/safetensors write it. */
  shape: number[];
  /** ggml_type id. */
  type: number;
  typeName: string;
  /** Absolute byte offset of the data in the file. */
  offset: number;
}

/** ggml_type ids → names (for messages); only the types in DECODERS can be converted. */
const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  34: 'TQ1_0',
  35: 'TQ2_0',
  39: 'MXFP4',
};

const typeName = (t: number) => GGML_TYPE_NAMES[t] ?? `type ${t}`;

interface Decoder {
  /** Elements per block and bytes per block. */
  block: number;
  blockBytes: number;
  out: OutputDtype;
  decode(bytes: Uint8Array<ArrayBuffer>, n: number): OutputData;
}

const u16 = (b: Uint8Array<ArrayBuffer>, n: number) => new Uint16Array(b.buffer, b.byteOffset, n);

/** F16/BF16 keep their bit patterns (written unchanged); the quantized types dequantise exactly to F32. */
const DECODERS: Record<number, Decoder> = {
  0: { block: 1, blockBytes: 4, out: 'F32', decode: (b, n) => new Float32Array(b.buffer, b.byteOffset, n) },
  1: { block: 1, blockBytes: 2, out: 'F16', decode: u16 },
  30: { block: 1, blockBytes: 2, out: 'BF16', decode: u16 },
  ...Object.fromEntries(
    (Object.keys(GGML_LAYOUTS) as GgmlFormat[]).map((format) => {
      const { typeId, block, blockBytes } = GGML_LAYOUTS[format];
      const decoder: Decoder = {
        block,
        blockBytes,
        out: 'F32',
        decode: (b, n) => dequantizeGgml(format, b, n),
      };
      return [typeId, decoder];
    }),
  ),
};

const SUPPORTED = Object.keys(DECODERS)
  .map((t) => typeName(Number(t)))
  .join(', ');

const GGUF_MAGIC = 'GGUF';
const DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/** Bytes fetched per header read; one read covers most headers. */
const HEADER_CHUNK = 1 << 20;

/**
 * The shortest decimal that rounds to the same f32, i.e. the number the writer meant: an
 * epsilon stored as f32 1e-5 reads back as 1e-5, not 9.999999747378752e-6.
 */
function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(x.toPrecision(digits));
    if (Math.fround(d) === x) return d;
  }
  return x;
}

/** Sequential little-endian reads over a BinaryFile through a buffer refilled on demand. */
class Cursor {
  pos = 0;
  private buf = new Uint8Array(0);
  private dv = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(private readonly file: BinaryFile) {}

  private async need(n: number, what: string): Promise<number> {
    const rel = this.pos - this.bufStart;
    if (rel + n <= this.buf.length) {
      this.pos += n;
      return rel;
    }
    if (this.pos + n > this.file.size) {
      this.file.fail(
        'TRUNCATED',
        `the header ends inside ${what} at byte ${this.pos} (file has ${this.file.size})`,
      );
    }
    this.buf = await this.file.readAt(
      this.pos,
      Math.min(this.file.size - this.pos, Math.max(n, HEADER_CHUNK)),
    );
    this.dv = new DataView(this.buf.buffer);
    this.bufStart = this.pos;
    this.pos += n;
    return 0;
  }

  async u32(what: string): Promise<number> {
    // Await before touching this.dv: need() may replace the buffer.
    const at = await this.need(4, what);
    return this.dv.getUint32(at, true);
  }

  /** u64 as a number; `what` names the field if it exceeds what a file offset can be. */
  async u64(what: string): Promise<number> {
    const at = await this.need(8, what);
    const v = this.dv.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      this.file.fail('BAD_HEADER', `${what} = ${v} is implausibly large`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const len = await this.u64(`the length of ${what}`);
    if (len > this.file.size) this.file.fail('BAD_HEADER', `${what} claims ${len} bytes, more than the file`);
    const at = await this.need(len, what);
    return new TextDecoder().decode(this.buf.subarray(at, at + len));
  }

  /** One scalar of GGUF value type `t` (strings and arrays handled by value()). */
  async scalar(t: number, what: string): Promise<GgufValue> {
    const size = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8][t];
    const at = await this.need(size, what);
    const dv = this.dv;
    switch (t) {
      case 0:
        return dv.getUint8(at);
      case 1:
        return dv.getInt8(at);
      case 2:
        return dv.getUint16(at, true);
      case 3:
        return dv.getInt16(at, true);
      case 4:
        return dv.getUint32(at, true);
      case 5:
        return dv.getInt32(at, true);
      case 6:
        return shortestF32(dv.getFloat32(at, true));
      case 7:
        return dv.getUint8(at) !== 0;
      case 10:
      case 11: {
        const v = t === 10 ? dv.getBigUint64(at, true) : dv.getBigInt64(at, true);
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      default:
        return dv.getFloat64(at, true);
    }
  }

  async value(t: number, what: string): Promise<GgufValue> {
    if (t === 8) return this.string(what);
    if (t === 9) {
      const elem = await this.u32(`${what}'s element type`);
      const count = await this.u64(`${what}'s length`);
      if (count > this.file.size - this.pos)
        this.file.fail('BAD_HEADER', `${what} claims ${count} elements, more than the file holds`);
      const out: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = await this.value(elem, what);
      return out;
    }
    if (!Number.isInteger(t) || t < 0 || t > 12)
      this.file.fail('BAD_HEADER', `${what} has unknown value type ${t}`);
    return this.scalar(t, what);
  }
}

/** An open GGUF file: metadata and tensor infos parsed, tensor data read on demand. */
export class GgufFile {
  private constructor(
    readonly file: BinaryFile,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, GgufValue>,
    readonly tensors: ReadonlyMap<string, GgufTensorInfo>,
  ) {}

  static async read(file: BinaryFile): Promise<GgufFile> {
    const c = new Cursor(file);
    if (file.size < 4 || new TextDecoder().decode(await file.readAt(0, 4)) !== GGUF_MAGIC) {
      file.fail('BAD_MAGIC', 'not a GGUF file (it does not start with "GGUF")');
    }
    c.pos = 4;
    const version = await c.u32('the version');
    if (version !== 2 && version !== 3) {
      const swapped =
        (((version & 0xff) << 24) |
          ((version & 0xff00) << 8) |
          ((version >>> 8) & 0xff00) |
          (version >>> 24)) >>>
        0;
      file.fail(
        'UNSUPPORTED',
        swapped === 2 || swapped === 3
          ? 'big-endian GGUF files are not supported'
          : version === 1
            ? 'GGUF version 1 (a 2023 draft) is not supported; re-convert with a current llama.cpp'
            : `GGUF version ${version} is not supported (only 2 and 3)`,
      );
    }
    const tensorCount = await c.u64('the tensor count');
    const kvCount = await c.u64('the metadata count');
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = await c.string(`metadata key ${i}`);
      const t = await c.u32(`the type of ${key}`);
      metadata.set(key, await c.value(t, `metadata "${key}"`));
    }
    const alignment = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
    if (typeof alignment !== 'number' || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
      file.fail('BAD_HEADER', `general.alignment ${String(alignment)} is not a power of two`);
    }
    const infos: Omit<GgufTensorInfo, 'offset'>[] = [];
    const relOffsets: number[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = await c.string(`tensor name ${i}`);
      const nDims = await c.u32(`the rank of tensor "${name}"`);
      if (nDims > MAX_DIMS)
        file.fail('BAD_HEADER', `tensor "${name}" has ${nDims} dimensions (at most ${MAX_DIMS})`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(await c.u64(`a dimension of tensor "${name}"`));
      const type = await c.u32(`the type of tensor "${name}"`);
      relOffsets.push(await c.u64(`the offset of tensor "${name}"`));
      infos.push({ name, dims, shape: [...dims].reverse(), type, typeName: typeName(type) });
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensorInfo>();
    infos.forEach((info, i) => {
      const offset = dataStart + relOffsets[i];
      if (tensors.has(info.name)) file.fail('BAD_HEADER', `tensor "${info.name}" appears twice`);
      if (relOffsets[i] % alignment !== 0) {
        file.fail(
          'BAD_HEADER',
          `tensor "${info.name}" offset ${relOffsets[i]} is not a multiple of ${alignment}`,
        );
      }
      // Extents are checkable only for the types we decode; others are refused when read.
      const dec = DECODERS[info.type];
      if (dec !== undefined) {
        const bytes = tensorBytes(info, dec, file);
        if (offset + bytes > file.size) {
          file.fail(
            'TRUNCATED',
            `tensor "${info.name}" needs bytes ${offset}..${offset + bytes} but the file has ${file.size}`,
          );
        }
      }
      tensors.set(info.name, { ...info, offset });
    });
    return new GgufFile(file, version, metadata, tensors);
  }

  /** One tensor's bytes as stored. */
  async readRaw(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const info = this.tensors.get(name);
    if (info === undefined) return this.file.fail('BAD_HEADER', `no tensor "${name}"`);
    return this.file.readAt(info.offset, tensorBytes(info, decoderFor(info, this.file), this.file));
  }

  /** Decode one tensor: F32, F16 and BF16 as stored, Q8_0/Q4_0/Q4_K/Q6_K dequantised to F32. */
  async readTensor(name: string): Promise<{ dtype: OutputDtype; shape: number[]; data: OutputData }> {
    const info = this.tensors.get(name);
    if (info === undefined) return this.file.fail('BAD_HEADER', `no tensor "${name}"`);
    const dec = decoderFor(info, this.file);
    const n = info.dims.reduce((a, b) => a * b, 1);
    return { dtype: dec.out, shape: info.shape, data: dec.decode(await this.readRaw(name), n) };
  }
}

function decoderFor(info: GgufTensorInfo, file: BinaryFile): Decoder {
  const dec = DECODERS[info.type];
  if (dec === undefined) {
    file.fail(
      'UNSUPPORTED',
      `tensor "${info.name}" has type ${info.typeName}, which cannot be converted (supported: ${SUPPORTED}); ` +
        're-convert the model with llama.cpp convert_hf_to_gguf.py --outtype f16, bf16 or q8_0',
    );
  }
  return dec;
}

function tensorBytes(info: Omit<GgufTensorInfo, 'offset'>, dec: Decoder, file: BinaryFile): number {
  const n = info.dims.reduce((a, b) => a * b, 1);
  if ((info.dims[0] ?? 1) % dec.block !== 0) {
    file.fail(
      'BAD_HEADER',
      `tensor "${info.name}" (${info.typeName}) has a row of ${info.dims[0]}, not a multiple of ${dec.block}`,
    );
  }
  return (n / dec.block) * dec.blockBytes;
}

// ---------------------------------------------------------------------------------------------
// LLaMA architecture → HF
// ---------------------------------------------------------------------------------------------

/** llama.cpp's per-layer tensor names → HF's (under model.layers.{i}.). */
const LAYER_TENSORS: Record<string, string> = {
  attn_norm: 'input_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
};

export interface GgufLlama {
  shape: LlamaShape;
  tensors: PlannedTensor[];
  /** Block weights kept in their llama.cpp type, counted by type. */
  quantized: Record<string, number>;
}

/** The transformer blocks' linear weights: the ones kept in their llama.cpp type. */
const BLOCK_LINEARS = new Set([
  'attn_q',
  'attn_k',
  'attn_v',
  'attn_output',
  'ffn_gate',
  'ffn_up',
  'ffn_down',
]);

/**
 * The checkpoint key naming the llama.cpp type of block weight `key` (a U8 [1] tensor holding the
 * GGUF type id) in a directory whose config.json has {@link GGUF_QUANTIZATION_CONFIG}.
 */
export const ggmlTypeKey = (key: string) => key + GGML_TYPE_SUFFIX;

/** What {@link ggmlTypeKey} appends to a weight's key. */
export const GGML_TYPE_SUFFIX = '.ggml_type';

/**
 * config.json's `quantization_config` for a directory whose block weights are llama.cpp blocks as
 * the GGUF stored them: `<w>` U8 [rows, bytes per row] and `<w>.ggml_type`.
 */
export const GGUF_QUANTIZATION_CONFIG = { quant_method: 'gguf' } as const;

/** Options of {@link ggufToLlama}. */
export interface GgufToLlamaOptions {
  /**
   * Decode Q8_0/Q4_0/Q4_K/Q6_K block weights to F32 instead of keeping their blocks as stored
   * (embeddings, norms and the output layer are decoded either way).
   */
  dequantize?: boolean;
}

/**
 * Map a llama-architecture GGUF onto HF LLaMA: hyperparameters from `llama.*`, tensors renamed,
 * q/k rows returned from llama.cpp's interleaved RoPE layout to HF's rotate-half layout, every
 * shape checked against the hyperparameters.
 */
export function ggufToLlama(g: GgufFile, opts: GgufToLlamaOptions = {}): GgufLlama {
  const fail = (code: 'BAD_HEADER' | 'UNSUPPORTED', detail: string): never => g.file.fail(code, detail);
  const arch = g.metadata.get('general.architecture');
  if (arch === undefined) fail('BAD_HEADER', 'general.architecture is missing');
  if (arch !== 'llama') fail('UNSUPPORTED', `architecture "${String(arch)}" is not supported (only "llama")`);
  const num = (key: string, fallback?: number): number => {
    const v = g.metadata.get(`llama.${key}`);
    if (v === undefined && fallback !== undefined) return fallback;
    if (v === undefined) return fail('BAD_HEADER', `llama.${key} is missing`);
    if (Array.isArray(v))
      return fail('UNSUPPORTED', `llama.${key} varies per layer, which HF LLaMA cannot express`);
    if (typeof v !== 'number' || !(v > 0))
      return fail('BAD_HEADER', `llama.${key} = ${String(v)} is not a positive number`);
    return v;
  };
  const dim = num('embedding_length');
  const nLayers = num('block_count');
  const nHeads = num('attention.head_count');
  const nKv = num('attention.head_count_kv', nHeads);
  const headDim = num('attention.key_length', dim / nHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || nHeads % nKv !== 0) {
    fail(
      'BAD_HEADER',
      `head size ${headDim} (embedding ${dim} / ${nHeads} heads) or kv heads ${nKv} is invalid`,
    );
  }
  if (num('attention.value_length', headDim) !== headDim)
    fail('UNSUPPORTED', 'value head size differs from key head size');
  if (num('rope.dimension_count', headDim) !== headDim) {
    fail(
      'UNSUPPORTED',
      `rope.dimension_count ${num('rope.dimension_count')} < head size ${headDim} (partial rotary)`,
    );
  }
  const experts = g.metadata.get('llama.expert_count');
  if (typeof experts === 'number' && experts > 0)
    fail('UNSUPPORTED', `mixture-of-experts (${experts} experts)`);
  const scaling = g.metadata.get('llama.rope.scaling.type');
  let ropeScaling: HfLlamaConfig['rope_scaling'] = null;
  if (scaling === 'linear') ropeScaling = { rope_type: 'linear', factor: num('rope.scaling.factor') };
  else if (scaling !== undefined && scaling !== 'none')
    fail('UNSUPPORTED', `rope scaling "${String(scaling)}"`);
  if (g.tensors.has('rope_freqs.weight')) {
    fail(
      'UNSUPPORTED',
      'rope_freqs.weight (Llama 3.1-style rope scaling factors) cannot be mapped to rope_scaling',
    );
  }

  const embed =
    g.tensors.get('token_embd.weight') ?? fail('BAD_HEADER', 'tensor token_embd.weight is missing');
  const vocab = embed.shape[0];
  const tied = !g.tensors.has('output.weight');
  const ffn = num('feed_forward_length');
  const q = nHeads * headDim;
  const kv = nKv * headDim;
  const expected = new Map<string, { hf: string; shape: number[]; ropeHeads: number; linear: boolean }>();
  const expect = (gg: string, hf: string, shape: number[], ropeHeads = 0, linear = false) =>
    expected.set(gg, { hf, shape, ropeHeads, linear });
  expect('token_embd.weight', 'model.embed_tokens.weight', [vocab, dim]);
  const layerShapes: Record<string, number[]> = {
    attn_norm: [dim],
    attn_q: [q, dim],
    attn_k: [kv, dim],
    attn_v: [kv, dim],
    attn_output: [dim, q],
    ffn_norm: [dim],
    ffn_gate: [ffn, dim],
    ffn_up: [ffn, dim],
    ffn_down: [dim, ffn],
  };
  for (let i = 0; i < nLayers; i++) {
    for (const [gg, hf] of Object.entries(LAYER_TENSORS)) {
      const rope = gg === 'attn_q' ? nHeads : gg === 'attn_k' ? nKv : 0;
      expect(
        `blk.${i}.${gg}.weight`,
        `model.layers.${i}.${hf}.weight`,
        layerShapes[gg],
        rope,
        BLOCK_LINEARS.has(gg),
      );
    }
  }
  expect('output_norm.weight', 'model.norm.weight', [dim]);
  if (!tied) expect('output.weight', 'lm_head.weight', [vocab, dim]);

  for (const name of g.tensors.keys()) {
    // Old converters stored per-layer RoPE tables; HF recomputes them (like rotary_emb.inv_freq).
    if (!expected.has(name) && !name.endsWith('.attn_rot_embd')) {
      fail('UNSUPPORTED', `tensor "${name}" has no HF LLaMA counterpart`);
    }
  }
  const tensors: PlannedTensor[] = [];
  const quantized: Record<string, number> = {};
  for (const [gg, { hf, shape, ropeHeads, linear }] of expected) {
    const info = g.tensors.get(gg) ?? fail('BAD_HEADER', `tensor "${gg}" is missing`);
    if (info.shape.join(',') !== shape.join(',')) {
      fail('BAD_HEADER', `tensor "${gg}" has shape [${info.shape}] but the hyperparameters need [${shape}]`);
    }
    const dec = decoderFor(info, g.file);
    const kept = linear && !opts.dequantize ? ggmlFormatOf(info.type) : undefined;
    if (kept) {
      quantized[kept] = (quantized[kept] ?? 0) + 1;
      // Whole rows of blocks move with the RoPE row permutation.
      const rowBytes = ggmlStoredBytes(kept, shape[1]);
      tensors.push(
        {
          name: hf,
          dtype: 'U8',
          shape: [shape[0], rowBytes],
          numel: shape[0] * shape[1],
          async load() {
            const bytes = await g.readRaw(gg);
            return ropeHeads > 0 ? interleavedToRotateHalf(bytes, ropeHeads, rowBytes) : bytes;
          },
        },
        {
          name: ggmlTypeKey(hf),
          dtype: 'U8',
          shape: [1],
          numel: 0,
          load: async () => Uint8Array.of(info.type),
        },
      );
      continue;
    }
    tensors.push({
      name: hf,
      dtype: dec.out,
      shape,
      async load() {
        const { data } = await g.readTensor(gg);
        return ropeHeads > 0 ? interleavedToRotateHalf(data, ropeHeads, dim) : data;
      },
    });
  }
  const tokens = g.metadata.get('tokenizer.ggml.tokens');
  if (Array.isArray(tokens) && tokens.length !== vocab) {
    fail('BAD_HEADER', `the tokenizer has ${tokens.length} tokens but token_embd has ${vocab} rows`);
  }
  const tokenId = (key: string, fallback: number) => {
    const v = g.metadata.get(`tokenizer.ggml.${key}`);
    return typeof v === 'number' ? v : fallback;
  };
  const embedDtype = tensors[0].dtype;
  return {
    tensors,
    quantized,
    shape: {
      hidden_size: dim,
      intermediate_size: ffn,
      num_hidden_layers: nLayers,
      num_attention_heads: nHeads,
      num_key_value_heads: nKv,
      head_dim: headDim,
      vocab_size: vocab,
      max_position_embeddings: num('context_length'),
      rms_norm_eps: num('attention.layer_norm_rms_epsilon'),
      rope_theta: num('rope.freq_base', 10000),
      rope_scaling: ropeScaling,
      tie_word_embeddings: tied,
      bos_token_id: tokenId('bos_token_id', 1),
      eos_token_id: tokenId('eos_token_id', 2),
      torch_dtype: embedDtype === 'F16' ? 'float16' : embedDtype === 'BF16' ? 'bfloat16' : 'float32',
    },
  };
}
