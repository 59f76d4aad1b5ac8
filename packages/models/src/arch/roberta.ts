/**
 * RoBERTa: post-LN encoder whose position ids count only non-padding tokens, starting after
 * padding_idx (= pad_token_id); erf GELU; a sequence-classification head on the first token
 * (<s>) and the masked-LM head whose decoder is tied to the word embeddings.
 */
import {
  add,
  addScalar,
  cast,
  Dropout,
  Embedding,
  equal,
  full,
  geluErf,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  matmul,
  mul,
  neg,
  Parameter,
  reshape,
  sliceAxis,
  type Tensor,
  tanh,
  tensor,
  zeros,
} from '@sharelora/core';
import {
  ACTIVATIONS,
  attend,
  checkLength,
  type ModelBuildOptions,
  projectOnto,
  runLayer,
  splitHeads,
  unquantized,
  type WeightInit,
  weightInit,
} from './common.js';
import type {
  CheckpointRules,
  EncoderForwardOptions,
  MaskedLM,
  RobertaConfig,
  SequenceClassifier,
} from './types.js';
import { untiedOutput, VocabEmbedding } from './vocab.js';

/**
 * The modules the RoBERTa models adapt when no LoRA targets are given: the query and value
 * projections, as in the LoRA paper.
 */
export const ROBERTA_LORA_TARGETS: readonly string[] = ['query', 'value'];

/**
 * Position ids from the ids alone: with m = (id != pad), position = pad + m · cumsum(m), so real
 * tokens count 1, 2, ... after padding_idx and padding sits at padding_idx. The cumulative sum is a
 * matmul with an upper-triangular matrix of ones (exact in f32 for any realistic length).
 */
function robertaPositions(inputIds: Tensor, pad: number): Tensor {
  const T = inputIds.shape[1];
  const real = addScalar(neg(equal(cast(inputIds, 'f32'), full([1], pad))), 1);
  const upper = new Float32Array(T * T);
  for (let j = 0; j < T; j++) for (let i = j; i < T; i++) upper[j * T + i] = 1;
  const counts = matmul(real, tensor(upper, [T, T]));
  return cast(addScalar(mul(counts, real), pad), 'i32');
}

export class RobertaEmbeddings extends Module {
  word_embeddings: VocabEmbedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(
    private readonly _config: RobertaConfig,
    w: WeightInit,
  ) {
    super();
    const C = _config.hiddenSize;
    this.word_embeddings = new VocabEmbedding(_config.vocabSize, C, w.dtype);
    this.position_embeddings = new Embedding(_config.maxPositions, C, { ...w, init: false });
    this.token_type_embeddings = new Embedding(_config.typeVocabSize, C, { ...w, init: false });
    this.LayerNorm = new LayerNorm(C, { eps: _config.layerNormEps });
    this.dropout = new Dropout(_config.hiddenDropoutProb, { rng: w.rng });
  }

  forward(inputIds: Tensor, opts: EncoderForwardOptions): Tensor {
    const { padTokenId: pad, maxPositions } = this._config;
    const T = inputIds.shape[1];
    if (!opts.positionIds) checkLength(pad + 1 + T, maxPositions, 'max_position_embeddings');
    const positions = opts.positionIds ?? robertaPositions(inputIds, pad);
    const types = opts.tokenTypeIds ?? zeros(inputIds.shape, 'i32');
    const x = add(
      add(this.word_embeddings.lookup(inputIds), this.position_embeddings.forward(positions)),
      this.token_type_embeddings.forward(types),
    );
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

export class RobertaSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;

  constructor(
    private readonly _config: RobertaConfig,
    w: WeightInit,
  ) {
    super();
    const C = _config.hiddenSize;
    this.query = new Linear(C, C, { ...w, init: false });
    this.key = new Linear(C, C, { ...w, init: false });
    this.value = new Linear(C, C, { ...w, init: false });
  }

  /** attention_probs_dropout_prob is not applied: core's fused attention has no dropout. */
  forward(x: Tensor, mask: Tensor | undefined): Tensor {
    const H = this._config.numHeads;
    const [q, k, v] = [this.query, this.key, this.value].map((l) => splitHeads(l.forward(x), H));
    return attend(q, k, v, { layer: 0, causal: false, keyPaddingMask: mask });
  }
}

/** dense -> dropout -> LayerNorm(· + residual): the output sub-layer after attention and after the MLP. */
export class RobertaOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(inF: number, config: RobertaConfig, w: WeightInit) {
    super();
    this.dense = new Linear(inF, config.hiddenSize, { ...w, init: false });
    this.LayerNorm = new LayerNorm(config.hiddenSize, { eps: config.layerNormEps });
    this.dropout = new Dropout(config.hiddenDropoutProb, { rng: w.rng });
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(projectOnto(this.dense, x, this.dropout, residual));
  }
}

