import { ShareloraError } from '@sharelora/core';

/** Why an AdapterError was thrown: the `code` callers branch on. */
export type AdapterErrorCode =
  /** The adapter config has an unknown key or a bad value. */
  | 'BAD_ADAPTER_CONFIG'
  /** A target pattern matched no linear module, or a fused slice does not exist. */
  | 'NO_TARGET'
  /** Matrices declared shared have different shapes in the model (e.g. B across q/v under GQA). */
  | 'SHARE_SHAPE'
  /** adapter_config.json / adapter_model.safetensors do not fit the model or each other. */
  | 'BAD_ADAPTER_FILE'
  /** A file's copies of a matrix recorded as shared are not identical. */
  | 'SHARED_COPIES_DIFFER'
  /** The adapter records a base model other than the one it is being loaded onto. */
  | 'BASE_MODEL_MISMATCH'
  /** The operation does not fit the adapters' current state (unknown name, merged, ...). */
  | 'ADAPTER_STATE';

/** Every error raised by @sharelora/adapters; `code` is stable for programs to branch on. */
export class AdapterError extends ShareloraError {
  constructor(
    override readonly code: AdapterErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}
