/**
 * Checkpoints on disk: everything a run needs to continue bit for bit (trainable values, optimizer
 * state, data position, dropout offsets, counters), written so that a crash at any moment leaves the
 * previous checkpoint whole.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type {
  BaseModelIdentity,
  Optimizer,
  OptimizerStateDict,
  Parameter,
  TensorInput,
  TensorSource,
} from '@sharelora/core';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from '@sharelora/core/node';
import type { DataPosition } from '../data/batch.js';
import { TrainingError } from './errors.js';

export const CHECKPOINT_PREFIX = 'checkpoint-';
const TRAINABLE_FILE = 'trainable.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'trainer_state.json';
/** The adapter (or model) as `save` writes it, so a checkpoint is also usable on its own. */
export const CHECKPOINT_ADAPTER_DIR = 'adapter';
const STATE_FORMAT = 1;

/** trainer_state.json: the non-tensor half of a checkpoint. */
export interface CheckpointState {
  format: number;
  /** Optimizer steps completed. */
  step: number;
  /** Settings that shape the run's numbers; a resume must match them. */
  settings: Record<string, unknown>;
  /** Where the batch loader continues. */
  data: DataPosition;
  /** Offset of every dropout module by its path (their seeds are fixed by the model's construction). */
  dropout: Record<string, number>;
  optimizer: {
    kind: string;
    steps: number;
    lr: number;
    hyper: Record<string, unknown>;
    /** Per trainable parameter (by name): its update count and state tensors; absent when it has no state yet. */
    state: Record<string, { step: number; tensors: string[] }>;
  };
  trainLoss: number | null;
  bestValLoss: number | null;
  bestStep: number | null;
  /** The base model trained on, when its loader recorded it; a resume onto another is refused. */
  baseModel?: BaseModelIdentity;
}

async function syncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch {
    // Directories cannot be fsynced on some platforms (Windows); their files were.
  } finally {
    await fh.close();
  }
}

/** fsyncs every file under `dir`, then the directories, so a rename publishes complete data. */
async function syncTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await syncTree(p);
    else await syncPath(p);
  }
  await syncPath(dir);
}

const suffix = () => randomBytes(4).toString('hex');
const TMP_MARK = '.tmp-';
const OLD_MARK = '.old-';
/** What writeDirAtomically leaves when interrupted: `<name>.tmp-<hex>` or `<name>.old-<hex>`. */
const LEFTOVER = /^(.+)\.(tmp|old)-[0-9a-f]{8}$/;

/**
 * Fills a temporary sibling of `target`, fsyncs it and renames it into place, so readers see the old
 * directory or the complete new one, never a partial one. An existing `target` is first moved aside
 * (rename cannot replace a non-empty directory) and removed afterwards; cleanStale() puts it back if
 * a crash came between the two renames.
 */
