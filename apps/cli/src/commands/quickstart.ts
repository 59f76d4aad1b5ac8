import { init, shutdown } from '@sharelora/core/node';
import {
  checkOutputPath,
  formatQuickstartTable,
  METHOD_LABELS,
  OutputLockedError,
  QUICKSTART_METHODS,
  type QuickstartEvent,
  runQuickstart,
} from '@sharelora/train';
import { numberFlag, parseFlags, seedFlag } from '../args.js';
import { asUsage, UsageError } from '../cli-error.js';
import { clock, progress, progressDone } from '../progress.js';

const DEFAULT_OUT = './sharelora-quickstart';

export const quickstartHelp = `Usage: sharelora quickstart [--out DIR] [--seed N] [--steps-scale X] [--json]

ShareLoRA's claim in miniature, offline, with no files needed (a few minutes on two CPU cores):
  1. pretrains a tiny LLaMA (4 layers, d_model 64) from scratch on a generated task: copy 5 digits;
  2. fine-tunes it on a related task (add 3 to each digit, mod 10) with LoRA, ShareA, ShareB and
     ShareAB at the same rank, seed and step budget;
  3. prints each method's trainable parameters, optimizer-state bytes, peak memory, ms/step,
     held-out exact match (greedy generation) and validation loss, all measured;
  4. writes report.html (the table and loss curves, self-contained), results.json, the pretrained
     base model (base/) and the four adapters (PEFT format) to the output folder.

Options:
  --out DIR           output folder (default ${DEFAULT_OUT}; files in it are replaced; locked while
                      the run lasts, so a second quickstart into it is refused)
  --seed N            seed of the weights, data and adapters, an integer >= 0 (default 0)
  --steps-scale X     multiply every step budget by X > 0 (default 1; e.g. 0.1 for a smoke run,
                      which also shrinks the validation and held-out sets)
  --json              print the results as one JSON document on stdout
  -h, --help          show this help`;

/** Phase lines on stderr (one per phase, TTY or not) and the progress of the phase that trains. */
function reporter(): (e: QuickstartEvent) => void {
  const phases = ['pretrain', ...QUICKSTART_METHODS];
  return (e) => {
    const n = `[${phases.indexOf(e.phase) + 1}/${phases.length}]`;
    const name = e.phase === 'pretrain' ? 'pretrain' : METHOD_LABELS[e.phase];
    if (e.type === 'start') {
      progress(`${n} ${name}`, 0, e.steps, { unit: 'steps', detail: e.title });
    } else if (e.type === 'step') {
      progress(`${n} ${name}`, e.step, e.steps, {
        unit: 'steps',
        detail: `loss ${e.loss.toFixed(4)} nats/token`,
      });
    } else {
      progressDone();
      process.stderr.write(`${n} ${name}: ${e.summary} (${clock(e.seconds)})\n`);
    }
  };
}

export async function quickstart(argv: string[]): Promise<number> {
  const { values } = parseFlags('quickstart', argv, {
    out: { type: 'string' },
    seed: { type: 'string' },
    'steps-scale': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(quickstartHelp);
    return 0;
  }
  const seed = seedFlag(values.seed) ?? 0;
  const stepsScale = numberFlag('steps-scale', values['steps-scale'], (x) => x > 0, 'a number > 0') ?? 1;
  const outDir = values.out ?? DEFAULT_OUT;
  if (outDir === '') throw new UsageError('--out must name a folder');
  // Its own earlier results are replaced; a system directory, a file or a model is refused.
  await checkOutputPath(outDir, { kind: 'directory' }).catch(asUsage);

  await init();
  try {
    const r = await runQuickstart({ outDir, seed, stepsScale, onEvent: reporter() }).catch((e) => {
      // Only the lock is the user's to fix; any other failure here is a runtime one.
      if (e instanceof OutputLockedError) throw new UsageError(e.message);
      throw e;
    });
    if (values.json) {
      console.log(JSON.stringify(r, null, 2));
      return 0;
    }
    const ft = r.rows[0];
    console.log(
      `\nFine-tuning a ${r.model.layers}-layer tiny LLaMA (pretrained here on "${r.tasks.pretrain.name}") on ` +
        `"${r.tasks.finetune.name}": rank ${r.adapter.r} on ${r.adapter.targets.join(', ')}, ${ft.steps} steps of ` +
        `${r.batchSize}, seed ${r.seed}. Exact match: greedy answers on ${r.tasks.heldOut} held-out prompts ` +
        `(${(100 * r.pretrain.newTaskAccuracy).toFixed(1)}% before fine-tuning).\n`,
    );
    console.log(formatQuickstartTable(r));
    console.log(`\n${r.notes.map((s) => `- ${s}`).join('\n')}`);
    const shareA = r.rows.find((row) => row.method === 'share-a');
    console.log(
      `\nReport: ${r.files.report}\nResults: ${r.files.results}\nBase model: ${r.files.baseModel}\n` +
        `Adapters: ${r.rows.map((row) => row.adapterDir).join(', ')}\nTook ${clock(r.seconds)}.`,
    );
    if (shareA)
      console.log(
        `Try one: sharelora generate --model ${r.files.baseModel} --adapter ${shareA.adapterDir} --prompt 31415=`,
      );
    return 0;
  } finally {
    shutdown();
  }
}
