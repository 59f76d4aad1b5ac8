import {
  add,
  dequantize,
  embedding,
  type FloatDType,
  getDevice,
  isHalf,
  Linear,
  Module,
  matmulRowBlocks,
  Parameter,
  type QuantizedTensor,
  type Tensor,
  zeros,
} from '@sharelora/core';

/**
 * A [V, D] matrix used as token embedding (lookup), as output projection (x·Wᵀ) or as both (tied).
 * Kernels bind whole operands and a binding may not exceed the adapter's maxStorageBufferBindingSize
 * (128 MiB on lavapipe; GPT-2's and RoBERTa's embeddings are 154 MB, Llama 3's over 1 GB), so the
 * matrix is stored as consecutive row blocks that each fit one binding. One block is listed as
 * `weight`, exactly the checkpoint name; several as `weight.0`, `weight.1`, ... (the loader and
 * saveModel map them to the single checkpoint tensor by rows). Values start at zero: the model is
 * either loaded or passed to initWeights().
 *
 * The blocks may be stored as f16/bf16 (frozen); the output projection and lookups read them as
 * stored. Blocks are sized for f32 whatever the storage, so a half checkpoint's block names and row
 * ranges are those of its f32 load.
 */
export class VocabEmbedding extends Module {
  readonly blockRows: number;
  private readonly _blocks: Parameter[] = [];

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    dtype: FloatDType = 'f32',
  ) {
    super();
    let blockRows = Math.max(1, Math.min(numEmbeddings, Math.floor(getDevice().maxBindingBytes / (dim * 4))));
    // Half blocks of odd width start on whole u32 words only with an even row count (see streamWeights).
    if (isHalf(dtype) && dim % 2 === 1 && blockRows > 1 && blockRows < numEmbeddings)
      blockRows -= blockRows % 2;
    this.blockRows = blockRows;
    for (let r = 0; r < numEmbeddings; r += this.blockRows) {
      const rows = Math.min(this.blockRows, numEmbeddings - r);
      this._blocks.push(new Parameter(zeros([rows, dim], dtype), { trainable: !isHalf(dtype) }));
    }
  }

  /** The row blocks in order; block i holds rows [i·blockRows, i·blockRows + its rows). */
  get blocks(): readonly Parameter[] {
    return this._blocks;
  }

  protected override childEntries(): Array<[string, Parameter]> {
    if (this._blocks.length === 1) return [['weight', this._blocks[0]]];
    return this._blocks.map((p, i) => [`weight.${i}`, p]);
  }

  /** Rows of i32 ids of any shape -> [...ids.shape, D]. */
  lookup(ids: Tensor): Tensor {
    if (this._blocks.length === 1) return embedding(this._blocks[0].value, ids);
    // Each block gathers the ids it holds and a zero row for the others; the parts are summed.
    // Unlike the single-block gather, an id outside [0, V) gives a zero row here rather than NaN.
    let out: Tensor | null = null;
    for (const [i, p] of this._blocks.entries()) {
      const part = embedding(p.value, ids, { offset: i * this.blockRows, outside: 'zero' });
      out = out ? add(out, part) : part;
    }
    return out as Tensor;
  }

  /** The row blocks' tensors in order: W = [W_0; W_1; ...]. */
  get values(): Tensor[] {
    return this._blocks.map((p) => p.value);
  }

  /** x [..., D] -> x·Wᵀ [..., V]. */
  project(x: Tensor): Tensor {
    return matmulRowBlocks(x, this.values);
  }
}

/**
 * A model's own output matrix [V, D], or null when tie_word_embeddings makes the input embedding
 * serve as output projection too.
 */
export function untiedOutput(
  config: { tieWordEmbeddings: boolean; vocabSize: number; hiddenSize: number },
  dtype: FloatDType,
): VocabEmbedding | null {
  return config.tieWordEmbeddings ? null : new VocabEmbedding(config.vocabSize, config.hiddenSize, dtype);
}

/** A tensor as a checkpoint names it, with the parameter(s) holding it (row blocks, in order). */
export interface CheckpointTensor {
  name: string;
  shape: readonly number[];
  blocks: readonly Parameter[];
  /** The layer's quantized weight when the parameter holds its packed codes (see Linear `quantize`). */
  quantized?: QuantizedTensor;
  /** The layer holding `quantized` (a loader may replace its weight by one in another format). */
  layer?: Linear;
}

/**
 * The model's parameters under their checkpoint names: each parameter once (a tied matrix under its
 * first name), a VocabEmbedding's blocks as one `<module>.weight` tensor.
 */
export function checkpointTensors(model: Module): CheckpointTensor[] {
  const owner = new Map<Parameter, [string, VocabEmbedding]>();
  const quantized = new Map<Parameter, Linear>();
  for (const [name, m] of model.namedModules()) {
    if (m instanceof VocabEmbedding) for (const b of m.blocks) owner.set(b, [name, m]);
    if (m instanceof Linear && m.quantized) quantized.set(m.weight, m);
  }
  const out: CheckpointTensor[] = [];
  const listed = new Set<VocabEmbedding>();
  for (const [name, p] of model.namedParameters()) {
    const o = owner.get(p);
    if (!o) {
      const layer = quantized.get(p);
      out.push(
        layer?.quantized
          ? { name, shape: p.shape, blocks: [p], quantized: layer.quantized, layer }
          : { name, shape: p.shape, blocks: [p] },
      );
    } else if (!listed.has(o[1])) {
      listed.add(o[1]);
      const prefix = o[0] ? `${o[0]}.` : '';
      out.push({ name: `${prefix}weight`, shape: [o[1].numEmbeddings, o[1].dim], blocks: o[1].blocks });
    }
  }
  return out;
}

/** Host copy of a checkpoint tensor's values (or gradients; zeros where a block has none), blocks joined. */
export async function readCheckpointTensor(
  t: CheckpointTensor,
  what: 'value' | 'grad' = 'value',
): Promise<Float32Array> {
  const out = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
  if (t.quantized) {
    // A quantized base weight has no gradient; its values are what the kernels decode.
    if (what === 'value') {
      const w = dequantize(t.quantized);
      out.set((await w.data()) as Float32Array);
      w.dispose();
    }
    return out;
  }
  let at = 0;
  for (const p of t.blocks) {
    const src = what === 'value' ? p.value : p.grad;
    if (src) out.set((await src.data()) as Float32Array, at);
    at += p.value.size;
  }
  return out;
}
