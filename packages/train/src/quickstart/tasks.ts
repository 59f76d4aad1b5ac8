/**
 * The quickstart's generated tasks: a string of digits, '=', and the answer digits. Pretraining copies
 * the digits; fine-tuning shifts each one (d → d+3 mod 10), a related task: the same alignment of
 * answer to prompt, with a new mapping. Both are learnable in tens of steps by a tiny model, and the
 * 10^5 possible prompts leave plenty never seen in training for a held-out test.
 */
import { Rng } from '@sharelora/core';
import type { DataRecord } from '../data/records.js';

/** A digit-to-digit mapping applied to every digit of a prompt. */
export interface DigitTask {
  /** Short name, used in tables and as the records' file name. */
  name: string;
  /** What the task is, for the report. */
  description: string;
  map: (digit: number) => number;
}

/** The pretraining task: the answer repeats the prompt's digits. */
export const COPY_TASK: DigitTask = {
  name: 'copy',
  description: 'copy the digits: 31415= → 31415',
  map: (d) => d,
};

/** The fine-tuning task: each digit plus 3, mod 10 (same alignment as copying, a new mapping). */
export const SHIFT_TASK: DigitTask = {
  name: 'shift-3',
  description: 'add 3 to each digit, mod 10: 31415= → 64748',
  map: (d) => (d + 3) % 10,
};

/** Digits per prompt: 10^5 prompts, so a few thousand training examples leave most unseen. */
export const DIGITS = 5;

/** One prompt (`31415=`) and its expected answer (`64748` for shift-3). */
export interface DigitExample {
  prompt: string;
  answer: string;
}

/** The prompt and answer of `task` for one digit string. */
export function digitExample(task: DigitTask, digits: readonly number[]): DigitExample {
  return { prompt: `${digits.join('')}=`, answer: digits.map(task.map).join('') };
}

/** `n` random digit strings, each drawn independently from `rng` (repeats possible, as any sample). */
export function randomDigits(rng: Rng, n: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: DIGITS }, () => rng.int(10)));
}

/** Examples as prompt-completion records, located at "generated:<task>" row i. */
export function digitRecords(task: DigitTask, inputs: readonly (readonly number[])[]): DataRecord[] {
  return inputs.map((digits, i) => {
    const { prompt, answer } = digitExample(task, digits);
    return {
      values: { prompt, completion: answer },
      source: { file: `generated:${task.name}`, line: null, row: i + 1 },
    };
  });
}

/**
 * Held-out prompts: `n` distinct digit strings none of which is in `seen` (the training and
 * validation inputs), so exact match measures generalisation, not recall.
 */
export function heldOutDigits(seed: number, n: number, seen: readonly (readonly number[])[]): number[][] {
  const used = new Set(seen.map((d) => d.join('')));
  const rng = new Rng(seed).fork('quickstart/held-out');
  const out: number[][] = [];
  while (out.length < n) {
    const [digits] = randomDigits(rng, 1);
    const key = digits.join('');
    if (used.has(key)) continue;
    used.add(key);
    out.push(digits);
  }
  return out;
}
