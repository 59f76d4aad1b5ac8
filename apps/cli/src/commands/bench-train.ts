/** `sharelora bench --train SHAPE[,SHAPE...]`: training-step throughput on real model shapes. */
import { METHODS, type Method } from '@sharelora/adapters';
import * as core from '@sharelora/core/node';
import { benchTrainStep, TRAIN_SHAPES, type TrainBenchResult } from '@sharelora/train';
import { intFlag, quantizeFlag } from '../args.js';
import { UsageError } from '../cli-error.js';
import { progress, progressDone } from '../progress.js';
import { plural } from '../units.js';
import { profileJson, saveTrace } from './profile-output.js';

export interface TrainBenchFlags {
  train: string;
  method?: string;
  rank?: string;
  steps?: string;
  quantize?: string;
  batchSize?: string;
  seqLength?: string;
  json?: boolean;
  profile?: boolean;
  profileOut?: string;
}

const MiB = 2 ** 20;

/** Parses the shape list and options, runs each benchmark, prints or returns the results. */
export async function benchTrain(flags: TrainBenchFlags): Promise<number> {
  const shapes = flags.train.split(',').filter(Boolean);
  for (const s of shapes) {
    if (!TRAIN_SHAPES[s])
      throw new UsageError(`--train: unknown shape "${s}" (known: ${Object.keys(TRAIN_SHAPES).join(', ')})`);
  }
  if (shapes.length === 0) throw new UsageError('--train needs a shape name');
  const method = (flags.method ?? 'lora') as Method;
  if (!METHODS.includes(method))
    throw new UsageError(`--method must be one of ${METHODS.join(', ')}, got "${flags.method}"`);
  if (flags.profileOut && shapes.length > 1) throw new UsageError('--profile-out takes one --train shape');
  const opts = {
    method,
    rank: intFlag('rank', flags.rank, 8),
    steps: intFlag('steps', flags.steps, 3),
    quantize: quantizeFlag(flags.quantize),
    batchSize: flags.batchSize === undefined ? undefined : intFlag('batch-size', flags.batchSize, 1),
    seqLength: flags.seqLength === undefined ? undefined : intFlag('seq-length', flags.seqLength, 1),
    profile: flags.profile ?? false,
  };
  const device = await core.init();
  try {
    const results: TrainBenchResult[] = [];
    for (const shape of shapes) {
      results.push(
        await benchTrainStep({
          ...opts,
          shape,
          onStep: (i, n) => progress(`bench --train ${shape}`, i + 1, n, { unit: 'steps' }),
        }),
      );
    }
    progressDone();
    if (results[0].profile) await saveTrace(flags.profileOut, results[0].profile);
    if (flags.json) {
      console.log(
        JSON.stringify(
          {
            adapter: device.info,
            train: results.map(({ profile, ...r }) =>
              profile ? { ...r, profile: profileJson(profile) } : r,
            ),
          },
          null,
          2,
        ),
      );
      return 0;
    }
    const i = device.info;
    console.log(
      `adapter: ${i.description || i.device} (vendor ${i.vendor || '?'}, architecture ${i.architecture || '?'})`,
    );
    for (const r of results) {
      console.log(
        `${r.shape} ${r.method} r=${r.rank}${r.quantize ? ` over ${r.quantize}` : ''}, batch ${r.batchSize}×${r.seqLength}: ${r.msPerStep.toFixed(1)} ms/step, ${r.tokensPerSec.toFixed(0)} tokens/s, ` +
          `${r.dispatchesPerStep.toFixed(0)} dispatches/step, peak ${(r.peakBytes / MiB).toFixed(1)} MiB, ` +
          `${r.trainableParameters.toLocaleString('en-US')} trainable, loss ${r.losses.at(-1)?.toFixed(4)}  (${r.description})`,
      );
      if (r.profile) {
        console.log(`\nprofile of ${r.shape}, per step over ${plural(r.steps, 'step')}:`);
        console.log(core.formatProfile(r.profile, r.steps));
        if (flags.profileOut) console.log(`trace written to ${flags.profileOut}`);
      }
    }
    return 0;
  } finally {
    core.shutdown();
  }
}
