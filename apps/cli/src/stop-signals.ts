/**
 * A long run's answer to SIGINT (Ctrl-C), SIGTERM (timeout, Slurm, Kubernetes) and SIGHUP (a closed
 * terminal): the first asks it to stop at the next step boundary with a checkpoint, and the process
 * then exits with the shell's code for that signal (128 + its number). A later signal quits at once:
 * with that code if the checkpoint is already written, after it if it is being written (so a second
 * signal never costs it), and otherwise without one (exit QUIT_WITHOUT_CHECKPOINT).
 */
import { progressDone } from './progress.js';

/** The exit code for a run stopped by each signal after its checkpoint was written: 128 + the signal's number. */
export const STOP_EXIT_CODES = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof STOP_EXIT_CODES;

/** The exit code when a second signal quits before a checkpoint of the current step was written. */
export const QUIT_WITHOUT_CHECKPOINT = 3;

export class StopSignals {
  private readonly controller = new AbortController();
  private first: StopSignal | null = null;
  /** Set while a checkpoint is being written, when a further signal waits for it. */
  private writing = false;
  /** Set once a checkpoint is complete after the first signal: the stop is safe. */
  private stoppedSafely = false;
  private readonly handler = (sig: StopSignal) => this.onSignal(sig);

  /**
   * Starts listening. `command` prefixes messages; `lastCheckpoint` tells a quitting run which
   * checkpoint it leaves (null: none).
   */
  constructor(
    private readonly command: string,
    private readonly lastCheckpoint: () => string | null,
  ) {
    for (const sig of Object.keys(STOP_EXIT_CODES)) process.on(sig, this.handler);
  }

  /** Aborted by the first signal: pass it to the Trainer. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The exit code the first signal calls for (128 + its number), or null when none came. */
  get exitCode(): number | null {
    return this.first && STOP_EXIT_CODES[this.first];
  }

  /** Marks a checkpoint write as in progress (true) or done (false). */
  checkpointing(writing: boolean): void {
    this.writing = writing;
    if (!writing && this.first !== null) this.stoppedSafely = true;
  }

  /** Stops listening: signals get their default behaviour again. */
  dispose(): void {
    for (const sig of Object.keys(STOP_EXIT_CODES)) process.off(sig, this.handler);
  }

  private onSignal(sig: StopSignal): void {
    progressDone();
    if (this.first === null) {
      this.first = sig;
      console.error(
        `${this.command}: ${sig}: stopping at the next step to write a checkpoint (a second signal quits without one)`,
      );
      this.controller.abort();
    } else if (this.stoppedSafely) {
      // The checkpoint is written: what is left (printing, releasing the device) may be skipped.
      process.exit(this.exitCode ?? QUIT_WITHOUT_CHECKPOINT);
    } else if (this.writing) {
      console.error(
        `${this.command}: ${sig}: a checkpoint is being written; stopping as soon as it is complete`,
      );
    } else {
      const last = this.lastCheckpoint();
      console.error(
        `${this.command}: ${sig}: quitting without a checkpoint of this step; ` +
          (last ? `the last checkpoint is ${last} (continue with --resume)` : 'no checkpoint was written'),
      );
      // The 'exit' event still runs, which releases the output lock.
      process.exit(QUIT_WITHOUT_CHECKPOINT);
    }
  }
}
