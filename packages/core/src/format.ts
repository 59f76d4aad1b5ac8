/** Sizes as people read them, used by every report that prints memory. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * A byte count in the largest binary unit that keeps the value at least 1: exact when the unit
 * divides it ("128 MiB", "4 GiB"), else three significant digits ("2.56 MiB", "61.2 KiB").
 */
export function formatBytes(n: number): string {
  let i = 0;
  while (i < UNITS.length - 1 && Math.abs(n) >= 1024 ** (i + 1)) i++;
  const v = n / 1024 ** i;
  return `${Number.isInteger(v) ? v : v.toPrecision(3)} ${UNITS[i]}`;
}
