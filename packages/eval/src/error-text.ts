/**
 * Error text that goes into result files, which people share: one line of at most `max` characters,
 * without control characters, and without the value of any of the harness's environment variables
 * (tokens and keys usually live there). The sandbox already hides the host from programs; this keeps
 * a leak that gets past it, or a secret in the data, out of the files.
 */
export function scrubErrorText(text: string, max = 200): string {
  let clean = text.replace(/[\p{Cc}\p{Cf}]+/gu, ' ');
  const secrets = Object.values(process.env)
    .filter((v): v is string => v !== undefined && v.length >= 8)
    .sort((a, b) => b.length - a.length);
  for (const secret of secrets) clean = clean.split(secret).join('[redacted]');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
