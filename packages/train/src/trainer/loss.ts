/** A collated batch as tensors, and the model's loss on it with transformers' semantics. */
import { type Tensor, tensor } from '@sharelora/core';
import {
  causalLmLoss,
  causalLmLossAt,
  maskedLmLoss,
  type ProblemType,
  sequenceClassificationLoss,
} from '@sharelora/models';
import type { Batch } from '../data/batch.js';
import { IGNORE_INDEX } from '../data/tokenize.js';
import type { TrainableModel } from './types.js';

/**
 * How many terms the batch's mean loss averages: target tokens for a causal LM (labels[t + 1] for
 * t < T - 1 that are not ignored), rows for a classifier. Weighting micro-batches by it makes
 * gradient accumulation equal to one large batch.
 */
export function lossTerms(batch: Batch, task: TrainableModel['task']): number {
  if (batch.kind === 'classification') return batch.batchSize;
  const { labels, seqLength: T } = batch;
  const first = task === 'causal-lm' ? 1 : 0;
  let n = 0;
  for (let b = 0; b < batch.batchSize; b++) {
    for (let t = first; t < T; t++) if (labels[b * T + t] !== IGNORE_INDEX) n++;
  }
  return n;
}

/**
 * The batch's attention mask as a tensor, or undefined when it hides no token (every row full, as
 * in packed or equal-length batches): the attention kernels then read no mask at all, which gives
 * the same values (an all-ones mask hides nothing) and skips a mask load per key block (lavapipe,
 * AVX-512, stories260K's attention shape, forward and backward alternated in one process: 7.34–8.85
 * against 7.80–9.50 ms in four runs).
 */
export function attentionMaskTensor(batch: Batch): Tensor | undefined {
  if (batch.attentionMask.every((v) => v === 1)) return undefined;
  return tensor(batch.attentionMask, [batch.batchSize, batch.seqLength], 'i32');
}

const problemTypeOf = (model: TrainableModel): ProblemType | null =>
  (model as { config?: { problemType?: ProblemType | null } }).config?.problemType ?? null;

/**
 * Forward and loss of one batch; call inside tidy(). A causal LM projects only the positions with a
 * target (see causalTargets), in pieces that fit a storage binding, and returns no logits; other
 * models return their logits.
 */
export function forwardLoss(model: TrainableModel, batch: Batch): { logits: Tensor | null; loss: Tensor } {
  const shape = [batch.batchSize, batch.seqLength];
  const ids = tensor(batch.inputIds, shape, 'i32');
  const attentionMask = attentionMaskTensor(batch);
  if (model.task === 'causal-lm' && batch.kind !== 'classification') {
    const { positions, targets } = causalTargets(batch);
    // causalLmLoss's mean over no targets is NaN (as PyTorch's); keep that path for such a batch.
    if (positions.length > 0) {
      const hidden = model.hiddenStates(ids, { attentionMask });
      return { logits: null, loss: causalLmLossAt(model, hidden, positions, targets) };
    }
  }
  const logits = model.forward(ids, { attentionMask });
  if (batch.kind === 'classification') {
    const labels = batch.regression
      ? tensor(batch.labels, [batch.batchSize], 'f32')
      : tensor(batch.labels, [batch.batchSize], 'i32');
    return { logits, loss: sequenceClassificationLoss(logits, labels, problemTypeOf(model)) };
  }
  const labels = tensor(batch.labels, shape, 'i32');
  const lossFn = model.task === 'causal-lm' ? causalLmLoss : maskedLmLoss;
  return { logits, loss: lossFn(logits, labels) };
}

/**
 * The positions of a causal-LM batch whose next token is a target (flat b·T + t) and those targets:
 * only they need logits, so prompt-masked and padded positions skip the vocabulary projection.
 */
export function causalTargets(batch: Batch): { positions: number[]; targets: Int32Array } {
  const { labels, seqLength: T } = batch;
  const positions: number[] = [];
  for (let b = 0; b < batch.batchSize; b++) {
    for (let t = 0; t + 1 < T; t++) if (labels[b * T + t + 1] !== IGNORE_INDEX) positions.push(b * T + t);
  }
  return { positions, targets: Int32Array.from(positions, (p) => labels[p + 1]) };
}
