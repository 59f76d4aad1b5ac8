/**
 * Quantized weights in a checkpoint directory, in the layout transformers writes for bitsandbytes
 * models (so a directory `sharelora quantize` writes looks like one saved from a bitsandbytes-loaded
 * model, and the reverse):
 *  - 4-bit (nf4/fp4, blocks of 64, double-quantized absmax): `<w>` U8 [⌈n/2⌉, 1] packed codes,
 *    `<w>.absmax` U8 (8-bit codes of each block's absmax), `<w>.nested_absmax` F32 (one scale per 256
 *    of them), `<w>.quant_map` F32 [16], `<w>.nested_quant_map` F32 [256] and
 *    `<w>.quant_state.bitsandbytes__<nf4|fp4>` (U8: JSON with the shape, block sizes and the absmax
 *    mean `nested_offset`);
 *  - int8: `<w>` I8 [N, K] codes, `<module>.SCB` F32 [N] (each row's absmax) and
 *    `<module>.weight_format` U8 (0: row-major);
 * and config.json's `quantization_config` says which. A GGUF import's llama.cpp blocks are read by
 * gguf-stored.ts.
 */
import {
  BLOCK_4BIT,
  BLOCK_ABSMAX,
  DYNAMIC_MAP,
  FP4_LEVELS,
  NF4_LEVELS,
  type Quant4Format,
  type QuantFormat,
  type Quantized4Bit,
  type QuantizedGgml,
  type QuantizedInt8,
  quantizeValues,
  type TensorInfo,
} from '@sharelora/core';
import type { SafetensorsReader } from '@sharelora/core/node';
import { GGML_TYPE_SUFFIX, GGUF_QUANTIZATION_CONFIG, ggmlTypeKey } from '../import/gguf.js';
import type { PlannedTensor } from '../import/hf-llama.js';
import { ModelLoadError } from './errors.js';
import { readStoredGgml } from './gguf-stored.js';

/** Formats `--quantize` and `sharelora quantize --to` accept. */
export const QUANT_FORMATS: readonly QuantFormat[] = ['nf4', 'fp4', 'int8'];

/** A tensor in a weight file. */
export interface StoredTensor {
  reader: SafetensorsReader;
  info: TensorInfo;
}

const STATE_PREFIX = '.quant_state.bitsandbytes__';
const FOUR_BIT_PARTS = ['.absmax', '.nested_absmax', '.quant_map', '.nested_quant_map'] as const;

/**
 * How a directory stores its block weights (config.json's `quantization_config`): a bitsandbytes
 * format, or llama.cpp blocks as imported from a GGUF ('gguf', each weight's type beside it).
 */
export type StoredQuantization = QuantFormat | 'gguf';

/** Whether a checkpoint key is a companion of a quantized weight (its scales, maps, state or type). */
export function isQuantCompanion(key: string): boolean {
  return (
    key.endsWith(`.weight${GGML_TYPE_SUFFIX}`) ||
    FOUR_BIT_PARTS.some((s) => key.endsWith(`.weight${s}`)) ||
    key.includes(`.weight${STATE_PREFIX}`) ||
    key.endsWith('.SCB') ||
    key.endsWith('.weight_format')
  );
}

/** Companion keys of weight `key` (`<module>.weight`) in `format`. */
export function companionKeys(key: string, format: StoredQuantization): string[] {
  if (format === 'gguf') return [ggmlTypeKey(key)];
  if (format === 'int8') {
    const module = key.replace(/\.weight$/, '');
    return [`${module}.SCB`];
  }
  return [...FOUR_BIT_PARTS.map((s) => key + s), `${key}${STATE_PREFIX}${format}`];
}

/**
 * The quantization config.json's `quantization_config` records (bitsandbytes), or null for a float
 * checkpoint. Only what sharelora keeps on the GPU is accepted: double-quantized 4-bit or 8-bit.
 */
export function storedQuantization(
  raw: Record<string, unknown>,
  configPath: string,
): StoredQuantization | null {
  const q = raw.quantization_config as Record<string, unknown> | undefined;
  if (q === undefined || q === null) return null;
  const bad = (why: string) => new ModelLoadError('BAD_CONFIG', configPath, `quantization_config: ${why}`);
  if (typeof q !== 'object') throw bad('is not an object');
  if (q.quant_method === GGUF_QUANTIZATION_CONFIG.quant_method) return 'gguf';
  if (q.quant_method !== 'bitsandbytes')
    throw bad(
      `quant_method ${JSON.stringify(q.quant_method)} is not supported (only "bitsandbytes" or "gguf")`,
    );
  if (q.load_in_8bit === true) return 'int8';
  if (q.load_in_4bit !== true) throw bad('neither load_in_4bit nor load_in_8bit is true');
  const type = q.bnb_4bit_quant_type ?? 'fp4';
  if (type !== 'nf4' && type !== 'fp4')
    throw bad(`bnb_4bit_quant_type ${JSON.stringify(type)} is not "nf4" or "fp4"`);
  if (q.bnb_4bit_use_double_quant !== true)
    throw bad('4-bit weights without double quantization (bnb_4bit_use_double_quant) are not supported');
  return type;
}

