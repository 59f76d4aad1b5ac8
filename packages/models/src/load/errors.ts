import { ShareloraError } from '@sharelora/core';

/** The `code` of a {@link ModelLoadError}: what is wrong with the model directory. */
export type ModelLoadErrorCode =
  /** config.json missing, not JSON, or a key with an impossible value. */
  | 'BAD_CONFIG'
  /** A model_type, activation, RoPE type or option we do not implement. */
  | 'UNSUPPORTED'
  /** No weight file, or a shard the index names is absent. */
  | 'NO_WEIGHTS'
  /** A weight file that is truncated, not safetensors, or holds a non-float tensor. */
  | 'BAD_CHECKPOINT'
  /** Missing, unexpected or mis-shaped tensors (all listed in one message). */
  | 'CHECKPOINT_MISMATCH'
  /** A config whose weights would not fit this machine's memory or WebGPU adapter (the message has the numbers). */
  | 'TOO_LARGE';

/** A model directory that cannot be loaded. The one-line message starts with the file at fault. */
export class ModelLoadError extends ShareloraError {
  declare readonly code: ModelLoadErrorCode;

  constructor(
    code: ModelLoadErrorCode,
    readonly path: string,
    detail: string,
    options: { cause?: unknown } = {},
  ) {
    super(code, `${path}: ${detail.replace(/[\r\n]+/g, ' ')}`);
    if (options.cause !== undefined) this.cause = options.cause;
  }
}