export class RobertaAttention extends Module {
  self: RobertaSelfAttention;
  output: RobertaOutput;

  constructor(config: RobertaConfig, w: WeightInit) {
    super();
    this.self = new RobertaSelfAttention(config, w);
    this.output = new RobertaOutput(config.hiddenSize, config, w);
  }

  forward(x: Tensor, mask: Tensor | undefined): Tensor {
    return this.output.forward(this.self.forward(x, mask), x);
  }
}

export class RobertaIntermediate extends Module {
  dense: Linear;

  constructor(
    private readonly _config: RobertaConfig,
    w: WeightInit,
  ) {
    super();
    this.dense = new Linear(_config.hiddenSize, _config.intermediateSize, { ...w, init: false });
  }

  forward(x: Tensor): Tensor {
    return ACTIVATIONS[this._config.activation](this.dense.forward(x));
  }
}

export class RobertaLayer extends Module {
  attention: RobertaAttention;
  intermediate: RobertaIntermediate;
  output: RobertaOutput;

  constructor(config: RobertaConfig, w: WeightInit) {
    super();
    this.attention = new RobertaAttention(config, w);
    this.intermediate = new RobertaIntermediate(config, w);
    this.output = new RobertaOutput(config.intermediateSize, config, w);
  }

  forward(x: Tensor, mask: Tensor | undefined): Tensor {
    return runLayer(this, x, () => {
      const a = this.attention.forward(x, mask);
      return this.output.forward(this.intermediate.forward(a), a);
    });
  }
}

export class RobertaEncoder extends Module {
  layer: ModuleList<RobertaLayer>;

  constructor(config: RobertaConfig, w: WeightInit) {
    super();
    this.layer = new ModuleList(Array.from({ length: config.numLayers }, () => new RobertaLayer(config, w)));
  }

  forward(x: Tensor, mask: Tensor | undefined): Tensor {
    let h = x;
    for (const l of this.layer) h = l.forward(h, mask);
    return h;
  }
}

/** RobertaModel without the pooler (neither head uses it). */
export class RobertaModel extends Module {
  embeddings: RobertaEmbeddings;
  encoder: RobertaEncoder;

  constructor(config: RobertaConfig, w: WeightInit) {
    super();
    this.embeddings = new RobertaEmbeddings(config, w);
    this.encoder = new RobertaEncoder(config, w);
  }

  /** ids [B, T] -> hidden states [B, T, C]. */
  forward(inputIds: Tensor, opts: EncoderForwardOptions = {}): Tensor {
    return this.encoder.forward(this.embeddings.forward(inputIds, opts), opts.attentionMask);
  }
}

/** Checkpoint rules of both heads; `ownHead` is the head this model has. */
function robertaRules(ownHead: 'lm_head' | 'classifier', tied: boolean): CheckpointRules {
  const otherHead = ownHead === 'lm_head' ? 'classifier' : 'lm_head';
  // The pooler belongs to RobertaModel with add_pooling_layer, which neither head uses.
  const unused = [`${otherHead}\\..*`, 'roberta\\.pooler\\..*'];
  if (ownHead === 'lm_head' && tied) unused.push('lm_head\\.decoder\\.weight');
  return {
    basePrefix: 'roberta.',
    buffers: /(^|\.)embeddings\.(position_ids|token_type_ids)$/,
    // transformers ties lm_head.decoder.bias to lm_head.bias; checkpoints may hold either name.
    aliases: ownHead === 'lm_head' ? { 'lm_head.decoder.bias': 'lm_head.bias' } : {},
    unused: new RegExp(`^(${unused.join('|')})$`),
    newHead: new RegExp(`^${ownHead}\\.`),
  };
}