/** config.json's `quantization_config` for weights written in `format`. */
export function quantizationConfig(format: QuantFormat): Record<string, unknown> {
  const common = { quant_method: 'bitsandbytes', llm_int8_skip_modules: null };
  if (format === 'int8')
    return { ...common, load_in_8bit: true, load_in_4bit: false, llm_int8_threshold: 6.0 };
  return {
    ...common,
    load_in_4bit: true,
    load_in_8bit: false,
    bnb_4bit_quant_type: format,
    bnb_4bit_use_double_quant: true,
    bnb_4bit_compute_dtype: 'float32',
    bnb_4bit_quant_storage: 'uint8',
  };
}

/** The tensors that store weight `name` [N, K] quantized to `format`, computed from its f32 values on load. */
export function plannedQuantized(
  name: string,
  format: QuantFormat,
  shape: readonly [number, number],
  values: () => Promise<Float32Array>,
): PlannedTensor[] {
  const [N, K] = shape;
  const n = N * K;
  // The quantization is computed once, when the shard writer asks for the first part.
  let parts: Promise<Quantized4Bit | QuantizedInt8> | null = null;
  const get = () => {
    parts ??= values().then((v) => quantizeValues(v, format, N, K));
    return parts;
  };
  if (format === 'int8') {
    const module = name.replace(/\.weight$/, '');
    return [
      { name, dtype: 'I8', shape: [N, K], load: async () => ((await get()) as QuantizedInt8).codes },
      {
        name: `${module}.SCB`,
        dtype: 'F32',
        shape: [N],
        load: async () => ((await get()) as QuantizedInt8).rowAbsmax,
      },
      { name: `${module}.weight_format`, dtype: 'U8', shape: [], load: async () => new Uint8Array([0]) },
    ];
  }
  const blocks = Math.ceil(n / BLOCK_4BIT);
  const q4 = async () => (await get()) as Quantized4Bit;
  const levels = Float32Array.from(format === 'nf4' ? NF4_LEVELS : FP4_LEVELS);
  return [
    { name, dtype: 'U8', shape: [Math.ceil(n / 2), 1], load: async () => (await q4()).codes },
    { name: `${name}.absmax`, dtype: 'U8', shape: [blocks], load: async () => (await q4()).absmaxCodes },
    {
      name: `${name}.nested_absmax`,
      dtype: 'F32',
      shape: [Math.ceil(blocks / BLOCK_ABSMAX)],
      load: async () => (await q4()).absmax2,
    },
    { name: `${name}.quant_map`, dtype: 'F32', shape: [16], load: async () => levels },
    { name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256], load: async () => DYNAMIC_MAP },
    {
      name: `${name}${STATE_PREFIX}${format}`,
      dtype: 'U8',
      shape: [stateBytes(format, shape, 0).length],
      load: async () => stateBytes(format, shape, (await q4()).offset),
    },
  ];
}

/** Width reserved for the absmax mean in the quant state (an f32 printed to round-trip, sign and exponent included). */
const OFFSET_WIDTH = 24;

/**
 * The JSON quant state of a 4-bit weight, as bytes of a fixed length (the shard plan needs the size
 * before the weight is quantized): spaces pad the offset's shorter spellings.
 */
function stateBytes(format: Quant4Format, shape: readonly [number, number], offset: number): Uint8Array {
  const state = {
    quant_type: format,
    blocksize: BLOCK_4BIT,
    dtype: 'float32',
    shape: [...shape],
    nested_blocksize: BLOCK_ABSMAX,
    nested_dtype: 'float32',
    nested_offset: offset,
  };
  const text = JSON.stringify(state);
  return new TextEncoder().encode(text.padEnd(text.length - String(offset).length + OFFSET_WIDTH, ' '));
}

