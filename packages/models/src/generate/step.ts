/**
 * Pieces the generation loops share: fitting prompts to the model's context, and one forward that
 * reads the last position's logits back to the CPU.
 */
import { noGrad, type Tensor, tensor, tidy } from '@sharelora/core';
import type { CausalLM, KVCache } from '../arch/types.js';

/** Rows of ids (all the same length) as an i32 [rows, length] tensor. */
export const ids2d = (rows: readonly (readonly number[])[]): Tensor =>
  tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'i32');

/** One forward; returns the last position's logits [B, V] on the CPU. */
export async function nextLogits(
  model: CausalLM,
  input: readonly (readonly number[])[],
  mask: readonly (readonly number[])[] | null,
  positions: readonly (readonly number[])[] | null,
  cache: KVCache | undefined,
): Promise<Float32Array> {
  const last = noGrad(() =>
    tidy(() => {
      return model.forward(ids2d(input), {
        attentionMask: mask ? ids2d(mask) : undefined,
        positionIds: positions ? ids2d(positions) : undefined,
        cache,
        logitsToKeep: 1,
      });
    }),
  );
  try {
    return (await last.data()) as Float32Array;
  } finally {
    last.dispose();
  }
}

/**
 * Prompts longer than the model's context keep their last tokens, as many as leave room for
 * `maxNew` new ones (at least one); one warning says how many were cut.
 */
export function fitContext(
  prompts: readonly (readonly number[])[],
  context: number,
  maxNew: number,
  warn: (message: string, truncated: number) => void,
): readonly (readonly number[])[] {
  const keep = Math.max(1, context - maxNew);
  const long = prompts.filter((p) => p.length > context).length;
  if (long === 0) return prompts;
  warn(
    `${long} of ${prompts.length} prompts had more tokens than the model's context of ${context}: each kept its last ${keep}`,
    long,
  );
  return prompts.map((p) => (p.length > context ? p.slice(p.length - keep) : p));
}

/** The default warning sink: console.warn with the package's prefix. */
export const warnToConsole = (message: string): void => console.warn(`sharelora: warning: ${message}`);
