import { noGrad, tensor, tidy } from '@sharelora/core';
import { argmaxAt, type CausalLM } from '@sharelora/models';
import { sequentialBatches } from '../data/batch.js';
import type { Example } from '../data/tokenize.js';
import { TrainingError } from './errors.js';
import { attentionMaskTensor, causalTargets, forwardLoss, lossTerms } from './loss.js';
import type { TrainableModel } from './types.js';

/** A loss over evaluation examples, and what a classifier predicted for each (class id, or value for regression). */
export interface EvaluationResult {
  /** Mean loss over every loss term (target token, or example), not over batches. */
  loss: number;
  /** Loss terms the mean is over: target tokens for a language model, examples for a classifier. */
  terms: number;
  /** Per example, in order; null for language models. */
  predictions: number[] | null;
}

/**
 * The loss a model gives `examples` with the training loss's own masking (prompt tokens and padding
 * are not targets), in eval mode (dropout off) without gradients; the model's mode is restored.
 */
export async function evaluateExamples(
  model: TrainableModel,
  examples: Example[],
  opts: { batchSize: number; padId: number; onProgress?: (done: number, total: number) => void },
): Promise<EvaluationResult> {
  if (examples.length === 0) throw new TrainingError('BAD_OPTION', 'no examples to evaluate');
  const wasTraining = model.training;
  model.eval();
  const classifier = model.task === 'sequence-classification';
  const predictions: number[] = [];
  let sum = 0;
  let terms = 0;
  let done = 0;
  try {
    for (const batch of sequentialBatches(examples, { batchSize: opts.batchSize, padId: opts.padId })) {
      const n = lossTerms(batch, model.task);
      const { loss, logits } = noGrad(() =>
        tidy(() => {
          const r = forwardLoss(model, batch);
          return { loss: r.loss, logits: classifier ? r.logits : null };
        }),
      );
      if (n > 0) {
        sum += (await loss.item()) * n;
        terms += n;
      }
      loss.dispose();
      if (logits) {
        const values = (await logits.data()) as Float32Array;
        const L = logits.shape[1];
        for (let b = 0; b < batch.batchSize; b++) {
          const row = values.subarray(b * L, (b + 1) * L);
          predictions.push(L === 1 ? row[0] : row.indexOf(Math.max(...row)));
        }
        logits.dispose();
      }
      done += batch.batchSize;
      opts.onProgress?.(done, examples.length);
    }
  } finally {
    model.train(wasTraining);
  }
  return { loss: terms ? sum / terms : Number.NaN, terms, predictions: classifier ? predictions : null };
}

/**
 * Per example of a causal LM: whether every target token is the model's most likely next token
 * there, i.e. whether greedy decoding from the prompt reproduces the target (lm-evaluation-harness's
 * is_greedy). Eval mode, no gradients; the model's mode is restored.
 */
export async function greedyMatches(
  model: CausalLM,
  examples: Example[],
  opts: { batchSize: number; padId: number },
): Promise<boolean[]> {
  const wasTraining = model.training;
  model.eval();
  const out: boolean[] = [];
  try {
    for (const batch of sequentialBatches(examples, opts)) {
      const { positions, targets } = causalTargets(batch);
      const matches = Array.from({ length: batch.batchSize }, () => true);
      if (positions.length) {
        const shape = [batch.batchSize, batch.seqLength];
        const hidden = noGrad(() =>
          tidy(() =>
            model.hiddenStates(tensor(batch.inputIds, shape, 'i32'), {
              attentionMask: attentionMaskTensor(batch),
            }),
          ),
        );
        try {
          const best = await argmaxAt(model, hidden, positions);
          for (const [i, p] of positions.entries())
            if (best[i] !== targets[i]) matches[Math.floor(p / batch.seqLength)] = false;
        } finally {
          hidden.dispose();
        }
      }
      out.push(...matches);
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}
