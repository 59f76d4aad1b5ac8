/**
 * Files written so that a crash or a kill at any moment leaves either the old file or the complete
 * new one: the data goes to a temporary file beside the target, is fsynced, and is renamed over it.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A unique temporary name beside `path` (same directory, so the rename is atomic). */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Makes a rename in `dir` durable (a no-op where directories cannot be fsynced, e.g. Windows). */
export async function syncDirectory(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Not supported here; the data itself was already fsynced.
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Writes `path` atomically through `write`, which fills an open handle of the temporary file; the
 * file is fsynced and renamed over `path`, and removed if anything fails.
 */
export async function writeAtomically(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(path);
  const tmp = tempPathBeside(path);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  await syncDirectory(dir);
}

/** Writes `data` to `path` atomically, creating the parent directory if needed. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeAtomically(path, (fh) => fh.writeFile(data));
}
