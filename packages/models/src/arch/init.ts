import {
  assignTensor,
  isGgmlFormat,
  LayerNorm,
  type Module,
  type Parameter,
  quantizeValues,
  RMSNorm,
  Rng,
  ShareloraError,
} from '@sharelora/core';
import { checkpointTensors } from './vocab.js';

/** Options of {@link initWeights}. */
export interface InitWeightsOptions {
  /** Seeds every tensor's stream; the same seed and checkpoint name always give the same values. */
  seed: number;
  /** Standard deviation; default: the model config's initializer_range. */
  std?: number;
  /** Only the tensors whose checkpoint name passes (e.g. a new classification head). */
  filter?: (name: string) => boolean;
}

/**
 * Seeded random values for a model's tensors: N(0, std²) everywhere, 1 + N(0, std²) for norm scales.
 * Unlike transformers' init, biases and norms are random too, so tests of tiny models exercise every
 * tensor. Each tensor draws from its own stream forked by checkpoint name, so its values depend only
 * on the seed and its name (not on the model's other tensors or how a matrix is split into blocks).
 */
export function initWeights(
  model: Module & { config: { initializerRange: number } },
  opts: InitWeightsOptions,
): void {
  const std = opts.std ?? model.config.initializerRange;
  const normScales = new Set<Parameter>();
  for (const [, m] of model.namedModules()) {
    if ((m instanceof LayerNorm || m instanceof RMSNorm) && m.weight) normScales.add(m.weight);
  }
  const root = new Rng(opts.seed);
  for (const t of checkpointTensors(model)) {
    if (opts.filter && !opts.filter(t.name)) continue;
    const rng = root.fork(t.name);
    const mean = normScales.has(t.blocks[0]) ? 1 : 0;
    if (t.quantized) {
      const format = t.quantized.format;
      if (isGgmlFormat(format))
        throw new ShareloraError('QUANTIZED', `${t.name}: a ${format} weight is only read from a checkpoint`);
      // A quantized layer gets the quantization of the values an unquantized one would get.
      const data = new Float32Array(t.quantized.size);
      for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
      const [N, K] = t.quantized.shape;
      t.quantized.write(quantizeValues(data, format, N, K));
      continue;
    }
    for (const p of t.blocks) {
      const data = new Float32Array(p.value.size);
      for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
      assignTensor(p.value, { data, shape: p.shape });
    }
  }
}
