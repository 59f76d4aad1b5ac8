/**
 * The words a decode kernel reads its sizes and offsets from (binding P). Keeping every shape out of
 * the WGSL text makes one pipeline serve any model, batch and cache capacity: lavapipe compiles a
 * new kernel cold for seconds, and each distinct text is a new kernel.
 */

/** WGSL u32 expression, the same for every lane of a workgroup (a word of P, or built from them). */
export type Expr = string;

/** Words at the start of P that every kernel reads: arena row stride, batch, cache capacity. */
export const PARAM_HEADER = 4;

/**
 * Builds P. Words are numbered in the order they are added, so kernels whose builders add the
 * same words in the same order get the same text whatever the values.
 */
export class DecodeParams {
  private readonly words: number[];

  /**
   * @param header.rowStride arena elements per sequence (a multiple of 4)
   * @param header.batch sequences
   * @param header.capacity positions each sequence's cache holds
   */
  constructor(header: { rowStride: number; batch: number; capacity: number }) {
    this.words = [header.rowStride, header.batch, header.capacity, 0];
  }

  /** Adds a u32 word; returns the expression that reads it. */
  u32(value: number): Expr {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw new RangeError(`decode parameter ${value} is not a u32`);
    this.words.push(value);
    return `P[${this.words.length - 1}u]`;
  }

  /** Adds an f32 word; returns the f32 expression that reads it. */
  f32(value: number): string {
    this.words.push(new Uint32Array(Float32Array.of(value).buffer)[0]);
    return `bitcast<f32>(P[${this.words.length - 1}u])`;
  }

  /**
   * Adds consecutive u32 words (a table a kernel indexes at runtime); returns the index of the first,
   * so that word j is `P[first + j]`.
   */
  table(values: readonly number[]): number {
    const first = this.words.length;
    for (const v of values) this.u32(v);
    return first;
  }

  /** The words, to upload as binding P. */
  data(): Uint32Array {
    return Uint32Array.from(this.words);
  }
}
