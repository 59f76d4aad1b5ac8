/**
 * Floating-point operations of one training step from a config.json alone, for time estimates
 * before the weights exist (`sharelora experiment run --dry-run` on a paper-scale grid).
 *
 * Every matmul costs 2·m·k·n. Forward: each block's linear modules on every token, attention's
 * scores and weighted sum (2·T² per token pair and head width, both products, over the whole
 * square: the kernels do not skip masked blocks' arithmetic), the adapters' A and B on every
 * targeted module (sharing a matrix saves parameters, not arithmetic), and the head (the LM head's
 * d×V on every token; a classifier's dense layers on one token per sequence). Backward of a frozen
 * linear computes only its input gradient (1× its forward); a trained one (full fine-tuning, the
 * adapters) also its weight gradient (2×); attention's backward is 2× its forward. Norms,
 * activations, softmax and the optimizer are linear in the sizes and left out.
 */

import { countParameters, type Method, presetConfig } from '@sharelora/adapters';
import { linearModulesFromConfig, parseConfig } from '@sharelora/models';

/** The model, adapter and batch a step's arithmetic is counted for. */
export interface StepFlopsOptions {
  /** A Hugging Face config.json (GPT-2, RoBERTa/BERT or LLaMA family). */
  config: Record<string, unknown>;
  /** An adapter method, or full fine-tuning (every block weight trained). */
  method: Method | 'full';
  rank: number;
  /** Resolved LoRA targets (module types or short names). */
  targets: string[];
  batchSize: number;
  /** Tokens per sequence (padded length). */
  seqLength: number;
}

/** FLOPs of one training step (forward, backward and their sum). */
export interface StepFlops {
  forward: number;
  backward: number;
  total: number;
}

/** FLOPs of one training step of `opts.method` on the model `opts.config` describes (see the module comment). */
export function estimateStepFlops(opts: StepFlopsOptions): StepFlops {
  const cfg = parseConfig(opts.config);
  const { modules } = linearModulesFromConfig(opts.config);
  const full = opts.method === 'full';
  const tokens = opts.batchSize * opts.seqLength;
  const blockMacs = modules.reduce((s, m) => s + m.inFeatures * m.outFeatures, 0);
  const linear = 2 * tokens * blockMacs;
  // Query width: heads × head width (LLaMA may set head_dim apart from hidden / heads).
  const width = cfg.arch === 'llama' ? cfg.numHeads * cfg.headDim : cfg.hiddenSize;
  const attention = cfg.numLayers * 2 * 2 * opts.batchSize * opts.seqLength ** 2 * width;
  const adapters = full
    ? 0
    : 2 *
      tokens *
      countParameters(
        modules,
        presetConfig(opts.method as Method, { r: opts.rank, targetModules: opts.targets }),
      ).total.lora;
  const d = cfg.hiddenSize;
  // RoBERTa trains through its classification head (dense d×d, then d×labels: labels taken as 2).
  const head = cfg.arch === 'roberta' ? 2 * opts.batchSize * (d * d + 2 * d) : 2 * tokens * d * cfg.vocabSize;
  const forward = linear + attention + adapters + head;
  const backward = (full ? 2 : 1) * (linear + head) + 2 * attention + 2 * adapters;
  return { forward, backward, total: forward + backward };
}
