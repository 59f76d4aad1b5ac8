/**
 * Block weights stored as llama.cpp blocks, as `sharelora import` writes a quantized GGUF: `<w>` U8
 * [rows, bytes per row] holding the GGUF's blocks row by row, and `<w>.ggml_type` U8 [1] its GGUF
 * type id. They load into QuantizedTensors of that type, unpacked on the CPU one tensor at a time.
 */
import {
  GGML_LAYOUTS,
  type GgmlFormat,
  ggmlFormatOf,
  ggmlStoredBytes,
  type QuantizedGgml,
  unpackGgml,
} from '@sharelora/core';
import { GGML_TYPE_SUFFIX, ggmlTypeKey } from '../import/gguf.js';
import { ModelLoadError } from './errors.js';
import { readAll, type StoredTensor } from './quantized.js';

/** The llama.cpp type recorded for weight `key`, checked to be one sharelora keeps. */
export async function storedGgmlFormat(
  key: string,
  companions: ReadonlyMap<string, StoredTensor>,
  path: string,
): Promise<GgmlFormat> {
  const typeKey = ggmlTypeKey(key);
  const t = companions.get(typeKey);
  if (!t) throw new ModelLoadError('BAD_CHECKPOINT', path, `${key}: its ${typeKey} tensor is missing`);
  const bytes = (await readAll(t, typeKey, 'raw')) as Uint8Array;
  const format = bytes.length === 1 ? ggmlFormatOf(bytes[0]) : undefined;
  if (!format)
    throw new ModelLoadError(
      'BAD_CHECKPOINT',
      path,
      `${key}: ${typeKey} holds [${Array.from(bytes).join(', ')}], not one of the GGUF type ids ` +
        (Object.keys(GGML_LAYOUTS) as GgmlFormat[]).map((f) => `${GGML_LAYOUTS[f].typeId} (${f})`).join(', '),
    );
  return format;
}

/** Reads weight `key` [N, K] stored as llama.cpp blocks into the parts QuantizedTensor.write() takes. */
export async function readStoredGgml(
  key: string,
  shape: readonly [number, number],
  weight: StoredTensor,
  companions: ReadonlyMap<string, StoredTensor>,
): Promise<QuantizedGgml> {
  const [N, K] = shape;
  const path = weight.reader.path;
  const format = await storedGgmlFormat(key, companions, path);
  const { block } = GGML_LAYOUTS[format];
  const rowBytes = K % block === 0 ? ggmlStoredBytes(format, K) : Number.NaN;
  const got = weight.info.shape;
  if (weight.info.dtype !== 'U8' || got.length !== 2 || got[0] !== N || got[1] !== rowBytes)
    throw new ModelLoadError(
      'BAD_CHECKPOINT',
      path,
      `${key}: a ${format} weight [${N}, ${K}] is U8 [${N}, ${rowBytes}] (rows of ${block}-element blocks), got ${weight.info.dtype} [${got.join(', ')}]`,
    );
  return unpackGgml(format, (await readAll(weight, key, 'raw')) as Uint8Array, N * K);
}

/**
 * The type most of the checkpoint's block weights are stored in: the format a model is built with
 * before each weight is read (a weight of another type replaces its layer's buffers as it loads).
 */
export async function commonGgmlFormat(
  tensors: ReadonlyMap<string, StoredTensor>,
  path: string,
): Promise<GgmlFormat> {
  const counts = new Map<GgmlFormat, number>();
  for (const key of tensors.keys()) {
    if (!key.endsWith(GGML_TYPE_SUFFIX)) continue;
    const weight = key.slice(0, -GGML_TYPE_SUFFIX.length);
    const format = await storedGgmlFormat(weight, tensors, path);
    counts.set(format, (counts.get(format) ?? 0) + 1);
  }
  const best = [...counts].sort((a, b) => b[1] - a[1])[0];
  if (!best)
    throw new ModelLoadError(
      'BAD_CHECKPOINT',
      path,
      'quantization_config says gguf but no weight has a .ggml_type',
    );
  return best[0];
}
