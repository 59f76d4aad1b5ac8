/** Sizes from config.json alone, and the checks that refuse a model before any of it is allocated. */
import { join } from 'node:path';
import { baseModelIdentityOf } from '@sharelora/core';
import { describe, expect, it } from 'vitest';
import {
  checkModelFits,
  estimateModelSize,
  initPreset,
  loadModel,
  type MachineLimits,
  ModelLoadError,
  PRESET_ARCHS,
  parseConfig,
} from '../src/index.js';
import { useDevice, useTmp } from './helpers.js';

useDevice();
const tmp = useTmp('limits');
const GiB = 2 ** 30;
const roomy: MachineLimits = { memoryBytes: 64 * GiB, maxBufferBytes: GiB, maxBindingBytes: 128 << 20 };
const llama = (keys: Record<string, unknown>) =>
  parseConfig({
    model_type: 'llama',
    hidden_size: 64,
    num_attention_heads: 4,
    intermediate_size: 128,
    ...keys,
  });

describe('estimateModelSize', () => {
  it.each(PRESET_ARCHS)('counts the weights of the %s preset as built, within 2 percent', async (arch) => {
    const dir = join(tmp(), arch);
    await initPreset({ arch, preset: 'small', outDir: dir, seed: 0 });
    const { model, config } = await loadModel(dir);
    try {
      const built = model.numParameters();
      expect(Math.abs(estimateModelSize(config).params - built) / built).toBeLessThan(0.02);
    } finally {
      model.dispose();
    }
  });
});

describe('checkModelFits', () => {
  const fails = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(ModelLoadError);
      expect((e as ModelLoadError).code).toBe('TOO_LARGE');
      return (e as Error).message;
    }
    throw new Error('expected TOO_LARGE');
  };

  it('passes a model that fits', () => {
    expect(checkModelFits(llama({ vocab_size: 32000, num_hidden_layers: 4 }), roomy).params).toBeGreaterThan(
      0,
    );
  });

  it('refuses weights past memory, a tensor past maxBufferSize and an embedding row past the binding size', () => {
    expect(fails(() => checkModelFits(llama({ vocab_size: 1e9 }), roomy))).toMatch(
      /the weights alone need about [\d.]+ GiB \(1\.\d+e\+11 parameters × 4 bytes: vocab_size 1000000000.*more than this machine's 64\.00 GiB/,
    );
    // Half-precision weights take half the memory.
    const half = llama({ vocab_size: 2e8, num_hidden_layers: 1 });
    expect(fails(() => checkModelFits(half, roomy))).toMatch(/× 4 bytes/);
    expect(checkModelFits(half, roomy, { bytesPerParam: 2 }).params).toBeGreaterThan(0);
    expect(
      fails(() => checkModelFits(llama({ intermediate_size: 5e6, num_hidden_layers: 1 }), roomy)),
    ).toMatch(
      /mlp weight needs a 1\.19 GiB buffer .* more than this WebGPU adapter's maxBufferSize of 1\.00 GiB/,
    );
    const narrow = { ...roomy, maxBindingBytes: 128 };
    expect(fails(() => checkModelFits(llama({}), narrow))).toMatch(/one embedding row 256 bytes/);
  });

  it('parseConfig caps layers and sizes before any estimate', () => {
    expect(() => llama({ num_hidden_layers: 1e7 })).toThrow(
      /"num_hidden_layers" is 10000000, more than the 1024/,
    );
    expect(() => llama({ vocab_size: 2 ** 40 })).toThrow(/"vocab_size" is \d+, more than the 2147483647/);
  });
});

describe('loadModel', () => {
  it('records the base model identity: shape fields and leading embedding values', async () => {
    const dir = join(tmp(), 'llama');
    const { model, identity } = await loadModel(dir);
    try {
      expect(baseModelIdentityOf(model)).toBe(identity);
      expect(identity.shape).toMatchObject({ model_type: 'llama', hidden_size: 128 });
      expect(identity.sample).toHaveLength(8);
      expect(identity.sample.some((v) => v !== 0)).toBe(true);
    } finally {
      model.dispose();
    }
  });
});
