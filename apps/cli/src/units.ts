/** Numbers as people read them: grouped digits, binary byte units, and nouns that agree with counts. */

/** A count with grouped digits. */
export const num = (n: number): string => n.toLocaleString('en-US');

/** A count with its noun, singular for one: "1 step", "2 steps" (irregular plurals given). */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${num(n)} ${n === 1 ? noun : nouns}`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** Bytes in the largest binary unit that keeps the value at least 1: exact when it divides ("128 MiB"), else one decimal. */
export function bytes(n: number): string {
  let i = 0;
  while (i < UNITS.length - 1 && n >= 1024 ** (i + 1)) i++;
  const v = n / 1024 ** i;
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${UNITS[i]}`;
}
