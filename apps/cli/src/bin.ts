import { readFileSync } from 'node:fs';
import { ShareloraError } from '@sharelora/core';
import { UsageError } from './cli-error.js';
import { bench, benchHelp } from './commands/bench.js';
import { doctor, doctorHelp } from './commands/doctor.js';
import { evalCommand, evalHelp, evalMerge, evalMergeHelp } from './commands/eval.js';
import { experiment, experimentHelp } from './commands/experiment.js';
import { forward, forwardHelp } from './commands/forward.js';
import { generate, generateHelp } from './commands/generate.js';
import { importCommand, importHelp } from './commands/import.js';
import { init, initHelp } from './commands/init.js';
import { params, paramsHelp } from './commands/params.js';
import { quantize, quantizeHelp } from './commands/quantize.js';
import { quickstart, quickstartHelp } from './commands/quickstart.js';
import { train, trainHelp } from './commands/train.js';
import { progressDone } from './progress.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string; summary: string }> =
  {
    quickstart: { run: quickstart, help: quickstartHelp, summary: 'LoRA vs ShareLoRA, offline, in minutes' },
    doctor: { run: doctor, help: doctorHelp, summary: 'check the WebGPU adapter and the kernels on it' },
    bench: { run: bench, help: benchHelp, summary: 'kernel and training-step throughput, memory' },
    init: { run: init, help: initHelp, summary: 'write a tiny or small random model (HF layout)' },
    forward: { run: forward, help: forwardHelp, summary: 'logits, loss and gradients on token ids' },
    import: { run: importCommand, help: importHelp, summary: 'GGUF or llama2.c checkpoint to HF layout' },
    generate: { run: generate, help: generateHelp, summary: 'continue a prompt, streaming tokens' },
    quantize: {
      run: quantize,
      help: quantizeHelp,
      summary: 'nf4/fp4/int8 copy of a model (or back to floats)',
    },
    eval: { run: evalCommand, help: evalHelp, summary: 'GSM8K, MMLU, MMLU-Pro, HumanEval, GLUE results' },
    'eval-merge': { run: evalMerge, help: evalMergeHelp, summary: 'merge sharded eval result files' },
    train: { run: train, help: trainHelp, summary: 'fine-tune with LoRA, ShareLoRA or in full; resumable' },
    experiment: {
      run: experiment,
      help: experimentHelp,
      summary: 'run a grid of train + eval cells; paper-style reports',
    },
    params: {
      run: params,
      help: paramsHelp,
      summary: 'trainable parameters of LoRA/ShareLoRA from config.json',
    },
  };

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `Usage: sharelora <command> [options]

Fine-tune language models with LoRA and ShareLoRA on WebGPU.

Commands:
${lines.join('\n')}

Run 'sharelora help <command>' (or 'sharelora <command> --help') for a command's options, and
'sharelora --version' for the version.`;
}

/** The command of that name, or a usage error listing them. */
function commandNamed(name: string) {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command)
    throw new UsageError(`unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
  return command;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    // The built file lives in dist/, next to the package's package.json.
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    console.log(pkg.version);
    return 0;
  }
  if (name === 'help' && rest.length) {
    if (rest.length > 1) throw new UsageError(`sharelora help takes one command, got ${rest.length}`);
    console.log(commandNamed(rest[0]).help);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  return commandNamed(name).run(rest);
}

/**
 * A full disk or exhausted quota while writing: the user's to fix, like bad input (exit 2), with a
 * message naming the file instead of a stack trace. Writes are atomic, so nothing half-written stays.
 */
function diskFull(err: unknown): string | null {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || (e.code !== 'ENOSPC' && e.code !== 'EDQUOT')) return null;
  const what = e.code === 'ENOSPC' ? 'no space left on the device' : 'disk quota exceeded';
  return (
    `${e.path ? `${e.path}: ${what}` : `${what} while writing`}; free some space and run again ` +
    '(sharelora train --resume continues from the last checkpoint)'
  );
}

// A live progress bar holds a redraw timer; ending it on every way out lets the process exit.
main(process.argv.slice(2)).then(
  (code) => {
    progressDone();
    process.exitCode = code;
  },
  (err: unknown) => {
    progressDone();
    const full = diskFull(err);
    if (full) {
      console.error(`sharelora: ${full}`);
      process.exitCode = 2;
    } else if (err instanceof UsageError) {
      console.error(`sharelora: ${err.message}`);
      process.exitCode = 2;
    } else if (err instanceof ShareloraError) {
      console.error(`sharelora: ${err.message}`);
      process.exitCode = 1;
    } else {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exitCode = 1;
    }
  },
);
