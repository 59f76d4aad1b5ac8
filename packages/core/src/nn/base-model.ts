/**
 * Which base weights a module was loaded from, so that an adapter or a checkpoint trained on one
 * model can refuse another. The loader records it; savers write it and loaders compare it.
 */
import type { Module } from './module.js';

/**
 * A base model's identity: its config's shape fields (by their config.json names) and a few leading
 * values of its token embedding, which tell apart models of the same shape (another seed, another
 * pretraining) without reading the weights back. Converting a checkpoint between f32, f16 and bf16
 * keeps the identity (samples are compared to half precision).
 */
export interface BaseModelIdentity {
  shape: Record<string, string | number>;
  /** Leading values of the first token-embedding row, as stored; empty when unknown. */
  sample: number[];
}

const identities = new WeakMap<Module, BaseModelIdentity>();

/** Records the base model `module` was loaded from. */
export function setBaseModelIdentity(module: Module, identity: BaseModelIdentity): void {
  identities.set(module, identity);
}

/** The base model `module` was loaded from, if its loader recorded one. */
export function baseModelIdentityOf(module: Module): BaseModelIdentity | undefined {
  return identities.get(module);
}

/** bf16 keeps 8 bits of mantissa: values that agree to this relative tolerance are one value rounded. */
const SAMPLE_TOLERANCE = 2 ** -7;

/**
 * How `actual` differs from the `expected` identity (e.g. recorded in a file), or null when they may
 * be the same model. Only fields present in both are compared, so older records stay accepted.
 */
export function baseModelDifference(expected: unknown, actual: BaseModelIdentity): string | null {
  if (!isBaseModelIdentity(expected)) return null;
  const diffs: string[] = [];
  for (const [k, v] of Object.entries(expected.shape)) {
    if (k in actual.shape && actual.shape[k] !== v) diffs.push(`${k} ${v} (this model: ${actual.shape[k]})`);
  }
  const n = Math.min(expected.sample.length, actual.sample.length);
  const close = (a: number, b: number) =>
    Math.abs(a - b) <= SAMPLE_TOLERANCE * Math.max(Math.abs(a), Math.abs(b));
  if (diffs.length === 0 && n > 0 && !expected.sample.slice(0, n).every((v, i) => close(v, actual.sample[i])))
    diffs.push('other embedding weights (same shape, different values)');
  return diffs.length ? diffs.join(', ') : null;
}

/** A well-formed identity as read back from JSON. */
export function isBaseModelIdentity(v: unknown): v is BaseModelIdentity {
  if (typeof v !== 'object' || v === null) return false;
  const { shape, sample } = v as Record<string, unknown>;
  return (
    typeof shape === 'object' &&
    shape !== null &&
    !Array.isArray(shape) &&
    Array.isArray(sample) &&
    sample.every((x) => typeof x === 'number')
  );
}
