/**
 * Padding examples into batches, and the seeded, resumable order in which a run sees them.
 */
import { Rng, type RngState } from '@sharelora/core';
import { DataError, type RecordSource } from './errors.js';
import { type ClassificationExample, type Example, IGNORE_INDEX, type LmExample } from './tokenize.js';

/**
 * Which side of a row {@link collate} pads: `right` for training and scoring, `left` for batched
 * generation.
 */
export type Padding = 'right' | 'left';

/** Options of {@link collate} and {@link sequentialBatches}: the pad id and how rows are padded. */
export interface CollateOptions {
  /** Id written into padded positions; they are masked out, so any valid id works (see padIdOf). */
  padId: number;
  /**
   * 'right' (default) for training; 'left' puts every row's last token in the last column, as batched
   * generation wants (then pass positionIdsFromAttentionMask from @sharelora/models as position ids).
   */
  padding?: Padding;
  /** Round the padded length up to a multiple of this (default 1). */
  padToMultipleOf?: number;
}

interface BatchBase {
  batchSize: number;
  seqLength: number;
  /** [batchSize, seqLength], row-major. */
  inputIds: Int32Array;
  /** Shape `[batchSize, seqLength]`: 1 for a real token, 0 for padding. */
  attentionMask: Int32Array;
  /** Where each row came from. */
  sources: RecordSource[];
  /** Real (unpadded) tokens in the batch. */
  tokens: number;
}

/**
 * A padded batch of {@link LmExample}s for causal-LM training: ids, mask and unshifted labels, each
 * `[batchSize, seqLength]` row-major.
 */
export interface LmBatch extends BatchBase {
  kind: 'lm';
  /** Shape `[batchSize, seqLength]`: the examples' labels, IGNORE_INDEX on padding. */
  labels: Int32Array;
}

/**
 * A padded batch of {@link ClassificationExample}s: ids and mask `[batchSize, seqLength]`, one
 * label per row.
 */
export interface ClassificationBatch extends BatchBase {
  kind: 'classification';
  /** Shape `[batchSize]`: class ids (Int32Array), or targets (Float32Array) for regression. */
  labels: Int32Array | Float32Array;
  /** Whether `labels` are real-valued regression targets (Float32Array) rather than class ids. */
  regression: boolean;
}

/** A batch of either kind; narrow it on `kind`. */
export type Batch = LmBatch | ClassificationBatch;
/**
 * The batch type {@link collate} makes of examples of type `E`: {@link LmBatch} for
 * {@link LmExample}, else {@link ClassificationBatch}.
 */
export type BatchOf<E extends Example> = E extends LmExample ? LmBatch : ClassificationBatch;

const positiveInt = (name: string, v: number, min = 1) => {
  if (!Number.isInteger(v) || v < min)
    throw new DataError('BAD_OPTION', `${name} must be an integer >= ${min}, got ${v}`);
};

/** Pads examples of one kind into a batch; padded positions get padId, mask 0 and label IGNORE_INDEX. */
export function collate<E extends Example>(examples: readonly E[], opts: CollateOptions): BatchOf<E> {
  if (examples.length === 0) throw new DataError('BAD_OPTION', 'cannot collate an empty batch');
  positiveInt('padId', opts.padId, 0);
  const multiple = opts.padToMultipleOf ?? 1;
  positiveInt('padToMultipleOf', multiple);
  const kind = examples[0].kind;
  if (examples.some((e) => e.kind !== kind))
    throw new DataError('BAD_OPTION', 'a batch mixes LM and classification examples');
  const B = examples.length;
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  const T = Math.ceil(longest / multiple) * multiple;
  const left = opts.padding === 'left';
  const inputIds = new Int32Array(B * T).fill(opts.padId);
  const attentionMask = new Int32Array(B * T);
  const lmLabels = kind === 'lm' ? new Int32Array(B * T).fill(IGNORE_INDEX) : null;
  let tokens = 0;
  examples.forEach((e, r) => {
    const len = e.inputIds.length;
    const at = r * T + (left ? T - len : 0);
    inputIds.set(e.inputIds, at);
    attentionMask.fill(1, at, at + len);
    if (lmLabels) lmLabels.set((e as LmExample).labels, at);
    tokens += len;
  });
  const base = {
    batchSize: B,
    seqLength: T,
    inputIds,
    attentionMask,
    sources: examples.map((e) => e.source),
    tokens,
  };
  if (lmLabels) return { kind: 'lm', ...base, labels: lmLabels } as BatchOf<E>;
  const cls = examples as readonly Example[] as readonly ClassificationExample[];
  const regression = cls[0].regression;
  if (cls.some((e) => e.regression !== regression)) {
    throw new DataError('BAD_OPTION', 'a batch mixes classification and regression examples');
  }
  const values = cls.map((e) => e.label);
  const labels = regression ? Float32Array.from(values) : Int32Array.from(values);
  return { kind: 'classification', ...base, labels, regression } as BatchOf<E>;
}

