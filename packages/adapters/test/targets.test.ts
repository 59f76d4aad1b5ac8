import { describe, expect, it } from 'vitest';
import {
  AdapterError,
  countParameters,
  DEFAULT_TARGETS,
  presetConfig,
  resolveTargets,
  selectTargets,
  TARGET_ALIASES,
  targetAliasesOf,
} from '../src/index.js';
import { GPT2_MEDIUM, LLAMA_7B, ROBERTA_BASE } from './shapes.js';

const lora = (modules: typeof LLAMA_7B, words: string[]) =>
  countParameters(modules, presetConfig('lora', { r: 8, targetModules: resolveTargets(modules, words) }))
    .total.trainable;

describe('resolveTargets: one set of short names for every architecture', () => {
  it("q,v is the default and names each architecture's q and v projections", () => {
    expect(DEFAULT_TARGETS).toEqual(['q', 'v']);
    expect(resolveTargets(LLAMA_7B)).toEqual(['self_attn.q_proj', 'self_attn.v_proj']);
    expect(resolveTargets(ROBERTA_BASE, [])).toEqual(['attention.self.query', 'attention.self.value']);
    // GPT-2's fused c_attn: one entry with both parts, not the whole projection.
    expect(resolveTargets(GPT2_MEDIUM, ['q', 'v'])).toEqual(['attn.c_attn[q,v]']);
    expect(resolveTargets(GPT2_MEDIUM, ['qkv'])).toEqual(['attn.c_attn']);
  });

  it("selects exactly the modules the names mean (counted by LoRA's L·r·(d_in + d_out))", () => {
    // RoBERTa's fc2 is the layer's output.dense, not attention.output.dense.
    expect(lora(ROBERTA_BASE, ['fc2'])).toBe(12 * 8 * (3072 + 768));
    expect(lora(ROBERTA_BASE, ['o'])).toBe(12 * 8 * (768 + 768));
    expect(lora(GPT2_MEDIUM, ['o', 'fc1', 'fc2'])).toBe(24 * 8 * (2048 + 5120 + 5120));
    expect(lora(LLAMA_7B, ['gate', 'up', 'down'])).toBe(32 * 8 * 3 * (4096 + 11008));
    expect(lora(LLAMA_7B, ['all'])).toBe(32 * 8 * (4 * 8192 + 3 * (4096 + 11008)));
    expect(lora(ROBERTA_BASE, ['all'])).toBe(12 * 8 * (4 * 1536 + 2 * (768 + 3072)));
  });

  it('module names pass through; repeated words and parts merge', () => {
    expect(resolveTargets(LLAMA_7B, ['q', 'mlp.down_proj', 'q'])).toEqual([
      'self_attn.q_proj',
      'mlp.down_proj',
    ]);
    expect(resolveTargets(GPT2_MEDIUM, ['v', 'c_attn[q]', 'q'])).toEqual(['attn.c_attn[v,q]', 'c_attn[q]']);
  });

  it('a short name the model lacks is NO_TARGET listing the ones it has', () => {
    expect(targetAliasesOf(GPT2_MEDIUM)).toEqual(['q', 'k', 'v', 'o', 'qkv', 'fc1', 'fc2', 'all']);
    expect(targetAliasesOf(LLAMA_7B)).toEqual(['q', 'k', 'v', 'o', 'gate', 'up', 'down', 'all']);
    let err: unknown;
    try {
      resolveTargets(LLAMA_7B, ['q', 'fc1']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe('NO_TARGET');
    expect((err as AdapterError).message).toMatch(
      /target "fc1" .*short names for this model: q, k, v, o, gate, up, down, all/,
    );
  });

  it('whole and by parts stay apart, so that selectTargets reports the conflict; prototype keys are names', () => {
    const both = resolveTargets(GPT2_MEDIUM, ['qkv', 'q']);
    expect(both).toEqual(['attn.c_attn', 'attn.c_attn[q]']);
    expect(() => selectTargets(GPT2_MEDIUM, both)).toThrow(/both whole and by parts/);
    expect(Object.hasOwn(TARGET_ALIASES, 'constructor')).toBe(false);
    expect(resolveTargets(LLAMA_7B, ['constructor'])).toEqual(['constructor']);
  });
});
