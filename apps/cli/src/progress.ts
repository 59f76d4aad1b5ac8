/**
 * Progress of long phases on stderr, so stdout (and --json) stays clean. On a terminal one live line
 * is redrawn in place; elsewhere (a pipe, nohup, CI, a batch job) the latest message is written as a
 * plain line every SHARELORA_PROGRESS_SECONDS seconds (default 10; 0 writes every update), the first
 * one after that long, so short commands print nothing extra.
 */

const DEFAULT_SECONDS = 10;

function intervalMs(): number {
  const s = Number(process.env.SHARELORA_PROGRESS_SECONDS ?? DEFAULT_SECONDS);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : DEFAULT_SECONDS * 1000;
}

let lastPlain = Date.now();

export function progress(message: string): void {
  if (process.stderr.isTTY) {
    process.stderr.write(`\r\x1b[2K${message}`);
    return;
  }
  const now = Date.now();
  if (now - lastPlain < intervalMs()) return;
  lastPlain = now;
  process.stderr.write(`${message.trim()}\n`);
}

export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
}
