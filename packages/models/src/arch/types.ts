/**
 * The interfaces generation, scoring, training and the CLI program against, whatever the architecture.
 */
import {
  concat,
  embedding,
  keep,
  type Module,
  noGrad,
  reshape,
  ShareloraError,
  type Tensor,
  tensor,
  tidy,
} from '@sharelora/core';
import type { ActivationName, RopeConfig } from './common.js';

/**
 * The architecture families sharelora implements, as {@link parseConfig} reads them from
 * config.json's `model_type` (or `architectures`).
 */
export type Arch = 'gpt2' | 'roberta' | 'llama';
/**
 * What a model's head does: next-token prediction (GPT-2, LLaMA), masked-token prediction or
 * sequence classification (RoBERTa). {@link defaultTask} picks one from config.json;
 * {@link createModel} rejects a task the architecture lacks.
 */
export type Task = 'causal-lm' | 'masked-lm' | 'sequence-classification';
/**
 * transformers' `problem_type` for sequence classification: it picks the loss in
 * {@link sequenceClassificationLoss} (mean squared error, cross entropy, or binary cross entropy
 * per label).
 */
export type ProblemType = 'regression' | 'single_label_classification' | 'multi_label_classification';

/** Fields every parsed config.json has. `raw` is the file's JSON, written back unchanged by saveModel. */
interface BaseConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Standard deviation transformers initialises weights with; initWeights uses it too. */
  initializerRange: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  /** `eos_token_id` may be an int or a list in config.json; always a list here. */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** `architectures[0]` of config.json, when present (decides the default task). */
  hfArchitecture: string | null;
  raw: Record<string, unknown>;
}

/**
 * A parsed GPT-2 config.json (`n_embd`, `n_head`, ... under their common names), with transformers'
 * defaults for absent keys.
 */
export interface Gpt2Config extends BaseConfig {
  arch: 'gpt2';
  /** Learned position embeddings (`n_positions`): the longest sequence the model takes. */
  maxPositions: number;
  /** Width of the MLP's hidden layer (`n_inner`, default 4 × hiddenSize). */
  intermediateSize: number;
  activation: ActivationName;
  layerNormEps: number;
  /** Scores are divided by sqrt(head_dim) (scale_attn_weights) and by layer_idx + 1 (scale_attn_by_inverse_layer_idx). */
  scaleAttnWeights: boolean;
  scaleAttnByInverseLayerIdx: boolean;
  /** Dropout probability after the embeddings (active only in training mode). */
  embdPdrop: number;
  /** Dropout probability on the attention and MLP outputs before each residual add. */
  residPdrop: number;
}

/**
 * A parsed RoBERTa config.json (also XLM-RoBERTa and CamemBERT), with transformers' defaults for
 * absent keys. One config serves both the masked-LM and the sequence-classification model.
 */
export interface RobertaConfig extends BaseConfig {
  arch: 'roberta';
  maxPositions: number;
  intermediateSize: number;
  activation: ActivationName;
  layerNormEps: number;
  /**
   * Rows of the token-type embedding (`type_vocab_size`, 1 in released RoBERTa checkpoints, default
   * 2).
   */
  typeVocabSize: number;
  /** RoBERTa's position ids start at padding_idx + 1 = pad_token_id + 1. */
  padTokenId: number;
  hiddenDropoutProb: number;
  /** Dropout in the classification head (`classifier_dropout`, default hiddenDropoutProb). */
  classifierDropout: number;
  /** Outputs of the classification head (`num_labels`, else the size of `id2label`, else 2). */
  numLabels: number;
  /** config.json's problem_type; null lets the labels decide, as transformers does. */
  problemType: ProblemType | null;
}

/**
 * A parsed LLaMA-family config.json (`model_type` llama: Llama 2, Llama 3, TinyLlama, ...), with
 * transformers' defaults for absent keys.
 */
