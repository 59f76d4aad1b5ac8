/**
 * A cell's time and peak memory from its model's config.json alone, for `experiment run --dry-run`
 * when the weights are not there (a paper-scale grid planned before downloading anything): memory
 * from the step-memory model `params --memory` prints, time from the step's FLOPs at this device's
 * measured matmul rate. The rate is what a large matmul reaches here; a real step also normalises,
 * copies and waits, so the time is a lower bound.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Method, RECOMMENDED } from '@sharelora/adapters';
import * as core from '@sharelora/core/node';
import { linearModulesFromConfig, parseConfig } from '@sharelora/models';
import { type BasePrecision, estimateStepFlops, estimateStepMemory } from '@sharelora/train';
import { targetsFlag } from '../targets.js';
import { timeMatmul } from './bench.js';

/** Whether `dir` holds weights (safetensors, PyTorch or GGUF files) beside its config.json. */
export async function hasWeights(dir: string): Promise<boolean> {
  const files = await readdir(dir).catch(() => [] as string[]);
  return files.some((f) => /\.(safetensors|bin|pt|gguf)$/.test(f));
}

/** GFLOP/s of a 512×1024 by 1024×1024 matmul on this device: the rate estimates divide by. */
export async function measuredMatmulRate(): Promise<number> {
  await core.init();
  const [m, k, n] = [512, 1024, 1024];
  const seconds = await timeMatmul(
    { name: 'estimate', shapeA: [m, k], shapeB: [k, n], flops: 2 * m * k * n },
    3,
    3,
  );
  return (2 * m * k * n) / seconds / 1e9;
}

export interface ConfigEstimate {
  seconds: number;
  peakBytes: number;
  /** FLOPs of one optimizer step (all its micro-batches). */
  stepFlops: number;
  steps: number;
}

const PRECISION: Record<string, BasePrecision> = { nf4: 'nf4', fp4: 'nf4', int8: 'int8' };

/**
 * The estimate of `stages` trainings with `options` (a cell's train options by long flag name) on
 * the model whose config.json is in `modelDir`, at `gflops`. Throws an Error whose message says
 * what is missing (steps when only epochs are given, a bad config).
 */
export async function estimateFromConfig(
  modelDir: string,
  options: Record<string, unknown>,
  stages: number,
  gflops: number,
): Promise<ConfigEstimate> {
  const raw = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const config = parseConfig(raw);
  const steps = options.steps as number | undefined;
  if (steps === undefined)
    throw new Error('no weights and no "steps": give steps to estimate from config.json alone');
  const requested = options.targets as string | string[] | undefined;
  const targets = targetsFlag(
    linearModulesFromConfig(raw).modules,
    typeof requested === 'string' ? requested.split(',') : requested,
  );
  const method = (options.method as Method | 'full' | undefined) ?? RECOMMENDED.method;
  if (method === 'full') throw new Error('full fine-tuning has no config-only memory estimate');
  const shape = {
    config: raw,
    method,
    rank: (options.rank as number | undefined) ?? RECOMMENDED.r,
    targets,
    batchSize: (options['batch-size'] as number | undefined) ?? 8,
    seqLength:
      (options['max-length'] as number | undefined) ??
      (config.arch === 'roberta' ? config.maxPositions - 2 : config.maxPositions),
  };
  const accum = (options['grad-accum'] as number | undefined) ?? 1;
  const stepFlops = accum * estimateStepFlops(shape).total;
  const precision = PRECISION[String(options.quantize)] ?? 'f32';
  const memory = estimateStepMemory(shape, [precision])[0];
  return {
    seconds: (stages * steps * stepFlops) / (gflops * 1e9),
    peakBytes: memory.total,
    stepFlops,
    steps,
  };
}
