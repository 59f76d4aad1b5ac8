/**
 * Throughput of one fine-tuning step on a real model shape: forward, loss (the trainer's own
 * forwardLoss), backward, AdamW update, and the loss read back, on random weights and random ids.
 * The same work a PyTorch + PEFT step does (`model(input_ids, labels=input_ids).loss.backward();
 * opt.step(); opt.zero_grad()`), so the two can be compared side by side.
 */

import { injectAdapter, type Method, presetConfig, trainableParameters } from '@sharelora/adapters';
import {
  AdamW,
  backward,
  getDevice,
  type MemoryReport,
  type ProfileReport,
  type QuantFormat,
  Rng,
  ShareloraError,
  tidy,
} from '@sharelora/core';
import { type AnyModel, createModel, initWeights, LLAMA_3_2_1B_CONFIG, parseConfig } from '@sharelora/models';
import type { Batch } from '../data/batch.js';
import { forwardLoss } from '../trainer/loss.js';

/** A model shape with the batch and LoRA targets it is benchmarked at. */
export interface TrainShape {
  description: string;
  /** A Hugging Face config.json. */
  config: Record<string, unknown>;
  /** Default batch. */
  batchSize: number;
  seqLength: number;
  targets: string[];
  /** Frozen base weights' storage (half precision keeps a large model's memory down). */
  weightDtype?: 'f32' | 'bf16';
}

/** The shapes `sharelora bench --train` knows, by name. */
export const TRAIN_SHAPES: Readonly<Record<string, TrainShape>> = {
  stories260k: {
    description: 'stories260K-shaped LLaMA (d 64, 5 layers, 8/4 heads, vocab 512), q,v',
    config: {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      vocab_size: 512,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: false,
      hidden_act: 'silu',
    },
    batchSize: 8,
    seqLength: 256,
    targets: ['q_proj', 'v_proj'],
  },
  'gpt2-small': {
    description: 'GPT-2 small (124M), c_attn',
    config: {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
      vocab_size: 50257,
      n_positions: 1024,
      activation_function: 'gelu_new',
    },
    batchSize: 4,
    seqLength: 128,
    targets: ['c_attn'],
  },
  'roberta-base': {
    description: 'RoBERTa-base sequence classification (2 labels), query,value',
    config: {
      architectures: ['RobertaForSequenceClassification'],
      model_type: 'roberta',
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      intermediate_size: 3072,
      vocab_size: 50265,
      max_position_embeddings: 514,
      type_vocab_size: 1,
      pad_token_id: 1,
      num_labels: 2,
    },
    batchSize: 8,
    seqLength: 128,
    targets: ['query', 'value'],
  },
  'llama-1b': {
    description: 'Llama-3.2-1B-shaped (bf16 frozen base), q,v',
    config: LLAMA_3_2_1B_CONFIG,
    batchSize: 1,
    seqLength: 64,
    targets: ['q_proj', 'v_proj'],
    weightDtype: 'bf16',
  },
};

export interface TrainBenchOptions {
  /** A name from TRAIN_SHAPES. */
  shape: string;
  method?: Method;
  rank?: number;
  alpha?: number;
  /** Timed steps after one warm-up step (default 3). */
  steps?: number;
  batchSize?: number;
  seqLength?: number;
  seed?: number;
  /** Profile the timed steps (Device.startProfile). */
  profile?: boolean;
  /** Called before each step (progress). */
  onStep?: (step: number, total: number) => void;
  /** Keep the base's block weights quantized (QLoRA); default the shape's own weight dtype. */
  quantize?: QuantFormat;
  /** A config.json to use instead of the shape's (its batch, length and targets still apply). */
  config?: Record<string, unknown>;
  /** LoRA targets instead of the shape's (names or short names, as `sharelora train --targets`). */
  targets?: string[];
}

export interface TrainBenchResult {
  shape: string;
  description: string;
  method: Method;
  rank: number;
  batchSize: number;
  seqLength: number;
  steps: number;
  tokensPerStep: number;
  /** Mean over the timed steps, and each step's time. */
  msPerStep: number;
  stepMs: number[];
  tokensPerSec: number;
  dispatchesPerStep: number;
  submitsPerStep: number;
  /** Highest live tensor bytes during the timed steps (model, adapter, optimizer, activations). */
  peakBytes: number;
  /** Each memory category's own highest live bytes during the timed steps. */
  peakByCategory: MemoryReport['peak'];
  trainableParameters: number;
  /** Loss of each timed step (it must be finite; with random ids it stays near log(vocab)). */
  losses: number[];
  /** The base's block weights' quantized format (QLoRA), when quantized. */
  quantize?: QuantFormat;
  profile?: ProfileReport;
}

