import { AdapterError } from '@sharelora/adapters';
import { EvalConfigError, EvalDataError, ResultsMergeError } from '@sharelora/eval';
import { ModelLoadError, TokenizerError } from '@sharelora/models';
import { DataError, OutputLockedError, UnsafeOutputError } from '@sharelora/train';

/** Bad usage or bad input: exit code 2 with a one-line message naming the flag or file at fault. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Files the user pointed at that cannot be used, or an output that must not be written, are bad input (exit 2), like a bad flag. */
export function asUsage(e: unknown): never {
  if (
    e instanceof ModelLoadError ||
    e instanceof TokenizerError ||
    e instanceof AdapterError ||
    e instanceof EvalDataError ||
    e instanceof DataError ||
    e instanceof EvalConfigError ||
    e instanceof ResultsMergeError ||
    e instanceof UnsafeOutputError ||
    e instanceof OutputLockedError
  )
    throw new UsageError(e.message);
  throw e;
}