export interface LlamaConfig extends BaseConfig {
  arch: 'llama';
  maxPositions: number;
  intermediateSize: number;
  /** Key/value heads (`num_key_value_heads`); fewer than numHeads means grouped-query attention. */
  numKvHeads: number;
  /** Per-head width (`head_dim`, default hiddenSize / numHeads). */
  headDim: number;
  activation: ActivationName;
  rmsNormEps: number;
  /**
   * Rotary embedding parameters from `rope_theta` and `rope_parameters`/`rope_scaling` (default,
   * linear or llama3 scaling).
   */
  rope: RopeConfig;
  /** Whether q/k/v/o projections have biases (`attention_bias`, default false). */
  attentionBias: boolean;
  /** Whether the MLP projections have biases (`mlp_bias`, default false). */
  mlpBias: boolean;
}

/**
 * A parsed config.json of any supported architecture, discriminated by `arch`. {@link parseConfig}
 * and {@link readConfig} produce it; {@link createModel} builds the module tree from it.
 */
export type ModelConfig = Gpt2Config | RobertaConfig | LlamaConfig;

/**
 * Options of {@link CausalLM.forward} and {@link CausalLM.hiddenStates}: padding, positions, a
 * {@link KVCache} for incremental decoding, and which positions to project to logits.
 */
export interface CausalLMForwardOptions {
  /** [B, S], i32 or f32: 1 = attend to that key, 0 = padding. S = cache.length + T. */
  attentionMask?: Tensor;
  /**
   * i32 [B, T]. Default: cache.length + 0..T-1 for every row, as transformers' forward does. With
   * left padding pass positionIdsFromAttentionMask(...) so padded rows match unpadded ones.
   */
  positionIds?: Tensor;
  /** Keys/values of earlier tokens; this call appends its own. */
  cache?: KVCache;
  /**
   * Which positions get logits. The vocabulary projection is the largest matmul of a small model
   * and its [B, T, V] output the largest activation, so callers that need few positions say which:
   * - a number n: the last n positions of every row, output [B, min(n, T), V] (transformers'
   *   `logits_to_keep`; 1 for the next token during generation);
   * - an array of flat positions b·T + t: those rows of the flattened [B·T] positions, in the given
   *   order, output [P, V] (scoring right-padded rows at their own lengths).
   * Default: every position, [B, T, V]. Gradients flow to the kept positions only.
   */
  logitsToKeep?: number | readonly number[];
}

/**
 * How checkpoint names relate to a model's parameter names. A checkpoint name N matches parameter N
 * or, when N lacks it, `basePrefix + N` (checkpoints of the bare base model).
 */
export interface CheckpointRules {
  /** 'transformer.', 'model.' or 'roberta.'. */
  basePrefix: string;
  /** Non-parameter buffers some checkpoints contain (causal masks, rotary tables, position ids). */
  buffers: RegExp;
  /** Other names of a parameter (tied copies): used when the parameter's own name is absent. */
  aliases: Readonly<Record<string, string>>;
  /** Tensors this model has no use for: other tasks' heads, a tied output matrix. */
  unused: RegExp | null;
  /** Parameters a checkpoint may lack (a task head new to it): initialised instead, as transformers does. */
  newHead: RegExp | null;
}

/** What every model class carries besides its modules. */
export interface HfModel extends Module {
  readonly task: Task;
  readonly config: ModelConfig;
  /** transformers' class name, written to config.json's `architectures`. */
  readonly hfClass: string;
  /** Module names LoRA targets by default. */
  readonly defaultLoraTargets: readonly string[];
  readonly checkpointRules: CheckpointRules;
}

export interface CausalLM extends HfModel {
  readonly task: 'causal-lm';
  readonly config: Gpt2Config | LlamaConfig;
  /** i32 ids [B, T] -> logits [B, T, V]. */
  forward(inputIds: Tensor, opts?: CausalLMForwardOptions): Tensor;
  /**
   * i32 ids [B, T] -> the final hidden states [B, T, C] that the output projection reads; with
   * projectLogits, lets a caller project any subset of positions in pieces (logitChunks).
   */
  hiddenStates(inputIds: Tensor, opts?: Omit<CausalLMForwardOptions, 'logitsToKeep'>): Tensor;
  /** Hidden states [..., C] -> logits [..., V] (the output projection, tied or not). */
  projectLogits(hidden: Tensor): Tensor;
  /**
   * The output matrix W as its row blocks [W_0; W_1; ...] (see VocabEmbedding): projectLogits(h)
   * is h·Wᵀ, so a loss can take W itself (linearCrossEntropy) instead of the logits.
   */
  logitWeights(): readonly Tensor[];
}

