/**
 * Safetensors weights of an HF model directory: a single model.safetensors or shards listed by
 * model.safetensors.index.json, matched to a model's parameters by name and streamed to the GPU one
 * bounded chunk at a time (the checkpoint is never held in JS memory).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  encodeBF16,
  isGgmlFormat,
  isHalf,
  type Parameter,
  QuantizedTensor,
  quantizeValues,
  SafetensorsError,
  ShareloraError,
} from '@sharelora/core';
import { SafetensorsReader } from '@sharelora/core/node';
import type { HfModel } from '../arch/types.js';
import { type CheckpointTensor, checkpointTensors } from '../arch/vocab.js';
import { ModelLoadError } from './errors.js';
import {
  companionKeys,
  isQuantCompanion,
  readStoredQuantized,
  type StoredQuantization,
  type StoredTensor,
} from './quantized.js';

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const SHARD = /^model-\d+-of-\d+\.safetensors$/;
/** Weights are stored as floats; anything else in a weight file is a broken or foreign checkpoint. */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
/** Bytes read from disk per step (the f32 copy of BF16/F16 data is twice that). */
const CHUNK_BYTES = 16 << 20;
/** Wait for the GPU queue after this many bytes so upload staging memory stays bounded. */
const SYNC_BYTES = 256 << 20;

/**
 * Progress of {@link loadModel} ({@link LoadModelOptions.onProgress}), reported as tensor data is
 * read from the weight files.
 */
export interface LoadProgress {
  /** Bytes of tensor data read so far and in all (as stored on disk). */
  loadedBytes: number;
  totalBytes: number;
  /** Checkpoint name of the tensor being read. */
  tensor: string;
}

type Stored = StoredTensor;

/**
 * Whether a weight file is there. Only absence is "no": a directory or a symbolic-link loop in its
 * place is an error saying so, not "not found".
 */
async function exists(path: string): Promise<boolean> {
  let kind: 'file' | 'directory' | 'other';
  try {
    const s = await stat(path);
    kind = s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    const why = code === 'ELOOP' ? 'a symbolic link loop' : `unreadable (${(e as Error).message})`;
    throw new ModelLoadError('BAD_CHECKPOINT', path, `is ${why}, not a weight file`, { cause: e });
  }
  if (kind !== 'file')
    throw new ModelLoadError(
      'BAD_CHECKPOINT',
      path,
      `is ${kind === 'directory' ? 'a directory' : 'not a regular file'}, not a weight file`,
    );
  return true;
}

async function openReader(path: string): Promise<SafetensorsReader> {
  try {
    return await SafetensorsReader.open(path);
  } catch (e) {
    const detail = e instanceof SafetensorsError ? `${e.detail} [${e.code}]` : (e as Error).message;
    throw new ModelLoadError('BAD_CHECKPOINT', path, `not a readable safetensors file: ${detail}`, {
      cause: e,
    });
  }
}

/** The weight files of a model directory, opened (headers only: tensor data is read on demand). */
export class CheckpointFiles {
  private constructor(
    /** The file errors about the checkpoint as a whole name: model.safetensors or the index. */
    readonly path: string,
    /** Weight file names (relative to the directory). */
    readonly files: string[],
    readonly tensors: ReadonlyMap<string, Stored>,
    private readonly readers: SafetensorsReader[],
  ) {}

  static async open(dir: string): Promise<CheckpointFiles> {
    const indexPath = join(dir, INDEX);
    if (await exists(indexPath)) return CheckpointFiles.openSharded(dir, indexPath);
    const single = join(dir, SINGLE);
    if (await exists(single)) {
      const reader = await openReader(single);
      const tensors = new Map(reader.keys().map((k) => [k, { reader, info: reader.info(k) }]));
      return new CheckpointFiles(single, [SINGLE], tensors, [reader]);
    }
    const names = await readdir(dir).catch(() => null);
    if (names === null) throw new ModelLoadError('NO_WEIGHTS', dir, 'not a readable directory');
    if (names.some((n) => SHARD.test(n))) {
      throw new ModelLoadError(
        'NO_WEIGHTS',
        indexPath,
        'not found, but the directory has weight shards: the index is needed to load them',
      );
    }
    const other = names.find((n) => /\.(bin|pt|pth|ckpt|gguf)$/.test(n));
    throw new ModelLoadError(
      'NO_WEIGHTS',
      single,
      `not found (nor ${INDEX})${other ? `; ${other} is not a safetensors checkpoint (convert it, or use sharelora import for GGUF)` : ''}`,
    );
  }

