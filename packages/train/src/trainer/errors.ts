import { ShareloraError } from '@sharelora/core';

/**
 * The `code` of a {@link TrainingError}:
 * - BAD_OPTION: trainer or continual options that cannot work together (or a model with nothing to
 *   train);
 * - NON_FINITE: a step's loss or gradient norm is NaN or infinite (the weights are not updated);
 * - OUT_DIR_IN_USE: the output directory already holds a checkpoint and `resume` was not asked for;
 * - RESUME_MISMATCH: the checkpoint was made with another base model, settings, data or parameters;
 * - BAD_CHECKPOINT: a checkpoint that cannot be read or does not fit this run.
 */
export type TrainingErrorCode =
  | 'BAD_OPTION'
  | 'NON_FINITE'
  | 'OUT_DIR_IN_USE'
  | 'RESUME_MISMATCH'
  | 'BAD_CHECKPOINT';

/** A training run that cannot start or continue; `step` is the optimizer step at fault, when there is one. */
export class TrainingError extends ShareloraError {
  constructor(
    override readonly code: TrainingErrorCode,
    message: string,
    readonly step: number | null = null,
  ) {
    super(code, message);
  }
}
