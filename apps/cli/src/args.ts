import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { QuantFormat } from '@sharelora/core';
import { QUANT_FORMATS } from '@sharelora/models';
import { UsageError } from './cli-error.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's flags strictly: unknown flags are usage errors, and so are positionals unless
 * the command takes them.
 */
export function parseFlags<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  { allowPositionals = false } = {},
) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals,
    });
  } catch (e) {
    const message = (e as Error).message;
    // node reads `--flag -1` as a flag without its value; its hint is on a later line.
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
    const what = ambiguous
      ? `${ambiguous[1]} has no value (the next argument starts with '-'); write a value that starts with '-' as ${ambiguous[1]}=VALUE`
      : message.split('\n')[0];
    throw new UsageError(`sharelora ${command}: ${what} (see sharelora ${command} --help)`);
  }
}

/** A positive integer flag value, or a usage error naming the flag. */
export function intFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** A numeric flag value that satisfies `ok`, or a usage error naming the flag and the `rule`. */
export function numberFlag(
  name: string,
  value: string | undefined,
  ok: (n: number) => boolean,
  rule: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !ok(n))
    throw new UsageError(`--${name} must be ${rule}, got "${value}"`);
  return n;
}

/** A flag value from a fixed set (undefined when the flag is absent), or a usage error listing the set. */
export function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value !== undefined && !allowed.includes(value as T))
    throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T | undefined;
}

/** A --seed value: an integer the generators take exactly (up to 2^53 - 1), or a usage error. */
export function seedFlag(value: string | undefined): number | undefined {
  return numberFlag('seed', value, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer in [0, 2^53)');
}

/** Names every missing required flag in one usage error, so a first run learns them all at once. */
export function requireFlags(
  command: string,
  values: Record<string, unknown>,
  flags: readonly string[],
): void {
  const missing = flags.filter((f) => values[f] === undefined).map((f) => `--${f}`);
  if (!missing.length) return;
  const list = missing.length === 1 ? missing[0] : `${missing.slice(0, -1).join(', ')} and ${missing.at(-1)}`;
  throw new UsageError(
    `sharelora ${command}: ${list} ${missing.length === 1 ? 'is' : 'are'} required (see sharelora ${command} --help)`,
  );
}

/** Help lines of `--quantize`, the same in every command that loads a model; descriptions start at `column`. */
export function quantizeHelp(column: number): string {
  const pad = ' '.repeat(column);
  const flag = '--quantize FORMAT';
  // A help whose option column is narrower than the flag starts the description on the next line.
  const lead = flag.length < column - 3 ? `  ${flag.padEnd(column - 2)}` : `  ${flag}\n${pad}`;
  return [
    `${lead}keep the base model's block weights quantized: nf4 or`,
    `${pad}fp4 (4-bit: QLoRA's blocks of 64, double-quantized scales) or int8 (per`,
    `${pad}row). A directory written by 'sharelora quantize' loads quantized without it`,
  ].join('\n');
}

/** A --quantize value (nf4, fp4, int8), or a usage error listing them. */
export function quantizeFlag(value: string | undefined): QuantFormat | undefined {
  return oneOf('quantize', value, QUANT_FORMATS);
}
