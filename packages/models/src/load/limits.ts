/**
 * What a model will cost, from config.json alone, and the checks that refuse one this machine cannot
 * hold before anything is allocated: a huge vocab_size or hidden_size would otherwise fail deep inside
 * WebGPU (or exhaust memory) minutes later.
 */
import { totalmem } from 'node:os';
import type { ModelConfig } from '../arch/types.js';
import { ModelLoadError } from './errors.js';

/**
 * More transformer layers than any supported model has (the largest published ones have under 200).
 * Every layer is several GPU buffers and JS objects, so a config with millions of them would crash
 * the runtime rather than fail cleanly.
 */
export const MAX_LAYERS = 1024;

/** What a config alone says about a model's size, checked before anything is allocated. */
export interface ModelSizeEstimate {
  /** Weights of the model as built for its task (tied tensors once). */
  params: number;
  /** The largest tensor that is one GPU buffer, with its name. Vocabulary tables are split into blocks. */
  largestTensor: { name: string; elements: number };
  /** Elements of one row of the vocabulary table (the unit its blocks are cut in). */
  vocabRow: number;
}

/** Parameters and the largest buffer of the model a parsed config describes; arithmetic only, nothing is built. */
export function estimateModelSize(config: ModelConfig): ModelSizeEstimate {
  const H = config.hiddenSize;
  const V = config.vocabSize;
  const L = config.numLayers;
  const vocabTables = (config.tieWordEmbeddings ? 1 : 2) * V * H;
  const linear = (i: number, o: number, bias = true) => i * o + (bias ? o : 0);
  let perLayer: number;
  let other: number;
  let largest: Array<[string, number]>;
  if (config.arch === 'gpt2') {
    const I = config.intermediateSize;
    perLayer = 4 * H + linear(H, 3 * H) + linear(H, H) + linear(H, I) + linear(I, H);
    other = config.maxPositions * H + 2 * H;
    largest = [
      ['wpe', config.maxPositions * H],
      ['c_attn', 3 * H * H],
      ['c_fc', H * I],
    ];
  } else if (config.arch === 'llama') {
    const I = config.intermediateSize;
    const q = config.numHeads * config.headDim;
    const kv = config.numKvHeads * config.headDim;
    const b = config.attentionBias;
    perLayer =
      2 * H + linear(H, q, b) + 2 * linear(H, kv, b) + linear(q, H, b) + 3 * linear(H, I, config.mlpBias);
    other = H;
    largest = [
      ['q_proj', H * q],
      ['mlp', H * I],
    ];
  } else {
    const I = config.intermediateSize;
    perLayer = 4 * linear(H, H) + linear(H, I) + linear(I, H) + 4 * H;
    // Position and token-type tables, the embedding norm, and the larger of the two heads.
    other =
      config.maxPositions * H + config.typeVocabSize * H + 2 * H + linear(H, H) + linear(H, config.numLabels);
    largest = [
      ['position_embeddings', config.maxPositions * H],
      ['intermediate', H * I],
    ];
  }
  const [name, elements] = largest.reduce((a, b) => (b[1] > a[1] ? b : a));
  return { params: vocabTables + L * perLayer + other, largestTensor: { name, elements }, vocabRow: H };
}

/** What the machine offers: memory in all, and the largest buffer and binding the WebGPU adapter allows. */
export interface MachineLimits {
  memoryBytes: number;
  maxBufferBytes: number;
  maxBindingBytes: number;
}

/** This machine's memory (os.totalmem) and the given adapter limits. */
export function machineLimits(device: { limits: { maxBufferSize: number }; maxBindingBytes: number }) {
  return {
    memoryBytes: totalmem(),
    maxBufferBytes: device.limits.maxBufferSize,
    maxBindingBytes: device.maxBindingBytes,
  } satisfies MachineLimits;
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
const count = (n: number) => (n >= 1e6 ? n.toExponential(2) : n.toLocaleString('en-US'));

/**
 * Refuses a config whose weights would not fit: all of them (at `bytesPerParam`) against the
 * machine's memory, the largest single tensor against the adapter's buffer size, and a vocabulary
 * row against its binding size. The error names config.json (`path`) and the numbers.
 */
export function checkModelFits(
  config: ModelConfig,
  limits: MachineLimits,
  { bytesPerParam = 4, path = 'config.json' }: { bytesPerParam?: number; path?: string } = {},
): ModelSizeEstimate {
  const est = estimateModelSize(config);
  const fail = (detail: string): never => {
    throw new ModelLoadError('TOO_LARGE', path, detail);
  };
  const weights = est.params * bytesPerParam;
  if (weights > limits.memoryBytes) {
    fail(
      `the weights alone need about ${gib(weights)} (${count(est.params)} parameters × ${bytesPerParam} bytes: ` +
        `vocab_size ${config.vocabSize}, hidden_size ${config.hiddenSize}, ${config.numLayers} layers), ` +
        `more than this machine's ${gib(limits.memoryBytes)} of memory`,
    );
  }
  const tensorBytes = est.largestTensor.elements * 4;
  if (tensorBytes > limits.maxBufferBytes) {
    fail(
      `its ${est.largestTensor.name} weight needs a ${gib(tensorBytes)} buffer (${count(est.largestTensor.elements)} values), ` +
        `more than this WebGPU adapter's maxBufferSize of ${gib(limits.maxBufferBytes)}`,
    );
  }
  if (est.vocabRow * 4 > limits.maxBindingBytes) {
    fail(
      `hidden_size ${config.hiddenSize} makes one embedding row ${count(est.vocabRow * 4)} bytes, ` +
        `more than this WebGPU adapter's maxStorageBufferBindingSize of ${count(limits.maxBindingBytes)}`,
    );
  }
  return est;
}
