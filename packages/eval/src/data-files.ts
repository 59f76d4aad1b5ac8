/** Finding a task's files from the `--data` path: a folder laid out as in the shared data, or a file. */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EvalDataError } from './errors.js';

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    throw new EvalDataError(path, null, 'not found');
  }
}

/** The first of `names` (file names, or patterns: the first match in name order) that exists in `dir`. */
export async function pick(dir: string, names: (string | RegExp)[], what: string): Promise<string> {
  const entries = await readdir(dir);
  for (const n of names) {
    const hit =
      typeof n === 'string' ? entries.find((e) => e === n) : entries.filter((e) => n.test(e)).sort()[0];
    if (hit) return join(dir, hit);
  }
  throw new EvalDataError(dir, null, `no ${what} file here (looked for ${names.map(String).join(', ')})`);
}

/** A data path as a folder and, when the path is a file, that file. */
export async function locate(data: string): Promise<{ dir: string; file: string | null }> {
  return (await isDir(data)) ? { dir: data, file: null } : { dir: dirname(data), file: data };
}

/** The path itself when it is a file, else the first of `names` in the folder. */
export async function fileIn(data: string, names: (string | RegExp)[], what: string): Promise<string> {
  const { dir, file } = await locate(data);
  return file ?? pick(dir, names, what);
}
