/**
 * The median time of a run's training steps in ms, leaving out the first one, which compiles the
 * shaders (NaN for fewer than two steps). The median, not the mean, so that a pause from other load
 * on the machine does not move it.
 */
export function medianStepMs(history: readonly { msPerStep: number }[]): number {
  const xs = history.slice(1).map((h) => h.msPerStep);
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