/** Builds the model with random weights and an adapter, and times `steps` training steps. */
export async function benchTrainStep(opts: TrainBenchOptions): Promise<TrainBenchResult> {
  const shape = TRAIN_SHAPES[opts.shape];
  if (!shape) {
    throw new ShareloraError(
      'BAD_ARGUMENT',
      `unknown training shape "${opts.shape}" (known: ${Object.keys(TRAIN_SHAPES).join(', ')})`,
    );
  }
  const method = opts.method ?? 'lora';
  const rank = opts.rank ?? 8;
  const steps = opts.steps ?? 3;
  const B = opts.batchSize ?? shape.batchSize;
  const T = opts.seqLength ?? shape.seqLength;
  const seed = opts.seed ?? 0;
  const dev = getDevice();
  const config = parseConfig(opts.config ?? shape.config, `${opts.shape} config`);
  const model = createModel(config, {
    seed,
    weightDtype: shape.weightDtype,
    quantize: opts.quantize,
  }) as AnyModel;
  let optimizer: AdamW | null = null;
  try {
    initWeights(model, { seed });
    injectAdapter(
      model,
      presetConfig(method, {
        r: rank,
        alpha: opts.alpha ?? 2 * rank,
        targetModules: opts.targets ?? shape.targets,
      }),
      { rng: seed + 1 },
    );
    const params = trainableParameters(model);
    const opt = new AdamW(params, { lr: 1e-4 });
    optimizer = opt;
    const batch = randomBatch(model, B, T, seed);
    const step = async (): Promise<number> => {
      const loss = tidy(() => {
        const { loss } = forwardLoss(model, batch);
        backward(loss);
        return loss;
      });
      opt.step();
      opt.zeroGrad();
      try {
        return await loss.item();
      } finally {
        loss.dispose();
      }
    };
    opts.onStep?.(0, steps + 1);
    await step();
    dev.memory.resetPeak();
    const d0 = dev.stats.dispatches;
    const s0 = dev.stats.submits;
    const stepMs: number[] = [];
    const losses: number[] = [];
    if (opts.profile) dev.startProfile();
    let profile: ProfileReport | undefined;
    try {
      for (let i = 0; i < steps; i++) {
        opts.onStep?.(i + 1, steps + 1);
        const t0 = performance.now();
        losses.push(await step());
        stepMs.push(performance.now() - t0);
      }
    } finally {
      if (dev.profiling) profile = await dev.stopProfile();
    }
    const msPerStep = stepMs.reduce((a, b) => a + b, 0) / steps;
    return {
      shape: opts.shape,
      description: shape.description,
      method,
      rank,
      batchSize: B,
      seqLength: T,
      steps,
      tokensPerStep: B * T,
      msPerStep,
      stepMs,
      tokensPerSec: (B * T * 1000) / msPerStep,
      dispatchesPerStep: (dev.stats.dispatches - d0) / steps,
      submitsPerStep: (dev.stats.submits - s0) / steps,
      peakBytes: dev.memoryReport().peak.total,
      peakByCategory: dev.memoryReport().peak,
      trainableParameters: params.reduce((n, p) => n + p.numel, 0),
      losses,
      ...(opts.quantize ? { quantize: opts.quantize } : {}),
      profile,
    };
  } finally {
    optimizer?.dispose();
    for (const p of model.parameters()) p.value.dispose();
  }
}

/** Random ids (seeded); labels are the ids (a causal LM predicts the next one), or random classes. */
function randomBatch(model: AnyModel, B: number, T: number, seed: number): Batch {
  const V = model.config.vocabSize;
  const rng = new Rng(seed);
  const inputIds = Int32Array.from({ length: B * T }, () => rng.int(V));
  const base = {
    batchSize: B,
    seqLength: T,
    inputIds,
    attentionMask: new Int32Array(B * T).fill(1),
    sources: [],
    tokens: B * T,
  };
  if (model.task === 'sequence-classification') {
    const labels = model.config.numLabels;
    return {
      ...base,
      kind: 'classification',
      labels: Int32Array.from({ length: B }, () => rng.int(labels)),
      regression: false,
    };
  }
  return { ...base, kind: 'lm', labels: inputIds };
}