/** All of a stored tensor's bytes, or its values as f32. */
export async function readAll(
  s: StoredTensor,
  key: string,
  as: 'raw' | 'f32',
): Promise<Uint8Array | Float32Array> {
  const parts: (Uint8Array | Float32Array)[] = [];
  for await (const c of s.reader.readChunks(key, 64 << 20, { as }))
    parts.push(c.data as Uint8Array | Float32Array);
  if (parts.length === 1) return parts[0];
  const out =
    as === 'raw'
      ? new Uint8Array(s.info.dataOffsets[1] - s.info.dataOffsets[0])
      : new Float32Array(s.info.numel);
  let at = 0;
  for (const p of parts) {
    out.set(p as never, at);
    at += p.length;
  }
  return out;
}

/**
 * Reads a weight stored quantized (`key` and its companions, checked against the model's shape
 * [N, K] and `format`) into the parts QuantizedTensor.write() takes.
 */
export async function readStoredQuantized(
  key: string,
  format: StoredQuantization,
  shape: readonly [number, number],
  weight: StoredTensor,
  companions: ReadonlyMap<string, StoredTensor>,
): Promise<Quantized4Bit | QuantizedInt8 | QuantizedGgml> {
  if (format === 'gguf') return readStoredGgml(key, shape, weight, companions);
  const [N, K] = shape;
  const n = N * K;
  const path = weight.reader.path;
  const fail = (why: string) => new ModelLoadError('BAD_CHECKPOINT', path, `${key}: ${why}`);
  const part = (k: string) => {
    const s = companions.get(k);
    if (!s) throw fail(`its ${k.slice(key.length) || k} tensor is missing`);
    return s;
  };
  if (format === 'int8') {
    if (weight.info.dtype !== 'I8' || weight.info.numel !== n)
      throw fail(
        `expected int8 codes I8 [${N}, ${K}], got ${weight.info.dtype} [${weight.info.shape.join(', ')}]`,
      );
    const codes = (await readAll(weight, key, 'raw')) as Uint8Array;
    const scbKey = companionKeys(key, 'int8')[0];
    const scb = part(scbKey);
    if (scb.info.numel !== N) throw fail(`${scbKey} has ${scb.info.numel} row scales for ${N} rows`);
    const rowAbsmax = (await readAll(scb, scbKey, 'f32')) as Float32Array;
    return { format, codes: new Int8Array(codes.buffer, codes.byteOffset, codes.length), rowAbsmax };
  }
  const blocks = Math.ceil(n / BLOCK_4BIT);
  if (weight.info.dtype !== 'U8' || weight.info.numel !== Math.ceil(n / 2))
    throw fail(
      `expected ${Math.ceil(n / 2)} bytes of packed 4-bit codes (U8), got ${weight.info.dtype} [${weight.info.shape.join(', ')}]`,
    );
  const [absKey, nestedKey, mapKey, nestedMapKey, stateKey] = companionKeys(key, format);
  const state = JSON.parse(
    new TextDecoder().decode((await readAll(part(stateKey), stateKey, 'raw')) as Uint8Array),
  );
  const stShape = state.shape as number[] | undefined;
  if (state.blocksize !== BLOCK_4BIT || state.nested_blocksize !== BLOCK_ABSMAX)
    throw fail(
      `block sizes ${state.blocksize}/${state.nested_blocksize} are not ${BLOCK_4BIT}/${BLOCK_ABSMAX}`,
    );
  if (stShape?.length !== 2 || stShape[0] !== N || stShape[1] !== K)
    throw fail(`its quant state's shape ${JSON.stringify(stShape)} is not [${N}, ${K}]`);
  const map = (await readAll(part(mapKey), mapKey, 'f32')) as Float32Array;
  const levels = format === 'nf4' ? NF4_LEVELS : FP4_LEVELS;
  if (map.length !== 16 || map.some((v, i) => Math.abs(v - levels[i]) > 1e-6))
    throw fail(`its quant_map is not the ${format} table`);
  const nestedMap = (await readAll(part(nestedMapKey), nestedMapKey, 'f32')) as Float32Array;
  if (nestedMap.length !== 256 || nestedMap.some((v, i) => Math.abs(v - DYNAMIC_MAP[i]) > 1e-6))
    throw fail('its nested_quant_map is not the signed 8-bit dynamic map');
  const absmaxCodes = (await readAll(part(absKey), absKey, 'raw')) as Uint8Array;
  const absmax2 = (await readAll(part(nestedKey), nestedKey, 'f32')) as Float32Array;
  if (absmaxCodes.length !== blocks || absmax2.length !== Math.ceil(blocks / BLOCK_ABSMAX))
    throw fail(`absmax sizes ${absmaxCodes.length}/${absmax2.length} do not fit ${n} weights`);
  const codes = (await readAll(weight, key, 'raw')) as Uint8Array;
  return { format, codes, absmaxCodes, absmax2, offset: Math.fround(Number(state.nested_offset)) };
}
