/**
 * Reader for llama2.c `.bin` checkpoints (karpathy/llama2.c export.py): the legacy version-0 files
 * that run.c loads, and the version-1 files with a 256-byte "ak42" header. Both are raw
 * little-endian f32, every per-layer weight stacked over layers; q/k rows use the interleaved-pair
 * RoPE layout and are converted to HF's rotate-half layout.
 */
import type { BinaryFile } from './file.js';
import { f32View } from './file.js';
import { interleavedToRotateHalf, type LlamaShape, type PlannedTensor } from './hf-llama.js';

export interface Llama2cHeader {
  /** 0: legacy 28-byte header; 1: 256-byte "ak42" header. */
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** The classifier is the token embedding (legacy files flag an unshared one by a negative vocab size). */
  sharedClassifier: boolean;
}

/** "ak42" read as a little-endian u32: the first word of version ≥ 1 files. */
const MAGIC_V1 = 0x616b3432;
const V1_HEADER_BYTES = 256;
const V0_HEADER_BYTES = 28;
/** Guards the size arithmetic against garbage headers; far above any real model. */
const MAX_DIM = 1 << 20;

type Block =
  | 'tok'
  | 'rmsAtt'
  | 'wq'
  | 'wk'
  | 'wv'
  | 'wo'
  | 'rmsFfn'
  | 'w1'
  | 'w2'
  | 'w3'
  | 'rmsFinal'
  | 'freqCis'
  | 'wcls';

/** HF name and the per-layer (or whole) row-major shape of each stored block. */
function blockSpec(h: Llama2cHeader, b: Block): { hf: string; shape: number[]; perLayer: boolean } {
  const headSize = h.dim / h.nHeads;
  const kvDim = h.nKvHeads * headSize;
  const L = (hf: string, shape: number[]) => ({ hf: `model.layers.{i}.${hf}`, shape, perLayer: true });
  switch (b) {
    case 'tok':
      return { hf: 'model.embed_tokens.weight', shape: [h.vocabSize, h.dim], perLayer: false };
    case 'rmsAtt':
      return L('input_layernorm.weight', [h.dim]);
    case 'wq':
      return L('self_attn.q_proj.weight', [h.dim, h.dim]);
    case 'wk':
      return L('self_attn.k_proj.weight', [kvDim, h.dim]);
    case 'wv':
      return L('self_attn.v_proj.weight', [kvDim, h.dim]);
    case 'wo':
      return L('self_attn.o_proj.weight', [h.dim, h.dim]);
    case 'rmsFfn':
      return L('post_attention_layernorm.weight', [h.dim]);
    case 'w1':
      return L('mlp.gate_proj.weight', [h.hiddenDim, h.dim]);
    case 'w2':
      return L('mlp.down_proj.weight', [h.dim, h.hiddenDim]);
    case 'w3':
      return L('mlp.up_proj.weight', [h.hiddenDim, h.dim]);
    case 'rmsFinal':
      return { hf: 'model.norm.weight', shape: [h.dim], perLayer: false };
    case 'freqCis':
      // freq_cis_real then freq_cis_imag, each [seq_len, head_size/2]; recomputed by every runtime.
      return { hf: '', shape: [2, h.seqLen, headSize / 2], perLayer: false };
    case 'wcls':
      return { hf: 'lm_head.weight', shape: [h.vocabSize, h.dim], perLayer: false };
  }
}

/** Storage order of each version (export.py legacy_export / version1_export). */
function blockOrder(h: Llama2cHeader): Block[] {
  const cls: Block[] = h.sharedClassifier ? [] : ['wcls'];
  if (h.version === 0) {
    return [
      'tok',
      'rmsAtt',
      'wq',
      'wk',
      'wv',
      'wo',
      'rmsFfn',
      'w1',
      'w2',
      'w3',
      'rmsFinal',
      'freqCis',
      ...cls,
    ];
  }
  return ['rmsAtt', 'rmsFfn', 'rmsFinal', 'tok', 'wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3', ...cls];
}

