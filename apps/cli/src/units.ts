/** Numbers as people read them: grouped digits and nouns that agree with counts (bytes: formatBytes). */

/** A count with grouped digits. */
export const num = (n: number): string => n.toLocaleString('en-US');

/** A count with its noun, singular for one: "1 step", "2 steps" (irregular plurals given). */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${num(n)} ${n === 1 ? noun : nouns}`;
}
