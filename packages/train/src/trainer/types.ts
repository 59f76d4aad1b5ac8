import type { MemoryReport } from '@sharelora/core';
import type { AnyModel } from '@sharelora/models';
import type { Example } from '../data/tokenize.js';
import type { OutputLock } from '../output/lock.js';

/** Model tasks the Trainer knows how to compute a loss for. */
export type TrainTask = 'causal-lm' | 'sequence-classification' | 'masked-lm';

/**
 * A model the Trainer can train: any @sharelora/models model (a causal LM's loss is computed from
 * its hidden states, projecting only the positions that have a target).
 */
export type TrainableModel = AnyModel;

/**
 * Options of a {@link Trainer}: the model and data, batching, the AdamW optimizer and learning-rate
 * schedule, evaluation, checkpoints and outputs. Checked when the Trainer is built: an impossible
 * combination is a {@link TrainingError} (BAD_OPTION) before any step.
 */
export interface TrainerOptions {
  /** The model to train, with its adapter already injected (or with every parameter trainable for full fine-tuning). */
  model: TrainableModel;
  /** Training examples, from tokenizeDataset. */
  train: Example[];
  /** Validation examples carved from the training data (splitValidation), never the test set. */
  validation?: Example[];
  /** Id written into padded positions (see {@link padIdOf}); masked out of attention and loss. */
  padId: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /**
   * Optimizer steps to run; when absent, `epochs` (default 1) full passes over `train`. 0 saves the
   * adapter as initialised and evaluates it on `validation`: the loss before fine-tuning.
   */
  steps?: number;
  /**
   * Full passes over `train` when `steps` is absent (default 1; fractions allowed). Give one of the
   * two.
   */
  epochs?: number;
  /** Peak learning rate, reached after warmup. */
  lr: number;
  /** AdamW's decoupled weight decay (default 0, as Hugging Face's TrainingArguments). */
  weightDecay?: number;
  /** AdamW's moment decay rates (default [0.9, 0.999]). */
  betas?: [number, number];
  /** AdamW's epsilon (default 1e-8). */
  eps?: number;
  /**
   * Learning rate after warmup: constant, or a linear or cosine decay to 0 over the run (default
   * linear, as Hugging Face's Trainer).
   */
  schedule?: 'constant' | 'linear' | 'cosine';
  /** Steps of linear warmup from 0 to `lr` (default 0, or from warmupRatio). */
  warmupSteps?: number;
  /** Warmup as a fraction of all steps (HF's warmup_ratio); warmupSteps wins when both are given. */
  warmupRatio?: number;
  /** Global L2 norm to clip gradients to (none when absent). */
  maxGradNorm?: number;
  /**
   * Seeds the data order; with the model's seed (dropout) a run is reproducible and a resume
   * bit-identical.
   */
  seed: number;
  /** Validation loss every N steps (and at the end); default: only at the end. */
  evalEvery?: number;
  /**
   * Checkpoint every N steps into outDir/checkpoint-<step>; default: never (a final checkpoint is
   * still written on abort).
   */
  saveEvery?: number;
  /** Keep the adapter with the lowest validation loss in outDir/best (default true when there is validation data). */
  keepBest?: boolean;
  /**
   * Where checkpoints, metrics.jsonl and the final adapter go; nothing is written without it. train()
   * holds a lock on it (lockOutputDir), so a second run into the same directory is refused.
   */
  outDir?: string;
  /**
   * A lock on outDir that the caller already holds (and releases), e.g. taken before loading the
   * model so that a busy directory is refused early; without it train() locks outDir itself.
   */
  outDirLock?: OutputLock;
  /**
   * Continue from the latest outDir/checkpoint-<step> when there is one; without `resume` such a
   * checkpoint is an error (OUT_DIR_IN_USE).
   */
  resume?: boolean;
  /** Called after each optimizer step. */
  onStep?: (m: StepMetrics) => void;
  /** Called after each validation pass. */
  onEval?: (e: EvalMetrics) => void;
  /** Called after each batch of an evaluation pass (validation, or evaluate()): examples done of total. */
  onEvalProgress?: (done: number, total: number) => void;
  /** Called as a checkpoint starts to be written and again once it is in place. */
  onCheckpoint?: (e: CheckpointEvent) => void;
  /** Stops after the current step; a checkpoint is written first (when outDir is set). */
  signal?: AbortSignal;
  /** Saves the trainable state to a directory (an adapter via saveAdapter, or the full model); default saveAdapter. */
  save?: (dir: string) => Promise<void>;
}

