import { Rng } from '@sharelora/core';
import { DataError } from './errors.js';

/** Options of {@link splitValidation}. */
export interface SplitOptions {
  /** A fraction in (0, 1) of the items, or a whole number of items, for validation. */
  validation: number;
  /** Seeds which items go to validation; the same items and seed always give the same split. */
  seed: number;
}

/**
 * Carves a validation split out of training data with a seed: same items and seed, same split.
 * Only ever split the training file; the test set stays untouched for the final evaluation.
 * Both sides keep the file order. Split records before tokenizing, so the split does not move when
 * maxLength or the tokenizer changes.
 */
export function splitValidation<T>(items: readonly T[], opts: SplitOptions): { train: T[]; validation: T[] } {
  const n = items.length;
  const v = opts.validation;
  const k = v > 0 && v < 1 ? Math.max(1, Math.round(n * v)) : v;
  if (!Number.isInteger(k) || k < 1 || k >= n) {
    throw new DataError(
      'BAD_OPTION',
      `validation split ${v} of ${n} items must leave both sides non-empty (a fraction in (0, 1) or a count 1..${n - 1})`,
    );
  }
  // A forked stream: the split does not depend on, or shift, any other use of the seed.
  const order = new Rng(opts.seed).fork('validation-split').shuffle([...Array(n).keys()]);
  const isValidation = new Uint8Array(n);
  for (let i = 0; i < k; i++) isValidation[order[i]] = 1;
  const train: T[] = [];
  const validation: T[] = [];
  items.forEach((x, i) => {
    (isValidation[i] ? validation : train).push(x);
  });
  return { train, validation };
}
