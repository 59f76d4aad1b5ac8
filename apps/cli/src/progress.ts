/**
 * Progress of long phases (load, tokenize, train, validate, evaluate, generate) on stderr, so stdout
 * (and --json) stays clean. Every command reports through `progress()`, so all look alike:
 *
 *   train [=========               ] 12/32 steps  1.9 steps/s  ETA 11s  loss 2.3011 nats/token
 *
 * On a terminal that line is a live bar (cli-progress) redrawn in place. Elsewhere (a pipe, nohup, CI,
 * a batch job) the latest state is written as a plain line every SHARELORA_PROGRESS_SECONDS seconds
 * (default 10; 0 writes every update), the first one after that long, so short commands print
 * nothing extra.
 */
import { formatBytes } from '@sharelora/core';
import cliProgress from 'cli-progress';

const DEFAULT_SECONDS = 10;
const BAR_WIDTH = 24;

function intervalMs(): number {
  const s = Number(process.env.SHARELORA_PROGRESS_SECONDS ?? DEFAULT_SECONDS);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : DEFAULT_SECONDS * 1000;
}

/** Seconds as a short clock: 42s, 3m05s, 1h02m, and from two days on 3.5d. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 2 * 86400)
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${(s / 86400).toFixed(1)}d`;
}

export interface ProgressOptions {
  /** What is counted, plural ("steps", "examples", "MiB"); shown after the count and in the rate. */
  unit?: string;
  /** Shown after the ETA: the latest loss, the item being worked on. */
  detail?: string;
  /** Counts are bytes: shown as KiB/MiB/GiB, the rate as bytes per second. */
  bytes?: boolean;
}

interface Phase {
  label: string;
  unit: string;
  total: number;
  done: number;
  /** Where this invocation started counting (a resumed run starts past 0), for the rate. */
  start: number;
  startedAt: number;
  detail: string;
  bytes: boolean;
  bar: cliProgress.SingleBar | null;
}

let current: Phase | null = null;
let lastPlain = Date.now();

/** The rate as read: bytes per second, units per second, or seconds per unit when slower than one. */
function rate(p: Phase, perSecond: number): string {
  if (p.bytes) return `${formatBytes(perSecond)}/s`;
  const one = p.unit.endsWith('s') ? p.unit.slice(0, -1) : p.unit;
  return perSecond >= 1 || !p.unit
    ? `${perSecond.toFixed(1)} ${p.unit || 'items'}/s`
    : `${(1 / perSecond).toFixed(1)} s/${one}`;
}

/** The one progress line every command shows. */
function line(p: Phase): string {
  const filled = p.total > 0 ? Math.min(BAR_WIDTH, Math.round((BAR_WIDTH * p.done) / p.total)) : 0;
  const perSecond = (p.done - p.start) / ((Date.now() - p.startedAt) / 1000);
  const measured = perSecond > 0 && Number.isFinite(perSecond);
  const count = p.bytes
    ? `${formatBytes(p.done)}/${formatBytes(p.total)}`
    : `${p.done}/${p.total}${p.unit ? ` ${p.unit}` : ''}`;
  return [
    `${p.label} [${'='.repeat(filled)}${' '.repeat(BAR_WIDTH - filled)}] ${count}`,
    measured ? rate(p, perSecond) : '',
    `ETA ${measured ? clock((p.total - p.done) / perSecond) : '--'}`,
    p.detail,
  ]
    .filter(Boolean)
    .join('  ');
}

/** Phases reported since the last progressDone(), by label: a phase interrupted by another (validation within training) keeps its rate. */
const phases = new Map<string, Phase>();

function phaseOf(label: string, total: number, options: ProgressOptions, done: number): Phase {
  const known = phases.get(label);
  if (known && known.total === total) return known;
  const p: Phase = {
    label,
    unit: options.unit ?? '',
    total,
    done,
    start: done,
    startedAt: Date.now(),
    detail: options.detail ?? '',
    bytes: options.bytes ?? false,
    bar: null,
  };
  phases.set(label, p);
  return p;
}

/** Makes `p` the phase on screen; on a terminal that is a live cli-progress bar. */
function show(p: Phase): void {
  if (current === p) return;
  current?.bar?.stop();
  current = p;
  if (!process.stderr.isTTY) return;
  p.bar ??= new cliProgress.SingleBar({
    stream: process.stderr,
    format: () => line(p),
    clearOnComplete: true,
    hideCursor: false,
    // Lines printed while the bar is live push it down; redraw it even when unchanged.
    forceRedraw: true,
    gracefulExit: false,
  });
  p.bar.start(p.total, p.done);
}

/**
 * Reports `done` of `total` for the phase named `label`; another label takes the screen until it
 * is reported again. Rate and ETA count from a phase's first report.
 */
export function progress(label: string, done: number, total: number, options: ProgressOptions = {}): void {
  const p = phaseOf(label, total, options, done);
  p.done = done;
  if (options.detail !== undefined) p.detail = options.detail;
  show(p);
  if (p.bar) {
    p.bar.update(done);
    return;
  }
  const now = Date.now();
  if (now - lastPlain < intervalMs()) return;
  lastPlain = now;
  process.stderr.write(`${line(p)}\n`);
}

/** The progress callback of a model load: `load DIR`, in bytes read. */
export function loadProgress(dir: string): (p: { loadedBytes: number; totalBytes: number }) => void {
  return (p) => progress(`load ${dir}`, p.loadedBytes, p.totalBytes, { bytes: true });
}

/** Ends the live phase (on a terminal its line is cleared); safe to call when none is live. */
export function progressDone(): void {
  current?.bar?.stop();
  current = null;
  phases.clear();
}

/**
 * Clears a live bar's line, so that a message printed next (on stdout or stderr) starts at column 0;
 * the bar is redrawn below it.
 */
export function clearProgressLine(): void {
  if (current?.bar) process.stderr.write('\r\x1b[2K');
}
