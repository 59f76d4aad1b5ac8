/** Bad usage or bad input: exit code 2 with a one-line message naming the flag or file at fault. */
export class UsageError extends Error {
  override name = 'UsageError';
}
