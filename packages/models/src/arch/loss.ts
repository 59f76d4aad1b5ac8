/** Task losses with transformers' semantics. */
import {
  abs,
  add,
  addScalar,
  crossEntropy,
  exp,
  linearCrossEntropy,
  log,
  mean,
  mul,
  neg,
  noGrad,
  relu,
  reshape,
  ShapeError,
  scale,
  sliceAxis,
  sub,
  type Tensor,
  tidy,
} from '@sharelora/core';
import { argmax } from '../generate/sampling.js';
import { keepPositions, logitChunks } from './common.js';
import type { CausalLM, ProblemType } from './types.js';

function checkLabels(logits: Tensor, labels: Tensor, fn: string): [number, number, number] {
  const [B, T, V] = logits.shape;
  if (logits.rank !== 3 || labels.rank !== 2 || labels.shape[0] !== B || labels.shape[1] !== T) {
    throw new ShapeError(
      `${fn}: logits [B, T, V] and labels [B, T] expected, got [${logits.shape}] and [${labels.shape}]`,
    );
  }
  return [B, T, V];
}

/**
 * Next-token loss: logits at position t predict labels[t + 1]; labels equal to -100 are ignored;
 * mean over the rest (NaN when none is left, as PyTorch). logits [B, T, V] f32, labels i32 [B, T].
 */
export function causalLmLoss(logits: Tensor, labels: Tensor): Tensor {
  const [B, T, V] = checkLabels(logits, labels, 'causalLmLoss');
  const n = B * Math.max(T - 1, 0);
  const predicting = reshape(sliceAxis(logits, 1, 0, Math.max(T - 1, 0)), [n, V]);
  const targets = reshape(sliceAxis(labels, 1, Math.min(1, T), T), [n]);
  return crossEntropy(predicting, targets, { ignoreIndex: -100 });
}

/**
 * Smallest share of all positions above which causalLmLossAt may project every position (ignoring
 * the others) rather than gathering the ones with a target: the gather and the scatter-add of its
 * gradient cost four passes, more than projecting a few rows that are not needed.
 */
const DENSE_SHARE = 7 / 8;

/**
 * Whether causalLmLossAt projects all `rows` positions rather than gathering the `kept` ones: most
 * are kept, and the logits of the others with their gradient (2·(rows − kept)·V floats, alive at
 * once) take no more memory than the gathered hidden rows (kept·C) would.
 */
const projectAll = (rows: number, kept: number, hiddenSize: number, vocabSize: number) =>
  kept >= DENSE_SHARE * rows && 2 * (rows - kept) * vocabSize <= kept * hiddenSize;

/**
 * Mean cross entropy of the logits at flat positions b·T + t of hidden states [B, T, C]
 * (CausalLM.hiddenStates) against one target each: the loss of causalLmLoss when `positions` are
 * the positions whose next label is not ignored and `targets` those labels. The rows go to
 * linearCrossEntropy with the output matrix, which projects them a chunk at a time and keeps no
 * [positions, vocabulary] logits for backward. When the positions are most of all (plain text: all
 * but each row's last) and the vocabulary is small enough (see projectAll), every position is
 * projected and the others get the ignored target -100, instead of gathering the rows.
 */
export function causalLmLossAt(
  model: CausalLM,
  hidden: Tensor,
  positions: readonly number[],
  targets: Int32Array,
): Tensor {
  if (positions.length === 0 || positions.length !== targets.length) {
    throw new ShapeError(
      `causalLmLossAt: ${positions.length} positions and ${targets.length} targets (one each, at least one)`,
    );
  }
  const [B, T, C] = hidden.shape;
  // Dense only for distinct in-range positions (keepPositions reports bad ones).
  const dense =
    projectAll(B * T, positions.length, C, model.config.vocabSize) &&
    new Set(positions).size === positions.length &&
    positions.every((p) => Number.isInteger(p) && p >= 0 && p < B * T);
  let rows: Tensor;
  let rowTargets = targets;
  if (dense) {
    rows = reshape(hidden, [B * T, C]);
    rowTargets = new Int32Array(B * T).fill(-100);
    positions.forEach((p, i) => {
      rowTargets[p] = targets[i];
    });
  } else rows = keepPositions(hidden, positions);
  const sum = linearCrossEntropy(rows, model.logitWeights(), rowTargets, {
    reduction: 'sum',
    ignoreIndex: -100,
  });
  return scale(sum, 1 / positions.length);
}

/**
 * The most likely next token at each of `positions` (flat b·T + t indices into `hidden` [B, T, H]),
 * projected a vocabulary-sized chunk at a time as causalLmLossAt does (without gradients).
 */
export async function argmaxAt(
  model: CausalLM,
  hidden: Tensor,
  positions: readonly number[],
): Promise<Int32Array> {
  const V = model.config.vocabSize;
  const out = new Int32Array(positions.length);
  for (const [a, b] of logitChunks(positions.length, V)) {
    const logits = noGrad(() =>
      tidy(() => model.projectLogits(keepPositions(hidden, positions.slice(a, b)))),
    );
    const values = (await logits.data()) as Float32Array;
    logits.dispose();
    for (let i = 0; i < b - a; i++) out[a + i] = argmax(values.subarray(i * V, (i + 1) * V));
  }
  return out;
}

/** Masked-LM loss: every position predicts its own label (-100 = not masked). */
export function maskedLmLoss(logits: Tensor, labels: Tensor): Tensor {
  const [B, T, V] = checkLabels(logits, labels, 'maskedLmLoss');
  return crossEntropy(reshape(logits, [B * T, V]), reshape(labels, [B * T]), { ignoreIndex: -100 });
}

/**
 * Sequence-classification loss as transformers picks it: without a configured problem type, one label
 * means regression and integer labels mean single-label classification.
 * - regression: mean squared error; labels f32 [B] (one label) or [B, L];
 * - single_label_classification: cross entropy; labels i32 [B];
 * - multi_label_classification: mean binary cross entropy with logits; labels f32 [B, L] in [0, 1].
 */
export function sequenceClassificationLoss(
  logits: Tensor,
  labels: Tensor,
  problemType: ProblemType | null,
): Tensor {
  const [B, L] = logits.shape;
  const problem =
    problemType ??
    (L === 1
      ? 'regression'
      : labels.dtype === 'i32'
        ? 'single_label_classification'
        : 'multi_label_classification');
  if (problem === 'single_label_classification') return crossEntropy(logits, labels);
  const target = labels.rank === 1 ? reshape(labels, [B, 1]) : labels;
  if (target.shape[0] !== B || target.shape[1] !== L || target.dtype !== 'f32') {
    throw new ShapeError(
      `sequenceClassificationLoss (${problem}): labels must be f32 [${B}, ${L}], got ${target.dtype} [${labels.shape}]`,
    );
  }
  if (problem === 'regression') {
    const d = sub(logits, target);
    return mean(mul(d, d));
  }
  // max(x, 0) - x·y + log(1 + exp(-|x|)): the overflow-free form of -[y·log σ(x) + (1-y)·log(1-σ(x))].
  const softplus = log(addScalar(exp(neg(abs(logits))), 1));
  return mean(add(sub(relu(logits), mul(logits, target)), softplus));
}
