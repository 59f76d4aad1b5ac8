/**
 * The data formats `train` and `eval --task loss` read, how each file is read, and the checks the
 * two share (data errors as usage errors, the model's longest input, the loss's unit).
 */

import type { ModelConfig } from '@sharelora/models';
import {
  DataError,
  type FormatSpec,
  GLUE_TASKS,
  type GlueTaskName,
  modelPositions,
  type ReadOptions,
} from '@sharelora/train';
import { UsageError } from './cli-error.js';

export const FORMATS = [
  'instruction',
  'prompt-completion',
  'text',
  'gsm8k',
  'e2e',
  'classification',
  'sentence-pair',
  'glue-sst2',
  'glue-mrpc',
  'glue-stsb',
  'glue-rte',
] as const;
export type CliFormat = (typeof FORMATS)[number];

/** How to read the file and which format spec applies; classification label sets come from the training split. */
export function dataSpec(format: CliFormat): { read: ReadOptions; spec: FormatSpec } {
  if (format.startsWith('glue-')) {
    const task = GLUE_TASKS[format.slice(5) as GlueTaskName];
    return { read: task.read, spec: task.format };
  }
  return { read: {}, spec: { type: format } as FormatSpec };
}

/** A data error (file:line) as bad input (exit 2); one over a size limit names the flag that raises it. */
export function dataErrorAsUsage(e: DataError): never {
  if (e.code !== 'TOO_LARGE') throw new UsageError(e.message);
  const flag = e.row !== null ? '--max-record-bytes' : '--max-data-bytes';
  throw new UsageError(`${e.message} (raise it with ${flag})`);
}

/** Runs a data step, its data errors reported as bad input ({@link dataErrorAsUsage}). */
export async function dataStep<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof DataError)) throw e;
    return dataErrorAsUsage(e);
  }
}

/** The --max-length in force: the flag, or else the model's positions; more than those is refused. */
export function maxLengthFor(config: ModelConfig, requested: number | undefined): number {
  const positions = modelPositions(config);
  if (requested !== undefined && requested > positions)
    throw new UsageError(`--max-length ${requested} exceeds the model's ${positions} positions`);
  return requested ?? positions;
}