  private static async openSharded(dir: string, indexPath: string): Promise<CheckpointFiles> {
    let map: Record<string, unknown>;
    try {
      const index = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map?: unknown };
      if (typeof index?.weight_map !== 'object' || index.weight_map === null)
        throw new Error('no "weight_map" object');
      map = index.weight_map as Record<string, unknown>;
    } catch (e) {
      throw new ModelLoadError('BAD_CHECKPOINT', indexPath, `not a valid index: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const files = [...new Set(Object.values(map))];
    const bad = files.filter((f) => typeof f !== 'string' || f.includes('/') || f.includes('\\'));
    if (bad.length)
      throw new ModelLoadError(
        'BAD_CHECKPOINT',
        indexPath,
        `weight_map names invalid files: ${bad.map((f) => JSON.stringify(f)).join(', ')}`,
      );
    const missing: string[] = [];
    for (const f of files as string[]) if (!(await exists(join(dir, f)))) missing.push(join(dir, f));
    if (missing.length) {
      throw new ModelLoadError(
        'NO_WEIGHTS',
        missing[0],
        `missing, but ${indexPath} lists it${missing.length > 1 ? ` (also missing: ${missing.slice(1).join(', ')})` : ''}`,
      );
    }
    const readers: SafetensorsReader[] = [];
    try {
      for (const f of files as string[]) readers.push(await openReader(join(dir, f)));
      const byFile = new Map((files as string[]).map((f, i) => [f, readers[i]]));
      const tensors = new Map<string, Stored>();
      const absent: string[] = [];
      for (const [name, f] of Object.entries(map)) {
        const reader = byFile.get(f as string) as SafetensorsReader;
        if (reader.has(name)) tensors.set(name, { reader, info: reader.info(name) });
        else absent.push(`${name} (in ${f})`);
      }
      if (absent.length)
        throw new ModelLoadError(
          'BAD_CHECKPOINT',
          indexPath,
          `lists tensors its shards do not contain: ${absent.join(', ')}`,
        );
      return new CheckpointFiles(indexPath, [INDEX, ...(files as string[])], tensors, readers);
    } catch (e) {
      await Promise.all(readers.map((r) => r.close()));
      throw e;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.close()));
  }
}

/** Which checkpoint tensor fills which parameter, and what the checkpoint lacks or has in excess. */
export interface LoadPlan {
  /**
   * `stored`: the weight is stored quantized in that format, with its `companions` (scales, maps,
   * state) by key; otherwise a float tensor, quantized on the way when the target is.
   */
  loads: Array<{
    target: CheckpointTensor;
    source: Stored;
    key: string;
    stored?: StoredQuantization;
    companions?: ReadonlyMap<string, Stored>;
  }>;
  /** New task-head tensors the checkpoint lacks (initialised instead). */
  initialised: string[];
  /** Checkpoint tensors the model does not use (other heads, tied copies). */
  ignored: string[];
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Matches checkpoint names to the model's (see CheckpointRules) and checks every shape and dtype.
 * Throws one CHECKPOINT_MISMATCH error listing everything that is missing, unexpected or mis-shaped.
 * `storedFormat`: the checkpoint's weights are quantized in that format (config.json's
 * quantization_config); the model's quantized layers then read them as stored.
 */
export function planLoad(
  model: HfModel,
  files: CheckpointFiles,
  configPath: string,
  storedFormat: StoredQuantization | null = null,
): LoadPlan {
  const rules = model.checkpointRules;
  const targets = new Map(checkpointTensors(model).map((t) => [t.name, t]));
  const isAlias = (c: string) => Object.hasOwn(rules.aliases, c);
  const direct = new Map<string, [string, Stored]>();
  const viaAlias = new Map<string, [string, Stored]>();
  const unexpected: string[] = [];
  const ignored: string[] = [];
  for (const [key, stored] of files.tensors) {
    if (rules.buffers.test(key)) continue;
    if (storedFormat && isQuantCompanion(key)) continue;
    const candidates = key.startsWith(rules.basePrefix) ? [key] : [key, rules.basePrefix + key];
    const name = candidates.find((c) => targets.has(c) || isAlias(c) || rules.unused?.test(c));
    if (name === undefined) unexpected.push(key);
    else if (targets.has(name)) {
      if (direct.has(name)) unexpected.push(key);
      else direct.set(name, [key, stored]);
    } else if (isAlias(name)) viaAlias.set(rules.aliases[name], [key, stored]);
    else ignored.push(key);
  }
  const loads: LoadPlan['loads'] = [];
  const missing: string[] = [];
  const initialised: string[] = [];
  const mismatched: string[] = [];
  const notFloat: string[] = [];
  for (const [name, target] of targets) {
    const hit = direct.get(name) ?? viaAlias.get(name);
    if (!hit) {
      (rules.newHead?.test(name) ? initialised : missing).push(name);
      continue;
    }
    const [key, source] = hit;
    if (storedFormat && target.quantized && !FLOAT_DTYPES.has(source.info.dtype)) {
      const companions = new Map<string, Stored>();
      for (const k of companionKeys(key, storedFormat)) {
        const s = files.tensors.get(k);
        if (s) companions.set(k, s);
        else missing.push(k);
      }
      loads.push({ target, source, key, stored: storedFormat, companions });
      continue;
    }
    if (!FLOAT_DTYPES.has(source.info.dtype)) notFloat.push(`${key} (${source.info.dtype})`);
    else if (
      source.info.shape.length !== target.shape.length ||
      source.info.shape.some((d, i) => d !== target.shape[i])
    ) {
      mismatched.push(`${key} expected ${shapeStr(target.shape)} got ${shapeStr(source.info.shape)}`);
    } else loads.push({ target, source, key });
  }
  for (const [name, [key]] of viaAlias) if (direct.has(name)) ignored.push(key);
  const problems = [
    [missing, 'missing'],
    [unexpected, 'unexpected'],
    [mismatched, 'shape mismatch'],
    [notFloat, 'not a float dtype'],
  ] as const;
  if (problems.some(([list]) => list.length)) {
    const parts = problems
      .filter(([list]) => list.length)
      .map(([list, what]) => `${what} (${list.length}): ${list.join(', ')}`);
    throw new ModelLoadError(
      'CHECKPOINT_MISMATCH',
      files.path,
      `does not match ${model.hfClass} as ${configPath} describes it: ${parts.join('; ')}`,
    );
  }
  return { loads, initialised, ignored };
}

/**
 * Copies rows [rowStart, rowStart + rows) of a checkpoint tensor into the parameter blocks holding them;
 * `data` holds f32 values or 16-bit patterns, as the blocks' dtype stores them.
 */
function writeRows(
  blocks: readonly Parameter[],
  rowElems: number,
  rowStart: number,
  data: Float32Array | Uint16Array,
): void {
  const rows = data.length / rowElems;
  let blockStart = 0;
  for (const p of blocks) {
    const blockRows = p.value.size / rowElems;
    const lo = Math.max(rowStart, blockStart);
    const hi = Math.min(rowStart + rows, blockStart + blockRows);
    if (lo < hi) {
      const t = p.value;
      t.device.write(
        t.buffer,
        (lo - blockStart) * rowElems * data.BYTES_PER_ELEMENT,
        data.subarray((lo - rowStart) * rowElems, (hi - rowStart) * rowElems),
      );
    }
    blockStart += blockRows;
  }
}

/**
 * A tensor's chunks as its parameter stores them: f32 values, or f16/bf16 bit patterns (copied as they
 * are when the checkpoint has that type, rounded to nearest even otherwise).
 */
async function* readAs(target: CheckpointTensor, { reader, info }: Stored, key: string, maxBytes: number) {
  const dtype = target.blocks[0].value.dtype;
  if (dtype === 'bf16' && info.dtype === 'BF16') {
    for await (const c of reader.readChunks(key, maxBytes, { as: 'raw' }))
      yield { ...c, data: new Uint16Array(c.data.buffer, c.data.byteOffset, c.data.length / 2) };
  } else if (dtype === 'bf16') {
    for await (const c of reader.readChunks(key, maxBytes, { as: 'f32' }))
      yield { ...c, data: encodeBF16(c.data) };
  } else yield* reader.readChunks(key, maxBytes, { as: dtype === 'f16' ? 'f16' : 'f32' });
}

/**
 * Fills a quantized layer: from its stored codes and scales, or by quantizing the f32 values of a
 * float tensor on the CPU (one tensor in memory at a time: the full-precision model never is).
 */
async function loadQuantized({
  target,
  source,
  key,
  stored,
  companions,
}: LoadPlan['loads'][number]): Promise<void> {
  const q = target.quantized as NonNullable<CheckpointTensor['quantized']>;
  if (stored) {
    const parts = await readStoredQuantized(key, stored, q.shape, source, companions ?? new Map());
    if (parts.format === q.format) q.write(parts);
    else {
      // A llama.cpp file mixes types: this weight's differs from the one its layer was built with.
      const layer = target.layer as NonNullable<CheckpointTensor['layer']>;
      const own = QuantizedTensor.allocate(parts.format, q.shape);
      own.write(parts);
      layer.setQuantized(own);
    }
    return;
  }
  if (isGgmlFormat(q.format))
    throw new ShareloraError('QUANTIZED', `${key}: a float weight cannot be quantized to ${q.format}`);
  const [N, K] = q.shape;
  q.write(quantizeValues(await readValues(source, key), q.format, N, K));
}

/** All of a float tensor's values as f32 (one tensor held in memory). */
export async function readValues(source: Stored, key: string): Promise<Float32Array> {
  const values = new Float32Array(source.info.numel);
  const rowElems = source.info.numel / Math.max(source.info.shape[0] ?? 1, 1);
  for await (const c of source.reader.readChunks(key, CHUNK_BYTES, { as: 'f32' }))
    values.set(c.data, c.rowStart * rowElems);
  return values;
}

/** Streams the planned tensors to the GPU in file order, converting each to its parameter's dtype. */
export async function streamWeights(plan: LoadPlan, onProgress?: (p: LoadProgress) => void): Promise<void> {
  const storedBytes = (s: Stored) => s.info.dataOffsets[1] - s.info.dataOffsets[0];
  const totalBytes = plan.loads.reduce((n, l) => n + storedBytes(l.source), 0);
  const order = [...plan.loads].sort(
    (a, b) =>
      a.source.reader.path.localeCompare(b.source.reader.path) ||
      a.source.info.dataOffsets[0] - b.source.info.dataOffsets[0],
  );
  let loadedBytes = 0;
  let unsynced = 0;
  onProgress?.({ loadedBytes, totalBytes, tensor: order[0]?.key ?? '' });
  for (const load of order) {
    const { target, source, key } = load;
    const rows = target.shape.length ? target.shape[0] : 1;
    const rowElems = source.info.numel / Math.max(rows, 1);
    const rowBytes = storedBytes(source) / Math.max(rows, 1);
    // GPU writes start on 4-byte boundaries: rows of an odd number of 16-bit values are read in pairs.
    const pairs = isHalf(target.blocks[0].value.dtype) && rowElems % 2 === 1;
    const maxBytes = pairs
      ? 2 * rowBytes * Math.max(1, Math.floor(CHUNK_BYTES / (2 * rowBytes)))
      : CHUNK_BYTES;
    try {
      if (target.quantized) {
        await loadQuantized(load);
        loadedBytes += storedBytes(source);
        onProgress?.({ loadedBytes, totalBytes, tensor: key });
        continue;
      }
      for await (const chunk of readAs(target, source, key, maxBytes)) {
        writeRows(target.blocks, rowElems, chunk.rowStart, chunk.data);
        loadedBytes += chunk.rowCount * rowBytes;
        unsynced += chunk.rowCount * rowBytes;
        if (unsynced >= SYNC_BYTES) {
          await target.blocks[0].value.device.sync();
          unsynced = 0;
        }
        onProgress?.({ loadedBytes, totalBytes, tensor: key });
      }
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      throw new ModelLoadError(
        'BAD_CHECKPOINT',
        source.reader.path,
        `reading ${key}: ${e.detail} [${e.code}]`,
        { cause: e },
      );
    }
  }
}