/** Fixed-order batches, e.g. for validation: no shuffling, the last batch may be smaller. */
export function* sequentialBatches<E extends Example>(
  examples: readonly E[],
  opts: CollateOptions & { batchSize: number },
): Generator<BatchOf<E>> {
  positiveInt('batchSize', opts.batchSize);
  for (let i = 0; i < examples.length; i += opts.batchSize)
    yield collate(examples.slice(i, i + opts.batchSize), opts);
}

/**
 * Options of {@link BatchLoader}: batch size, the seed of the data order, shuffling, dropping the
 * last batch and length grouping, plus those of {@link CollateOptions}. They all go into the
 * loader's fingerprint, so a resume with different options is refused.
 */
export interface LoaderOptions extends CollateOptions {
  batchSize: number;
  /** Seeds the data order; one seed, one sequence of batches. */
  seed: number;
  /** Reshuffle every epoch (default true). */
  shuffle?: boolean;
  /** Drop the one smaller batch of each epoch (default false). */
  dropLast?: boolean;
  /**
   * Length grouping with mega-batch factor k (0 = off; transformers' group_by_length uses 50): each
   * epoch's shuffled order is cut into runs of k·batchSize examples, each run is sorted by length
   * (longest first) and cut into batches, and then the order of all the epoch's batches is shuffled.
   * Rows of a batch then have similar lengths (less padding) while batches still come in random order.
   */
  groupByLength?: number;
}

/**
 * Where a loader stands: JSON-serialisable, for checkpoints. Epoch e's order is derived from the
 * RNG state at the start of e, so the state plus the index into the epoch is the whole position.
 */
export interface DataPosition {
  epoch: number;
  /** Batches of this epoch already handed out. */
  index: number;
  /** The order RNG's state at the start of this epoch. */
  rng: RngState;
  /** Hash of the examples and of every option that shapes batches; a resume must match it. */
  fingerprint: string;
}

/**
 * A batch from {@link BatchLoader.next}, with where it sits in the data order: `epoch` (from 0) and
 * `index`, its 0-based number within that epoch.
 */
export type LoaderBatch<E extends Example> = BatchOf<E> & { epoch: number; index: number };

