import { ShareloraError } from '../errors.js';

/**
 * The learning-rate curve after warmup ({@link lrAt}): 'constant' at the base rate; 'linear' decay to
 * 0 at totalSteps; 'cosine' decay to minLr (default 0) over totalSteps, as HF transformers.
 */
export type ScheduleKind = 'constant' | 'linear' | 'cosine';

/** A learning-rate schedule for {@link lrAt}. */
export interface ScheduleOptions {
  /** The peak rate, reached at the end of warmup. */
  base: number;
  schedule: ScheduleKind;
  /** Steps of linear warmup from 0 to base (default 0). */
  warmupSteps?: number;
  /** Required for 'linear' and 'cosine'. */
  totalSteps?: number;
  /** Cosine only: floor of the decay (HF get_cosine_with_min_lr_schedule_with_warmup). */
  minLr?: number;
  /** Cosine only: HF's num_cycles, waves of the cosine (default 0.5: a single decay from base to 0). */
  numCycles?: number;
}

/**
 * Learning rate after `step` completed optimizer steps, as HF transformers' LambdaLR schedules
 * (get_constant_schedule_with_warmup, get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup):
 * base · λ(step). Like HF, the first update (step 0) uses λ(0) = 0 when there is warmup.
 */
export function lrAt(step: number, o: ScheduleOptions): number {
  return o.base * lrLambda(step, o);
}

/** HF's lr_lambda: the multiplier of the base rate (kept separate so lrAt is exactly base_lr · λ as LambdaLR). */
function lrLambda(step: number, o: ScheduleOptions): number {
  const warmup = o.warmupSteps ?? 0;
  if (o.minLr !== undefined && o.schedule !== 'cosine')
    throw new ShareloraError('BAD_ARGUMENT', 'lrAt: minLr applies to the cosine schedule only');
  if (step < warmup) return step / Math.max(1, warmup);
  if (o.schedule === 'constant') return 1;
  const total = o.totalSteps;
  if (total === undefined)
    throw new ShareloraError('BAD_ARGUMENT', `lrAt: the ${o.schedule} schedule needs totalSteps`);
  if (o.schedule === 'linear') return Math.max(0, (total - step) / Math.max(1, total - warmup));
  const progress = (step - warmup) / Math.max(1, total - warmup);
  const minRate = (o.minLr ?? 0) / o.base;
  const f = 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress));
  return Math.max(0, f * (1 - minRate) + minRate);
}
