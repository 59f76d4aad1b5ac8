/**
 * Dawn prints two notices from native code straight to file descriptor 2 when it first enumerates
 * adapters ("maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 …"):
 * it clamps limits the driver reports above its own table, whatever limits a device later requests,
 * and no Dawn toggle turns them off. They read like errors and say nothing a user can act on, so
 * while Dawn starts, descriptor 2 points at a temporary file (dup/dup2 through koffi's FFI); then
 * it is restored and everything captured except those notices is written back to stderr. Where the
 * FFI or the C library is unavailable, the function just runs and the notices stay.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One line of Dawn's limit-clamping notice (any limit value, either buffer kind). */
const DAWN_LIMIT_NOTICE =
  /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;

interface Libc {
  dup(fd: number): number;
  dup2(from: number, to: number): number;
}

let libc: Libc | null | undefined;

/** dup and dup2 from the C library through koffi, or null where either cannot be loaded. */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  const name = { linux: 'libc.so.6', darwin: 'libSystem.B.dylib', freebsd: 'libc.so.7' }[
    process.platform as string
  ];
  if (!name) return libc;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as {
      load(path: string): { func(signature: string): (...args: number[]) => number };
    };
    const lib = koffi.load(name);
    const dup = lib.func('int dup(int)');
    const dup2 = lib.func('int dup2(int, int)');
    libc = { dup: (fd) => dup(fd), dup2: (from, to) => dup2(from, to) };
  } catch {
    // No FFI for this platform or Node: the notices are harmless, so they are left alone.
  }
  return libc;
}

/** `text` without Dawn's limit notices (every other line kept, in order). */
export function withoutDawnNotices(text: string): string {
  return text
    .split('\n')
    .filter((line) => !DAWN_LIMIT_NOTICE.test(line))
    .join('\n');
}

/**
 * Runs `start` (creating Dawn's instance and the first adapter) with stderr captured, then writes
 * back what it printed minus Dawn's limit notices. Writes from other code during `start` are kept,
 * only delayed until it settles.
 */
export async function quietDawnStart<T>(start: () => Promise<T>): Promise<T> {
  const c = loadLibc();
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'sharelora-stderr-'));
  } catch {
    return start();
  }
  const file = join(dir, 'stderr');
  const fd = openSync(file, 'w+');
  const saved = c ? c.dup(2) : -1;
  if (!c || saved < 0 || c.dup2(fd, 2) < 0) {
    if (saved >= 0) closeSync(saved);
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    return start();
  }
  try {
    return await start();
  } finally {
    c.dup2(saved, 2);
    closeSync(saved);
    closeSync(fd);
    const captured = withoutDawnNotices(readFileSync(file, 'utf8'));
    rmSync(dir, { recursive: true, force: true });
    if (captured.length > 0) writeSync(2, captured);
  }
}