/** Options of the RoBERTa models' `forward` ({@link SequenceClassifier}, {@link MaskedLM}). */
export interface EncoderForwardOptions {
  /** [B, T], i32 or f32: 1 = real token, 0 = padding. */
  attentionMask?: Tensor;
  /** i32 [B, T]; default: RoBERTa's padding-aware positions computed from the ids. */
  positionIds?: Tensor;
  /** i32 [B, T]; default zeros. */
  tokenTypeIds?: Tensor;
}

export interface SequenceClassifier extends HfModel {
  readonly task: 'sequence-classification';
  readonly config: RobertaConfig;
  readonly numLabels: number;
  /** i32 ids [B, T] -> logits [B, num_labels]. */
  forward(inputIds: Tensor, opts?: EncoderForwardOptions): Tensor;
}

export interface MaskedLM extends HfModel {
  readonly task: 'masked-lm';
  readonly config: RobertaConfig;
  /** i32 ids [B, T] -> logits [B, T, V]. */
  forward(inputIds: Tensor, opts?: EncoderForwardOptions): Tensor;
}

/** Any model {@link createModel} or {@link loadModel} returns; narrow it on `task`. */
export type AnyModel = CausalLM | SequenceClassifier | MaskedLM;

/**
 * Keys and values of the tokens seen so far, per layer [B, Hkv, S, D] (after RoPE for LLaMA). Each
 * forward appends its T new positions with concat; the tensors are kept out of tidy() scopes and
 * freed by dispose(). Read `length` between forward calls.
 */
export class KVCache {
  private _layers: Array<{ k: Tensor; v: Tensor }> = [];

  /** Positions cached (S), taken from the first layer. */
  get length(): number {
    return this._layers[0]?.k.shape[2] ?? 0;
  }

  /** Appends k/v [B, Hkv, T, D] to layer `i` and returns the layer's full k/v [B, Hkv, S, D]. */
  append(i: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const old = this._layers[i];
    // reshape() makes a view with its own reference to the storage, so the caller may dispose k and v.
    const next = old
      ? { k: keep(concat([old.k, k], 2)), v: keep(concat([old.v, v], 2)) }
      : { k: keep(reshape(k, k.shape)), v: keep(reshape(v, v.shape)) };
    if (old) {
      old.k.dispose();
      old.v.dispose();
    }
    this._layers[i] = next;
    return next;
  }

  /**
   * Rebuilds the cache from rows of itself: row r of the result is the old row `rows[r]`. Rows may
   * repeat (one prompt's keys/values copied to each beam), be dropped or change order (the beams a
   * search keeps). Each layer's k/v is copied once, by a row gather on the device.
   */
  reorder(rows: readonly number[]): void {
    if (this._layers.length === 0) return;
    const B = this._layers[0].k.shape[0];
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= B)
        throw new ShareloraError(
          'BAD_ARGUMENT',
          `KVCache.reorder: row ${r} is not one of the cache's ${B} rows`,
        );
    }
    noGrad(() =>
      tidy(() => {
        const ids = tensor(Int32Array.from(rows), [rows.length], 'i32');
        // Each row [Hkv, S, D] is one contiguous run of the [B, Hkv, S, D] tensor: gather them whole.
        const pick = (t: Tensor): Tensor => {
          const picked = embedding(reshape(t, [t.shape[0], -1]), ids);
          return keep(reshape(picked, [rows.length, ...t.shape.slice(1)]));
        };
        this._layers = this._layers.map(({ k, v }) => {
          const next = { k: pick(k), v: pick(v) };
          k.dispose();
          v.dispose();
          return next;
        });
      }),
    );
  }

  dispose(): void {
    for (const { k, v } of this._layers) {
      k.dispose();
      v.dispose();
    }
    this._layers = [];
  }
}