/** FNV-1a over 32-bit words: cheap, and enough to notice that the data or options changed. */
function fingerprint(examples: readonly Example[], o: Required<LoaderOptions>): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h = Math.imul(h ^ (x | 0), 0x01000193) >>> 0;
  };
  const f64 = new Float64Array(1);
  const words = new Int32Array(f64.buffer);
  const mixReal = (x: number) => {
    f64[0] = x;
    mix(words[0]);
    mix(words[1]);
  };
  for (const v of [
    o.batchSize,
    o.padId,
    o.padToMultipleOf,
    o.groupByLength,
    +o.shuffle,
    +o.dropLast,
    +(o.padding === 'left'),
  ]) {
    mix(v);
  }
  mixReal(o.seed);
  mix(examples.length);
  for (const e of examples) {
    mix(e.inputIds.length);
    for (const id of e.inputIds) mix(id);
    if (e.kind === 'lm') for (const l of e.labels) mix(l);
    else mixReal(e.label);
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * Hands out batches epoch after epoch, in an order fixed by the seed. position() after any batch,
 * given back to a new loader over the same examples and options, continues with exactly the batches
 * the first loader would have produced next.
 */
export class BatchLoader<E extends Example> {
  readonly batchesPerEpoch: number;
  private readonly opts: Required<LoaderOptions>;
  private readonly fp: string;
  private epochNo = 0;
  private index = 0;
  private epochStart: RngState;
  private rng: Rng;
  private plan: number[][] = [];

  constructor(
    private readonly examples: readonly E[],
    opts: LoaderOptions,
    resumeFrom?: DataPosition,
  ) {
    if (examples.length === 0) throw new DataError('EMPTY', 'no examples to batch');
    this.opts = {
      shuffle: true,
      dropLast: false,
      groupByLength: 0,
      padding: 'right',
      padToMultipleOf: 1,
      ...opts,
    };
    positiveInt('batchSize', this.opts.batchSize);
    positiveInt('groupByLength', this.opts.groupByLength, 0);
    positiveInt('padId', this.opts.padId, 0);
    positiveInt('padToMultipleOf', this.opts.padToMultipleOf);
    if (!Number.isSafeInteger(this.opts.seed))
      throw new DataError('BAD_OPTION', `seed must be an integer, got ${this.opts.seed}`);
    const n = examples.length;
    const B = this.opts.batchSize;
    this.batchesPerEpoch = this.opts.dropLast ? Math.floor(n / B) : Math.ceil(n / B);
    if (this.batchesPerEpoch === 0) {
      throw new DataError('BAD_OPTION', `dropLast with ${n} examples and batchSize ${B} leaves no batch`);
    }
    this.fp = fingerprint(examples, this.opts);
    this.rng = new Rng(this.opts.seed);
    this.epochStart = this.rng.getState();
    if (resumeFrom === undefined) {
      this.startEpoch(0, this.epochStart);
      return;
    }
    if (resumeFrom.fingerprint !== this.fp) {
      throw new DataError(
        'POSITION_MISMATCH',
        `the saved data position (fingerprint ${resumeFrom.fingerprint}) belongs to other examples or loader ` +
          `options than these (${this.fp}); resume with the same data, tokenizer, max length, seed and batch size`,
      );
    }
    this.startEpoch(resumeFrom.epoch, resumeFrom.rng);
    if (!Number.isInteger(resumeFrom.index) || resumeFrom.index < 0 || resumeFrom.index > this.plan.length) {
      throw new DataError(
        'POSITION_MISMATCH',
        `saved batch index ${resumeFrom.index} is outside epoch of ${this.plan.length}`,
      );
    }
    this.index = resumeFrom.index;
  }

  /** The epoch in progress: that of the last batch handed out (0 before the first). */
  get epoch(): number {
    return this.epochNo;
  }

  /** Epochs whose every batch has been handed out (what `--epochs N` counts against). */
  get epochsDone(): number {
    return this.index >= this.plan.length ? this.epochNo + 1 : this.epochNo;
  }

  private startEpoch(epoch: number, state: RngState): void {
    this.epochNo = epoch;
    this.epochStart = state;
    this.rng = Rng.fromState(state);
    this.plan = this.order();
    this.index = 0;
  }

  private order(): number[][] {
    const { batchSize: B, shuffle, dropLast, groupByLength: k } = this.opts;
    const order = [...this.examples.keys()];
    if (shuffle) this.rng.shuffle(order);
    const runs: number[][] = [];
    if (k > 0) {
      const len = (i: number) => this.examples[i].inputIds.length;
      // Array.prototype.sort is stable, so equal lengths keep their shuffled order.
      for (let s = 0; s < order.length; s += k * B)
        runs.push(order.slice(s, s + k * B).sort((a, b) => len(b) - len(a)));
    } else {
      runs.push(order);
    }
    let batches: number[][] = [];
    for (const run of runs) for (let j = 0; j < run.length; j += B) batches.push(run.slice(j, j + B));
    if (dropLast) batches = batches.filter((b) => b.length === B);
    if (k > 0 && shuffle) this.rng.shuffle(batches);
    return batches;
  }

  /** Example indices of each batch of the epoch in progress, in order. */
  epochPlan(): readonly (readonly number[])[] {
    return this.plan;
  }

  next(): LoaderBatch<E> {
    // The next epoch's order continues the same RNG stream from where this epoch's left it.
    if (this.index >= this.plan.length) this.startEpoch(this.epochNo + 1, this.rng.getState());
    const idx = this.plan[this.index];
    const batch = collate(
      idx.map((i) => this.examples[i]),
      this.opts,
    );
    return Object.assign(batch, { epoch: this.epochNo, index: this.index++ });
  }

  /** The position of the next batch; save it with a checkpoint. */
  position(): DataPosition {
    return { epoch: this.epochNo, index: this.index, rng: { ...this.epochStart }, fingerprint: this.fp };
  }
}
