/**
 * GPT-2 (GPT2LMHeadModel): learned positions, pre-LN blocks, Conv1D projections stored [in, out],
 * output matrix tied to the token embedding unless tie_word_embeddings is false.
 */
import { add, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, type Tensor } from '@sharelora/core';
import {
  ACTIVATIONS,
  type AttentionContext,
  attendPacked,
  causalLmRules,
  checkLength,
  defaultPositions,
  keepPositions,
  type ModelBuildOptions,
  projectOnto,
  runLayer,
  type WeightInit,
  weightInit,
} from './common.js';
import type { CausalLM, CausalLMForwardOptions, CheckpointRules, Gpt2Config } from './types.js';
import { untiedOutput, VocabEmbedding } from './vocab.js';

/**
 * GPT-2's default LoRA targets: the q and v parts of the fused c_attn, as in the LoRA and ShareLoRA
 * papers (`c_attn` whole would also adapt k).
 */
export const GPT2_LORA_TARGETS: readonly string[] = ['c_attn[q,v]'];

type Ctx = Omit<AttentionContext, 'layer' | 'scale'>;

const conv1d = (inF: number, outF: number, w: WeightInit) =>
  new Linear(inF, outF, { ...w, layout: 'in_out', init: false });

export class GPT2Attention extends Module {
  c_attn: Linear;
  c_proj: Linear;
  resid_dropout: Dropout;

  constructor(
    private readonly _config: Gpt2Config,
    private readonly _layer: number,
    w: WeightInit,
  ) {
    super();
    const C = _config.hiddenSize;
    this.c_attn = conv1d(C, 3 * C, w);
    this.c_proj = conv1d(C, C, w);
    this.resid_dropout = new Dropout(_config.residPdrop, { rng: w.rng });
  }

  /** Dropout on the attention probabilities (attn_pdrop) is not applied: core's fused attention has none. */
  /** residual + the attention output. */
  forward(x: Tensor, ctx: Ctx, residual: Tensor): Tensor {
    const { hiddenSize: C, numHeads: H } = this._config;
    const qkv = this.c_attn.forward(x);
    let scale = this._config.scaleAttnWeights ? 1 / Math.sqrt(C / H) : 1;
    if (this._config.scaleAttnByInverseLayerIdx) scale /= this._layer + 1;
    const y = attendPacked(qkv, H, { ...ctx, layer: this._layer, scale });
    return projectOnto(this.c_proj, y, this.resid_dropout, residual);
  }
}

export class GPT2MLP extends Module {
  c_fc: Linear;
  c_proj: Linear;
  dropout: Dropout;

  constructor(
    private readonly _config: Gpt2Config,
    w: WeightInit,
  ) {
    super();
    this.c_fc = conv1d(_config.hiddenSize, _config.intermediateSize, w);
    this.c_proj = conv1d(_config.intermediateSize, _config.hiddenSize, w);
    this.dropout = new Dropout(_config.residPdrop, { rng: w.rng });
  }

  /** residual + the MLP output. */
  forward(x: Tensor, residual: Tensor): Tensor {
    const act = ACTIVATIONS[this._config.activation];
    return projectOnto(this.c_proj, act(this.c_fc.forward(x)), this.dropout, residual);
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(config: Gpt2Config, layer: number, w: WeightInit) {
    super();
    this.ln_1 = new LayerNorm(config.hiddenSize, { eps: config.layerNormEps });
    this.attn = new GPT2Attention(config, layer, w);
    this.ln_2 = new LayerNorm(config.hiddenSize, { eps: config.layerNormEps });
    this.mlp = new GPT2MLP(config, w);
  }

  forward(x: Tensor, ctx: Ctx): Tensor {
    return runLayer(this, x, () => {
      const h = this.attn.forward(this.ln_1.forward(x), ctx, x);
      return this.mlp.forward(this.ln_2.forward(h), h);
    });
  }
}

export class GPT2Model extends Module {
  wte: VocabEmbedding;
  wpe: Embedding;
  drop: Dropout;
  h: ModuleList<GPT2Block>;
  ln_f: LayerNorm;

  constructor(
    private readonly _config: Gpt2Config,
    w: WeightInit,
  ) {
    super();
    const C = _config.hiddenSize;
    this.wte = new VocabEmbedding(_config.vocabSize, C, w.dtype);
    this.wpe = new Embedding(_config.maxPositions, C, { ...w, init: false });
    this.drop = new Dropout(_config.embdPdrop, { rng: w.rng });
    this.h = new ModuleList(
      Array.from({ length: _config.numLayers }, (_, i) => new GPT2Block(_config, i, w)),
    );
    this.ln_f = new LayerNorm(C, { eps: _config.layerNormEps });
  }

  /** ids [B, T] -> final hidden states [B, T, C]. */
  forward(inputIds: Tensor, opts: CausalLMForwardOptions = {}): Tensor {
    const T = inputIds.shape[1];
    const past = opts.cache?.length ?? 0;
    if (!opts.positionIds) checkLength(past + T, this._config.maxPositions, 'n_positions');
    const positions = opts.positionIds ?? defaultPositions(past, T);
    let x = this.drop.forward(add(this.wte.lookup(inputIds), this.wpe.forward(positions)));
    const ctx: Ctx = { causal: true, keyPaddingMask: opts.attentionMask, cache: opts.cache };
    for (const block of this.h) x = block.forward(x, ctx);
    return this.ln_f.forward(x);
  }
}

export class GPT2LMHeadModel extends Module implements CausalLM {
  readonly task = 'causal-lm';
  readonly hfClass = 'GPT2LMHeadModel';
  readonly defaultLoraTargets = GPT2_LORA_TARGETS;
  readonly checkpointRules: CheckpointRules;
  transformer: GPT2Model;
  /** Only when tie_word_embeddings is false; otherwise the output matrix is transformer.wte. */
  lm_head: VocabEmbedding | null;

  constructor(
    readonly config: Gpt2Config,
    opts: ModelBuildOptions = {},
  ) {
    super();
    const w = weightInit(opts);
    this.transformer = new GPT2Model(config, w);
    this.lm_head = untiedOutput(config, w.dtype);
    // The causal-mask buffers older transformers versions saved with each attention layer.
    this.checkpointRules = causalLmRules(
      'transformer.',
      /(^|\.)attn\.(bias|masked_bias)$/,
      config.tieWordEmbeddings,
    );
  }

  forward(inputIds: Tensor, opts: CausalLMForwardOptions = {}): Tensor {
    return this.projectLogits(keepPositions(this.hiddenStates(inputIds, opts), opts.logitsToKeep));
  }

  hiddenStates(inputIds: Tensor, opts: Omit<CausalLMForwardOptions, 'logitsToKeep'> = {}): Tensor {
    return this.transformer.forward(inputIds, opts);
  }

  projectLogits(hidden: Tensor): Tensor {
    return (this.lm_head ?? this.transformer.wte).project(hidden);
  }

  logitWeights(): readonly Tensor[] {
    return (this.lm_head ?? this.transformer.wte).values;
  }
}
