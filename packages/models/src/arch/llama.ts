/**
 * LLaMA 1/2/3 (LlamaForCausalLM): RMSNorm pre-norm blocks, SwiGLU MLP, rotate-half RoPE with
 * rope_theta and linear / llama3 frequency scaling, grouped-query attention, optional head_dim and
 * projection biases, tied or untied output matrix.
 */
import {
  gatedActivation,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  type RopeOptions,
  rope,
  ropeCosSin,
  type Tensor,
} from '@sharelora/core';
import {
  ACTIVATION_KINDS,
  type AttentionContext,
  attend,
  causalLmRules,
  defaultPositions,
  keepPositions,
  type ModelBuildOptions,
  runLayer,
  splitHeads,
  type WeightInit,
  weightInit,
} from './common.js';
import type { CausalLM, CausalLMForwardOptions, CheckpointRules, LlamaConfig } from './types.js';
import { untiedOutput, VocabEmbedding } from './vocab.js';

/**
 * The modules {@link LlamaForCausalLM} adapts when no LoRA targets are given: the query and value
 * projections, as in the LoRA paper.
 */
export const LLAMA_LORA_TARGETS: readonly string[] = ['q_proj', 'v_proj'];

/** The forward pass's context: positions and their rotary cos/sin, computed once for all layers. */
type Ctx = Omit<AttentionContext, 'layer' | 'scale'> & {
  positions: Tensor;
  rope: RopeOptions & { cosSin: Tensor };
};

/** HF LLaMA's rotary embedding: half-split pairs, on [B, T, H, D] heads. */
function ropeOptions({ rope: r }: LlamaConfig): RopeOptions {
  return { theta: r.theta, scaling: r.scaling, rotaryDim: r.rotaryDim, layout: 'half', axes: 'bthd' };
}

export class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;

  constructor(
    private readonly _config: LlamaConfig,
    private readonly _layer: number,
    w: WeightInit,
  ) {
    super();
    const { hiddenSize: C, numHeads: H, numKvHeads: Hkv, headDim: D, attentionBias: bias } = _config;
    this.q_proj = new Linear(C, H * D, { ...w, bias, init: false });
    this.k_proj = new Linear(C, Hkv * D, { ...w, bias, init: false });
    this.v_proj = new Linear(C, Hkv * D, { ...w, bias, init: false });
    this.o_proj = new Linear(H * D, C, { ...w, bias, init: false });
  }

  /** residual + the attention output (the output projection accumulates onto the residual). */
  forward(x: Tensor, ctx: Ctx, residual: Tensor): Tensor {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this._config;
    const q = rope(splitHeads(this.q_proj.forward(x), H), ctx.positions, ctx.rope);
    const k = rope(splitHeads(this.k_proj.forward(x), Hkv), ctx.positions, ctx.rope);
    const v = splitHeads(this.v_proj.forward(x), Hkv);
    return this.o_proj.forward(
      attend(q, k, v, { ...ctx, layer: this._layer, scale: 1 / Math.sqrt(D) }),
      residual,
    );
  }
}

export class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;

  constructor(
    private readonly _config: LlamaConfig,
    w: WeightInit,
  ) {
    super();
    const { hiddenSize: C, intermediateSize: I, mlpBias: bias } = _config;
    this.gate_proj = new Linear(C, I, { ...w, bias, init: false });
    this.up_proj = new Linear(C, I, { ...w, bias, init: false });
    this.down_proj = new Linear(I, C, { ...w, bias, init: false });
  }

  /** residual + the MLP output (the down projection accumulates onto the residual). */
  forward(x: Tensor, residual: Tensor): Tensor {
    const act = ACTIVATION_KINDS[this._config.activation];
    return this.down_proj.forward(
      gatedActivation(this.gate_proj.forward(x), this.up_proj.forward(x), act),
      residual,
    );
  }
}

export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(config: LlamaConfig, layer: number, w: WeightInit) {
    super();
    this.self_attn = new LlamaAttention(config, layer, w);
    this.mlp = new LlamaMLP(config, w);
    this.input_layernorm = new RMSNorm(config.hiddenSize, { eps: config.rmsNormEps });
    this.post_attention_layernorm = new RMSNorm(config.hiddenSize, { eps: config.rmsNormEps });
  }

  forward(x: Tensor, ctx: Ctx): Tensor {
    return runLayer(this, x, () => {
      const h = this.self_attn.forward(this.input_layernorm.forward(x), ctx, x);
      return this.mlp.forward(this.post_attention_layernorm.forward(h), h);
    });
  }
}

export class LlamaModel extends Module {
  embed_tokens: VocabEmbedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: RMSNorm;

  constructor(
    private readonly _config: LlamaConfig,
    w: WeightInit,
  ) {
    super();
    const config = _config;
    this.embed_tokens = new VocabEmbedding(config.vocabSize, config.hiddenSize, w.dtype);
    this.layers = new ModuleList(
      Array.from({ length: config.numLayers }, (_, i) => new LlamaDecoderLayer(config, i, w)),
    );
    this.norm = new RMSNorm(config.hiddenSize, { eps: config.rmsNormEps });
  }

  /** ids [B, T] -> final hidden states [B, T, C]. */
  forward(inputIds: Tensor, opts: CausalLMForwardOptions = {}): Tensor {
    const T = inputIds.shape[1];
    const positions = opts.positionIds ?? defaultPositions(opts.cache?.length ?? 0, T);
    const ropeOpts = ropeOptions(this._config);
    const cosSin = ropeCosSin(positions, ropeOpts, this._config.headDim);
    const ctx: Ctx = {
      causal: true,
      keyPaddingMask: opts.attentionMask,
      cache: opts.cache,
      positions,
      rope: { ...ropeOpts, cosSin },
    };
    let x = this.embed_tokens.lookup(inputIds);
    for (const layer of this.layers) x = layer.forward(x, ctx);
    return this.norm.forward(x);
  }
}

export class LlamaForCausalLM extends Module implements CausalLM {
  readonly task = 'causal-lm';
  readonly hfClass = 'LlamaForCausalLM';
  readonly defaultLoraTargets = LLAMA_LORA_TARGETS;
  readonly checkpointRules: CheckpointRules;
  model: LlamaModel;
  /** Only when tie_word_embeddings is false; otherwise the output matrix is model.embed_tokens. */
  lm_head: VocabEmbedding | null;

  constructor(
    readonly config: LlamaConfig,
    opts: ModelBuildOptions = {},
  ) {
    super();
    const w = weightInit(opts);
    this.model = new LlamaModel(config, w);
    this.lm_head = untiedOutput(config, w.dtype);
    this.checkpointRules = causalLmRules('model.', /(^|\.)rotary_emb\.inv_freq$/, config.tieWordEmbeddings);
  }

  forward(inputIds: Tensor, opts: CausalLMForwardOptions = {}): Tensor {
    return this.projectLogits(keepPositions(this.hiddenStates(inputIds, opts), opts.logitsToKeep));
  }

  hiddenStates(inputIds: Tensor, opts: Omit<CausalLMForwardOptions, 'logitsToKeep'> = {}): Tensor {
    return this.model.forward(inputIds, opts);
  }

  projectLogits(hidden: Tensor): Tensor {
    return (this.lm_head ?? this.model.embed_tokens).project(hidden);
  }

  logitWeights(): readonly Tensor[] {
    return (this.lm_head ?? this.model.embed_tokens).values;
  }
}