/**
 * What one optimizer step did, handed to {@link TrainerOptions.onStep}, listed in
 * {@link TrainResult.history} and appended to metrics.jsonl.
 */
export interface StepMetrics {
  /** Optimizer steps completed (1-based). */
  step: number;
  /** Fractional epochs completed (examples seen / train size). */
  epoch: number;
  /** Mean loss over the step's micro-batches. */
  loss: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Real (unpadded) tokens of the step per second of its wall time. */
  tokensPerSec: number;
  /** Wall time of the step in milliseconds. */
  msPerStep: number;
  /**
   * Peak bytes by category during the step (each category's own peak, and the peak of their total):
   * gradients and activations are freed by the step's end, so live bytes after it would show them as 0.
   */
  memory: MemoryReport['peak'];
}

/**
 * A checkpoint being written, handed to {@link TrainerOptions.onCheckpoint} twice: once as it
 * starts and once when it is in place.
 */
export interface CheckpointEvent {
  /** The optimizer step the checkpoint holds the state after. */
  step: number;
  /** The checkpoint's directory (outDir/checkpoint-<step>). */
  dir: string;
  /** False while it is being written (an interruption then leaves the previous checkpoint), true once in place. */
  written: boolean;
}

/**
 * One validation pass, handed to {@link TrainerOptions.onEval} and listed in
 * {@link TrainResult.evals}.
 */
export interface EvalMetrics {
  step: number;
  /** Mean loss over every target token (or example) of the validation set after `step` steps. */
  valLoss: number;
  /** Whether this is the best validation loss so far (then saved to outDir/best when keepBest). */
  best: boolean;
}

/** Parameters and memory of a run, so that methods (LoRA, ShareLoRA, full) can be compared. */
export interface RunReport {
  params: {
    /** Parameter elements counted under every name (as a state dict lists them: a tied or shared tensor once per use). */
    total: number;
    /** Distinct trainable elements: what the optimizer updates (a ShareLoRA shared matrix once). */
    trainable: number;
    /** Distinct elements of all parameters, frozen and trainable. */
    unique: number;
  };
  /** Bytes on the device by category; live at the end of the run unless named peak (peaks since train() began). */
  bytes: {
    /** Frozen weights (and buffers). */
    weights: number;
    trainable: number;
    /** Peak bytes of gradients (freed after every step). */
    gradients: number;
    optimizer: number;
    peakActivations: number;
    peakTotal: number;
  };
  /** Mean wall time per optimizer step, the first step (shader compilation) left out when there are others. */
  msPerStep: number;
  /** Real (unpadded) tokens per second over the same steps. */
  tokensPerSec: number;
}

/**
 * What {@link Trainer.train} returns: the step count and losses, the step and evaluation history of
 * this call, the parameter and memory report, and where the outputs were written.
 */
export interface TrainResult {
  /** Optimizer steps completed (counting those before a resume). */
  steps: number;
  /** Mean training loss of the last step. */
  trainLoss: number;
  /** Lowest validation loss seen; null without validation data. */
  bestValLoss: number | null;
  /** The step the lowest validation loss was measured at; null without validation data. */
  bestStep: number | null;
  /** Steps run in this call (a resumed run lists only those after the resume point). */
  history: StepMetrics[];
  evals: EvalMetrics[];
  report: RunReport;
  /** The step this call resumed from (null: started at step 0). */
  resumedFrom: number | null;
  /** Stopped early by the abort signal (a checkpoint was written when outDir is set). */
  aborted: boolean;
  /** Where things were written (null when not written). */
  outputs: {
    /** The final adapter (or model): outDir itself. */
    adapter: string | null;
    /** The adapter with the lowest validation loss. */
    best: string | null;
    /** The last checkpoint. */
    checkpoint: string | null;
    /** metrics.jsonl: one JSON line per step and per evaluation. */
    metrics: string | null;
  };
}
