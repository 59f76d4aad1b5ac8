/**
 * Checks on where a run is told to write, made before anything is loaded or written: never over
 * its own inputs, never over a model or adapter unless asked to, never into the filesystem root or
 * a system directory, and a file where a directory is meant (or the other way round) is refused.
 */
import { realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, parse, relative, resolve, sep } from 'node:path';
import { ShareloraError } from '@sharelora/core';

/** An output path that must not be written; the message names the flag and the reason. */
export class UnsafeOutputError extends ShareloraError {
  constructor(message: string) {
    super('UNSAFE_OUTPUT', message);
  }
}

/** Something a run reads, named as the user gave it. */
export interface OutputInput {
  /** How the user named it, for messages (e.g. '--data'). */
  flag: string;
  /** The path given; an absent optional input may be passed as undefined and is skipped. */
  path: string | undefined;
  /** Every file under this directory is read (a data folder), so an output inside it is refused too. */
  wholeTree?: boolean;
}

/**
 * Options of {@link checkOutputPath}: what kind of output it is, what the run reads, and whether an
 * existing model may be written over.
 */
export interface OutputPathOptions {
  /** How the user named the output, for messages (default '--out'). */
  flag?: string;
  /** A directory written into, or a single file. */
  kind: 'directory' | 'file';
  /** What the run reads: the output may not be, contain, or (for a wholeTree input) lie inside one. */
  inputs?: OutputInput[];
  /** Allow writing into a directory that already holds a model or adapter (default false). */
  overwriteModel?: boolean;
}

/** Written into by the system (or by everyone): an output is refused there, and anywhere below. */
const SYSTEM_TREES = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/proc',
  '/sbin',
  '/sys',
  '/usr',
];
/** Directories that hold others' files: an output is refused there, but not in a folder below. */
const SHARED_DIRS = [
  '/home',
  '/Users',
  '/root',
  '/tmp',
  '/var',
  '/var/tmp',
  '/opt',
  '/mnt',
  '/media',
  '/srv',
];
/** Files that make a directory a model (Hugging Face layout) or an adapter (PEFT layout). */
const MODEL_MARKERS = ['config.json', 'adapter_config.json'];

const isWithin = (child: string, parent: string): boolean => {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !parse(rel).root;
};

/** The path with symlinks resolved as far as it exists (the rest appended as given). */
async function realpathLoose(path: string): Promise<string> {
  const abs = resolve(path);
  const rest: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    try {
      return join(await realpath(p), ...rest.reverse());
    } catch {
      if (dirname(p) === p) return abs;
      rest.push(basename(p));
    }
  }
}

const statOrNull = (p: string) => stat(p).catch(() => null);

/** Why `abs` (absolute, symlinks resolved or not) is a system location, or null. */
function systemReason(abs: string): string | null {
  if (parse(abs).root === abs) return 'the filesystem root';
  if (abs === homedir() || SHARED_DIRS.includes(abs)) return 'a system or shared directory';
  if (SYSTEM_TREES.some((t) => abs === t || isWithin(abs, t))) return 'a system directory';
  return null;
}

/**
 * Refuses an output path that would overwrite an input, a model or adapter (unless
 * `overwriteModel`), or system files, or whose kind (file or directory) is wrong; resolves when it is
 * safe to write. Symlinks and hard links are followed, so another name for an input is caught too.
 */
export async function checkOutputPath(out: string, opts: OutputPathOptions): Promise<void> {
  const flag = opts.flag ?? '--out';
  const bad = (why: string) => new UnsafeOutputError(`${flag} ${out}: ${why}`);
  const abs = resolve(out);
  const real = await realpathLoose(out);
  const system = systemReason(abs) ?? systemReason(real);
  if (system) throw bad(`refusing to write into ${system}`);

  const st = await statOrNull(real);

  for (const input of opts.inputs ?? []) {
    if (input.path === undefined) continue;
    const inReal = await realpathLoose(input.path);
    const inSt = await statOrNull(inReal);
    const same = inReal === real || (st && inSt && st.dev === inSt.dev && st.ino === inSt.ino);
    if (same) throw bad(`is the ${input.flag} input; refusing to overwrite it`);
    if (isWithin(inReal, real))
      throw bad(`contains the ${input.flag} input ${input.path}; write somewhere else`);
    if (input.wholeTree && inSt?.isDirectory() && isWithin(real, inReal))
      throw bad(`is inside the ${input.flag} folder ${input.path}; write somewhere else`);
  }

  if (st && opts.kind === 'directory' && !st.isDirectory())
    throw bad('is an existing file; it must name a directory');
  if (st && opts.kind === 'file' && st.isDirectory()) throw bad('is a directory; it must name a file');
  if (st?.isDirectory() && !opts.overwriteModel) {
    for (const marker of MODEL_MARKERS) {
      if (await statOrNull(join(real, marker))) {
        throw bad(
          `holds a ${marker === 'config.json' ? 'model' : 'trained adapter'} (${marker}); ` +
            'refusing to overwrite it without --overwrite',
        );
      }
    }
  }
}