export async function writeDirAtomically(
  target: string,
  fill: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = `${target}${TMP_MARK}${suffix()}`;
  await mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    await syncTree(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = `${target}${OLD_MARK}${suffix()}`;
  let moved = false;
  try {
    await rename(target, old);
    moved = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await rename(tmp, target);
  await syncPath(dirname(target));
  if (moved) await rm(old, { recursive: true, force: true });
}

/** Removes what interrupted writes left in `dir`; a moved-aside directory whose replacement never landed is restored. */
export async function cleanStale(dir: string): Promise<void> {
  const names = await readdir(dir);
  for (const name of names) {
    const m = LEFTOVER.exec(name);
    if (!m) continue;
    const [, original, kind] = m;
    if (kind === 'old' && !names.includes(original)) await rename(join(dir, name), join(dir, original));
    else await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Complete checkpoints in `outDir` by step, oldest first. */
export async function listCheckpoints(outDir: string): Promise<Array<{ step: number; dir: string }>> {
  let names: string[];
  try {
    names = await readdir(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(outDir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

const optimizerKey = (param: string, state: string) => `${param}::${state}`;

export interface CheckpointContents {
  state: CheckpointState;
  /** Trainable parameters by name, aligned with optimizer.params. */
  names: string[];
  params: Parameter[];
  optimizer: Optimizer<object>;
  /** Writes the adapter (or model) into a directory. */
  save: (dir: string) => Promise<void>;
}

/** Where the checkpoint of `step` goes in `outDir`. */
export const checkpointDir = (outDir: string, step: number): string =>
  join(outDir, `${CHECKPOINT_PREFIX}${step}`);

/** Writes checkpoint-<step> atomically, then removes older checkpoints (only the last one is kept). */
export async function writeCheckpoint(outDir: string, c: CheckpointContents): Promise<string> {
  const dir = checkpointDir(outDir, c.state.step);
  const sd = c.optimizer.stateDict();
  await writeDirAtomically(dir, async (tmp) => {
    const trainable: Record<string, TensorInput> = {};
    for (const [i, p] of c.params.entries()) {
      trainable[c.names[i]] = { dtype: 'F32', shape: p.shape, data: (await p.value.data()) as Float32Array };
    }
    await writeSafetensors(join(tmp, TRAINABLE_FILE), trainable);
    const opt: Record<string, TensorInput> = {};
    for (const [i, st] of sd.state.entries()) {
      if (!st) continue;
      for (const [n, t] of Object.entries(st.tensors)) {
        opt[optimizerKey(c.names[i], n)] = {
          dtype: 'F32',
          shape: t.shape,
          data: (await t.data()) as Float32Array,
        };
      }
    }
    await writeSafetensors(join(tmp, OPTIMIZER_FILE), opt);
    await c.save(join(tmp, CHECKPOINT_ADAPTER_DIR));
    const state: CheckpointState = {
      ...c.state,
      optimizer: {
        kind: sd.kind,
        steps: sd.steps,
        lr: sd.lr,
        hyper: sd.hyper,
        state: Object.fromEntries(
          sd.state.flatMap((st, i) =>
            st ? [[c.names[i], { step: st.step, tensors: Object.keys(st.tensors) }]] : [],
          ),
        ),
      },
    };
    await writeFile(join(tmp, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  });
  for (const older of await listCheckpoints(outDir)) {
    if (older.step !== c.state.step) await rm(older.dir, { recursive: true, force: true });
  }
  return dir;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The shape of trainer_state.json, checked before a run relies on it: a hand-edited or corrupted file
 * is reported as such instead of failing somewhere in the loop.
 */
function checkState(state: CheckpointState, dir: string, bad: (msg: string) => TrainingError): void {
  const named = /-(\d+)$/.exec(dir);
  if (!Number.isSafeInteger(state.step) || state.step < 0 || (named && Number(named[1]) !== state.step))
    throw bad(`${STATE_FILE}: step ${JSON.stringify(state.step)} does not match the checkpoint's directory`);
  const o = state.optimizer;
  if (!isObject(state.settings) || !isObject(state.data) || !isObject(state.dropout) || !isObject(o))
    throw bad(`${STATE_FILE}: settings, data, dropout and optimizer must be objects`);
  if (!isObject(o.state) || !isObject(o.hyper) || !Number.isSafeInteger(o.steps) || !Number.isFinite(o.lr))
    throw bad(`${STATE_FILE}: the optimizer's state is malformed`);
  for (const [name, s] of Object.entries(o.state)) {
    if (!isObject(s) || !Number.isSafeInteger(s.step) || !Array.isArray(s.tensors))
      throw bad(`${STATE_FILE}: the optimizer's state of ${name} is malformed`);
  }
}

export interface LoadedCheckpoint {
  state: CheckpointState;
  /** Values of the trainable parameters, aligned with the names given. */
  params: TensorSource[];
  optimizer: OptimizerStateDict<TensorSource>;
}

/** Reads a checkpoint for the trainable parameters `names` (in optimizer order); a mismatch is a TrainingError. */
export async function readCheckpoint(dir: string, names: string[]): Promise<LoadedCheckpoint> {
  const bad = (msg: string) => new TrainingError('BAD_CHECKPOINT', `${dir}: ${msg}`);
  let state: CheckpointState;
  try {
    state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'));
  } catch (e) {
    throw bad(`cannot read ${STATE_FILE}: ${(e as Error).message}`);
  }
  if (state?.format !== STATE_FORMAT)
    throw bad(`${STATE_FILE} has format ${state?.format}, expected ${STATE_FORMAT}`);
  checkState(state, dir, bad);
  const readAll = async (file: string, keys: string[]): Promise<TensorSource[]> => {
    const unreadable = (e: unknown): never => {
      if (e instanceof SafetensorsError) throw bad(`${file} is not readable: ${e.detail}`);
      throw e;
    };
    const reader = await SafetensorsReader.open(join(dir, file)).catch(unreadable);
    try {
      const extra = reader.keys().filter((k) => !keys.includes(k));
      const missing = keys.filter((k) => !reader.has(k));
      if (missing.length || extra.length) {
        throw bad(
          `${file} does not match the model's trainable parameters (missing: ${missing.join(', ') || 'none'}; ` +
            `unexpected: ${extra.join(', ') || 'none'}); resume with the same model, method and targets`,
        );
      }
      const out: TensorSource[] = [];
      for (const k of keys)
        out.push({ data: await reader.read(k).catch(unreadable), shape: reader.info(k).shape });
      return out;
    } finally {
      await reader.close();
    }
  };
  const params = await readAll(TRAINABLE_FILE, names);
  const withState = names.filter((n) => state.optimizer.state[n]);
  const keys = withState.flatMap((n) => state.optimizer.state[n].tensors.map((t) => optimizerKey(n, t)));
  const values = await readAll(OPTIMIZER_FILE, keys);
  const byKey = new Map(keys.map((k, i) => [k, values[i]]));
  const perParam = (n: string) => {
    const s = state.optimizer.state[n];
    if (!s) return null;
    return {
      step: s.step,
      tensors: Object.fromEntries(s.tensors.map((t) => [t, byKey.get(optimizerKey(n, t)) as TensorSource])),
    };
  };
  return {
    state,
    params,
    optimizer: {
      kind: state.optimizer.kind,
      steps: state.optimizer.steps,
      lr: state.optimizer.lr,
      hyper: state.optimizer.hyper,
      state: names.map(perParam),
    },
  };
}