export class RobertaClassificationHead extends Module {
  dense: Linear;
  dropout: Dropout;
  out_proj: Linear;

  constructor(config: RobertaConfig, w: WeightInit) {
    super();
    this.dense = new Linear(config.hiddenSize, config.hiddenSize, { ...unquantized(w), init: false });
    this.dropout = new Dropout(config.classifierDropout, { rng: w.rng });
    this.out_proj = new Linear(config.hiddenSize, config.numLabels, { ...unquantized(w), init: false });
  }

  /** Hidden states [B, T, C] -> logits [B, num_labels], from the first token (<s>). */
  forward(h: Tensor): Tensor {
    const [B, , C] = h.shape;
    const first = reshape(sliceAxis(h, 1, 0, 1), [B, C]);
    const x = tanh(this.dense.forward(this.dropout.forward(first)));
    return this.out_proj.forward(this.dropout.forward(x));
  }
}

export class RobertaForSequenceClassification extends Module implements SequenceClassifier {
  readonly task = 'sequence-classification';
  readonly hfClass = 'RobertaForSequenceClassification';
  readonly defaultLoraTargets = ROBERTA_LORA_TARGETS;
  readonly checkpointRules: CheckpointRules;
  readonly numLabels: number;
  roberta: RobertaModel;
  classifier: RobertaClassificationHead;

  constructor(
    readonly config: RobertaConfig,
    opts: ModelBuildOptions = {},
  ) {
    super();
    const w = weightInit(opts);
    this.numLabels = config.numLabels;
    this.checkpointRules = robertaRules('classifier', config.tieWordEmbeddings);
    this.roberta = new RobertaModel(config, w);
    this.classifier = new RobertaClassificationHead(config, w);
  }

  forward(inputIds: Tensor, opts: EncoderForwardOptions = {}): Tensor {
    return this.classifier.forward(this.roberta.forward(inputIds, opts));
  }
}

/** dense -> erf GELU -> layer_norm -> x·Eᵀ + bias; E is the word embedding matrix unless untied. */
export class RobertaLMHead extends Module {
  dense: Linear;
  layer_norm: LayerNorm;
  /** Own output matrix, only when tie_word_embeddings is false. */
  decoder: VocabEmbedding | null;
  bias: Parameter;

  constructor(
    config: RobertaConfig,
    private readonly _tied: VocabEmbedding,
    w: WeightInit,
  ) {
    super();
    this.dense = new Linear(config.hiddenSize, config.hiddenSize, { ...unquantized(w), init: false });
    this.layer_norm = new LayerNorm(config.hiddenSize, { eps: config.layerNormEps });
    this.decoder = untiedOutput(config, w.dtype);
    this.bias = new Parameter(zeros([config.vocabSize]));
  }

  forward(h: Tensor): Tensor {
    const x = this.layer_norm.forward(geluErf(this.dense.forward(h)));
    return add((this.decoder ?? this._tied).project(x), this.bias.value);
  }
}

export class RobertaForMaskedLM extends Module implements MaskedLM {
  readonly task = 'masked-lm';
  readonly hfClass = 'RobertaForMaskedLM';
  readonly defaultLoraTargets = ROBERTA_LORA_TARGETS;
  readonly checkpointRules: CheckpointRules;
  roberta: RobertaModel;
  lm_head: RobertaLMHead;

  constructor(
    readonly config: RobertaConfig,
    opts: ModelBuildOptions = {},
  ) {
    super();
    const w = weightInit(opts);
    this.roberta = new RobertaModel(config, w);
    this.lm_head = new RobertaLMHead(config, this.roberta.embeddings.word_embeddings, w);
    this.checkpointRules = robertaRules('lm_head', config.tieWordEmbeddings);
  }

  forward(inputIds: Tensor, opts: EncoderForwardOptions = {}): Tensor {
    return this.lm_head.forward(this.roberta.forward(inputIds, opts));
  }
}
