import { ShareloraError } from '@sharelora/core';

/** Input data is missing or malformed; the message names the file and, where known, the line. */
export class EvalDataError extends ShareloraError {
  constructor(
    readonly file: string,
    readonly line: number | null,
    detail: string,
  ) {
    super('EVAL_DATA', `${file}${line === null ? '' : `:${line}`}: ${detail}`);
  }
}

/** Options that cannot work together, or a model that lacks what the chosen scoring needs. */
export class EvalConfigError extends ShareloraError {
  constructor(message: string) {
    super('EVAL_CONFIG', message);
  }
}

/** The model broke the EvalModel contract (e.g. returned fewer results than requests). */
export class EvalModelError extends ShareloraError {
  constructor(message: string) {
    super('EVAL_MODEL', message);
  }
}

/** Result files that cannot be merged into one run (different settings, missing or repeated shards). */
export class ResultsMergeError extends ShareloraError {
  constructor(message: string) {
    super('EVAL_MERGE', message);
  }
}

/** The Python sandbox could not run at all (no interpreter), as opposed to a program failing in it. */
export class SandboxError extends ShareloraError {
  constructor(message: string) {
    super('EVAL_SANDBOX', message);
  }
}
