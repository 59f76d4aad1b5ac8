/**
 * Advisory locks on outputs, so that two runs never write into the same place. A lock is a file
 * created with O_EXCL that names its holder (pid, host, start time, command line). A lock whose holder
 * is a process that no longer runs on this host is stale and taken over; one held from another host
 * cannot be checked from here and is refused like a live one.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ShareloraError } from '@sharelora/core';

/** The lock file inside a locked output directory. */
export const LOCK_FILE = '.sharelora.lock';

/** Who holds a lock, as recorded in its lock file. */
export interface LockHolder {
  pid: number;
  host: string;
  /** When the lock was taken (ISO 8601). */
  started: string;
  /** The holder's command line. */
  command: string;
}

/** The output is locked by another live process (or one on another host); `holder` is null when its lock file is unreadable. */
export class OutputLockedError extends ShareloraError {
  constructor(
    /** The locked output (a directory, or a file). */
    readonly target: string,
    readonly lockFile: string,
    readonly holder: LockHolder | null,
  ) {
    const who = holder
      ? `process ${holder.pid} on ${holder.host} (since ${holder.started}: ${holder.command})`
      : 'another process (its lock file is being written or is unreadable)';
    super(
      'OUTPUT_LOCKED',
      `${target} is in use by ${who}; wait for it to finish, or delete ${lockFile} if that process is gone`,
    );
  }
}

/**
 * An empty or garbled lock file younger than this is a lock being written (O_EXCL creates the file
 * before its holder can fill it); an older one was left by a crash at that moment.
 */
const UNREADABLE_GRACE_MS = 10_000;

/** Locks this process holds, released if it exits (process.exit, or an uncaught error) without release(). */
const held = new Set<OutputLock>();
let exitHookInstalled = false;

function releaseHeldOnExit(): void {
  for (const lock of held) lock.release();
}

/** Removes `dirs` (deepest first) while they are empty. */
function removeEmptyDirs(dirs: string[]): void {
  try {
    for (const d of dirs) rmdirSync(d);
  } catch {
    // Not empty (the run wrote there) or gone: the rest, above it, stays too.
  }
}

/** An acquired lock; release() it when done writing (locks still held are also released when the process exits). */
export class OutputLock {
  private released = false;

  /** @internal Use lockOutputDir or lockOutputFile. */
  constructor(
    /** The locked output, resolved to an absolute path. */
    readonly target: string,
    /** The lock file. */
    readonly file: string,
    /** What this lock file says (this process). */
    readonly holder: LockHolder,
    /** The lock file's exact contents, to recognise it as ours. */
    private readonly token: string,
    /** The directories acquiring created (deepest first), removed again on release if still empty. */
    private readonly createdDirs: string[],
  ) {}

  /**
   * Removes the lock file (if it is still this lock's) and any directory acquiring created that
   * stayed empty. Synchronous, so that a process.exit() (a second signal) cannot cut it in half and
   * the process's exit handler can call it.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this);
    try {
      if (readFileSync(this.file, 'utf8') === this.token) unlinkSync(this.file);
    } catch {
      // Removed already: nothing to release.
    }
    removeEmptyDirs(this.createdDirs);
  }
}

function parseHolder(text: string): LockHolder | null {
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isInteger(h.pid) && typeof h.host === 'string' ? h : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is a running process on this host (EPERM: it runs, as another user). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process whose parent died too stays a zombie until something reaps it: it runs no more.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (e) {
    // No /proc (not Linux): trust kill(0). ENOENT on Linux: it just exited.
    return !(process.platform === 'linux' && (e as NodeJS.ErrnoException).code === 'ENOENT');
  }
}

/** Stale: written by a process that no longer runs here, or left unreadable by a crash mid-write. */
async function isStale(file: string, holder: LockHolder | null): Promise<boolean> {
  if (holder === null) {
    const age = await stat(file).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    return age > UNREADABLE_GRACE_MS;
  }
  return holder.host === hostname() && holder.pid !== process.pid && !processRuns(holder.pid);
}

/** Directories that mkdir -p of `dir` would create, deepest first. */
async function missingDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    if (
      await stat(d).then(
        () => true,
        () => false,
      )
    )
      return out;
    out.push(d);
    if (dirname(d) === d) return out;
  }
}

async function acquire(target: string, file: string): Promise<OutputLock> {
  const created = await missingDirs(dirname(file));
  await mkdir(dirname(file), { recursive: true });
  const holder: LockHolder = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: process.argv.slice(1).join(' '),
  };
  // The nonce tells this lock from an earlier one of the same process.
  const token = `${JSON.stringify({ ...holder, nonce: randomBytes(8).toString('hex') })}\n`;
  const giveUp = (e: unknown): never => {
    removeEmptyDirs(created);
    throw e;
  };
  // A few rounds: each one either takes the lock, refuses, or clears a stale lock for the next.
  for (let round = 0; round < 5; round++) {
    try {
      const fh = await open(file, 'wx');
      try {
        await fh.writeFile(token);
      } finally {
        await fh.close();
      }
      const lock = new OutputLock(target, file, holder, token, created);
      held.add(lock);
      if (!exitHookInstalled) {
        process.on('exit', releaseHeldOnExit);
        exitHookInstalled = true;
      }
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return giveUp(e);
    }
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) continue; // released meanwhile
    const other = parseHolder(text);
    if (!(await isStale(file, other))) return giveUp(new OutputLockedError(target, file, other));
    // Move the stale lock aside, then make sure what moved is the lock judged stale: another process
    // may have taken it over in between, and its fresh lock goes back in place.
    const aside = `${file}.stale-${randomBytes(4).toString('hex')}`;
    if (
      !(await rename(file, aside).then(
        () => true,
        () => false,
      ))
    )
      continue;
    if ((await readFile(aside, 'utf8').catch(() => null)) !== text)
      await link(aside, file).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
  }
  return giveUp(
    new OutputLockedError(target, file, parseHolder(await readFile(file, 'utf8').catch(() => ''))),
  );
}

/**
 * Locks an output directory (created if missing) with `DIR/.sharelora.lock`; an OutputLockedError
 * names the holder when another live process has it.
 */
export function lockOutputDir(dir: string): Promise<OutputLock> {
  const target = resolve(dir);
  return acquire(target, join(target, LOCK_FILE));
}

/**
 * Locks a single output file with `FILE.lock` beside it (its directory is created if missing), so
 * that runs writing other files of the same directory (e.g. shards) do not wait on each other.
 */
export function lockOutputFile(file: string): Promise<OutputLock> {
  const target = resolve(file);
  return acquire(target, `${target}.lock`);
}

/** Runs `fn` holding the lock on output directory `dir`, released afterwards whatever happens. */
export async function withOutputDirLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = await lockOutputDir(dir);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