async function readHeader(file: BinaryFile): Promise<{ header: Llama2cHeader; headerBytes: number }> {
  if (file.size < V0_HEADER_BYTES) {
    file.fail('TRUNCATED', `${file.size} bytes is shorter than the ${V0_HEADER_BYTES}-byte llama2.c header`);
  }
  const head = await file.readAt(0, Math.min(file.size, V1_HEADER_BYTES));
  const dv = new DataView(head.buffer);
  if (new TextDecoder().decode(head.subarray(0, 4)) === 'GGUF') {
    file.fail('BAD_MAGIC', 'this is a GGUF file, not a llama2.c checkpoint (import it with --from gguf)');
  }
  let version: 0 | 1 = 0;
  let at = 0;
  if (dv.getUint32(0, true) === MAGIC_V1) {
    const v = dv.getInt32(4, true);
    if (v !== 1) {
      file.fail(
        'UNSUPPORTED',
        `llama2.c export version ${v} is not supported (only the fp32 versions 0 and 1; ` +
          're-export with export.py --version 0)',
      );
    }
    if (file.size < V1_HEADER_BYTES) {
      file.fail('TRUNCATED', `${file.size} bytes is shorter than the 256-byte version-1 header`);
    }
    version = 1;
    at = 8;
  }
  const ints = Array.from({ length: 7 }, (_, k) => dv.getInt32(at + 4 * k, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = ints;
  const header: Llama2cHeader = {
    version,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(rawVocab),
    seqLen,
    sharedClassifier: version === 0 ? rawVocab > 0 : head[at + 28] !== 0,
  };
  const desc =
    `header dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} ` +
    `n_kv_heads=${nKvHeads} vocab_size=${rawVocab} seq_len=${seqLen}`;
  const sane =
    ints.every((v, k) => k === 5 || (v > 0 && v <= MAX_DIM)) &&
    rawVocab !== 0 &&
    Math.abs(rawVocab) <= MAX_DIM &&
    nLayers <= 4096 &&
    dim % nHeads === 0 &&
    (dim / nHeads) % 2 === 0 &&
    nKvHeads <= nHeads &&
    nHeads % nKvHeads === 0;
  if (!sane) {
    file.fail(
      'BAD_HEADER',
      `${desc} is not a valid llama2.c checkpoint (need positive sizes, dim divisible by n_heads into an ` +
        'even head size, n_heads divisible by n_kv_heads)',
    );
  }
  if (version === 1 && rawVocab < 0)
    file.fail('BAD_HEADER', `${desc}: negative vocab_size in a version-1 file`);
  return { header, headerBytes: version === 0 ? V0_HEADER_BYTES : V1_HEADER_BYTES };
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export interface Llama2cCheckpoint {
  header: Llama2cHeader;
  shape: LlamaShape;
  /** HF tensors, read from `file` on demand. */
  tensors: PlannedTensor[];
}

/** Parse and fully validate the layout (the file size must match the header exactly). */
export async function readLlama2c(file: BinaryFile): Promise<Llama2cCheckpoint> {
  const { header: h, headerBytes } = await readHeader(file);
  const offsets = new Map<Block, number>();
  let end = headerBytes;
  for (const b of blockOrder(h)) {
    const spec = blockSpec(h, b);
    offsets.set(b, end);
    end += 4 * numel(spec.shape) * (spec.perLayer ? h.nLayers : 1);
  }
  if (end !== file.size) {
    const what =
      `a llama2.c version-${h.version} checkpoint with dim=${h.dim} hidden_dim=${h.hiddenDim} ` +
      `n_layers=${h.nLayers} n_heads=${h.nHeads} n_kv_heads=${h.nKvHeads} vocab_size=${h.vocabSize} ` +
      `seq_len=${h.seqLen} (${h.sharedClassifier ? 'shared' : 'separate'} classifier) is ${end} bytes`;
    file.fail(end > file.size ? 'TRUNCATED' : 'SIZE_MISMATCH', `the file has ${file.size} bytes but ${what}`);
  }
  const headSize = h.dim / h.nHeads;
  const tensors: PlannedTensor[] = [];
  const plan = (b: Block, layer: number) => {
    const spec = blockSpec(h, b);
    const n = numel(spec.shape);
    const offset = (offsets.get(b) as number) + 4 * n * layer;
    const rope = b === 'wq' ? h.nHeads : b === 'wk' ? h.nKvHeads : 0;
    tensors.push({
      name: spec.hf.replace('{i}', String(layer)),
      dtype: 'F32',
      shape: spec.shape,
      async load() {
        const w = f32View(await file.readAt(offset, 4 * n));
        return rope > 0 ? interleavedToRotateHalf(w, rope, h.dim) : w;
      },
    });
  };
  plan('tok', 0);
  const perLayer: Block[] = ['rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w3', 'w2'];
  for (let i = 0; i < h.nLayers; i++) for (const b of perLayer) plan(b, i);
  plan('rmsFinal', 0);
  if (!h.sharedClassifier) plan('wcls', 0);
  return {
    header: h,
    tensors,
    shape: {
      hidden_size: h.dim,
      intermediate_size: h.hiddenDim,
      num_hidden_layers: h.nLayers,
      num_attention_heads: h.nHeads,
      num_key_value_heads: h.nKvHeads,
      head_dim: headSize,
      vocab_size: h.vocabSize,
      max_position_embeddings: h.seqLen,
      // run.c hard-codes both.
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: h.sharedClassifier,
      // llama2.c's tokenizer convention (run.c encode/generate).
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'float32',
    },
  };
}
