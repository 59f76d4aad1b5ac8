import { ShareloraError } from '@sharelora/core';

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
