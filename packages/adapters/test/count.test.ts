import { describe, expect, it } from 'vitest';
import {
  AdapterError,
  adapterConfig,
  countParameters,
  METHODS,
  type Method,
  methodOf,
  PRESETS,
  presetConfig,
} from '../src/index.js';
import { GPT2_MEDIUM, LLAMA_7B, LLAMA3_8B, ROBERTA_BASE } from './shapes.js';

const total = (modules: typeof ROBERTA_BASE, method: Method, r: number, targetModules: string[]) =>
  countParameters(modules, presetConfig(method, { r, targetModules })).total.trainable;

const QV_ROBERTA = ['query', 'value'];
const QV_LLAMA = ['q_proj', 'v_proj'];
const ALL_LLAMA = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

describe('countParameters: the published numbers (DESIGN §1)', () => {
  it('RoBERTa-base, r=8, query+value', () => {
    const got = ['lora', 'share-a', 'share-b', 'share-ab'].map((m) =>
      total(ROBERTA_BASE, m as Method, 8, QV_ROBERTA),
    );
    expect(got).toEqual([294_912, 159_744, 159_744, 24_576]);
  });

  it('Llama-3-8B, r=64, q_proj+v_proj (v is 4096→1024 under GQA)', () => {
    const got = ['lora', 'share-a', 'share-b', 'share-ab'].map((m) =>
      total(LLAMA3_8B, m as Method, 64, QV_LLAMA),
    );
    expect(got).toEqual([27_262_976, 11_010_048, 17_104_896, 851_968]);
  });

  it('LLaMA-7B, r=64, all seven linear modules: ShareA is −44.15%', () => {
    const lora = countParameters(LLAMA_7B, presetConfig('lora', { r: 64, targetModules: ALL_LLAMA }));
    const shareA = countParameters(LLAMA_7B, presetConfig('share-a', { r: 64, targetModules: ALL_LLAMA }));
    expect(lora.total.trainable).toBe(159_907_840);
    expect(shareA.total.trainable).toBe(89_309_184);
    expect(shareA.total.lora).toBe(159_907_840);
    expect(shareA.total.reduction).toBeCloseTo(0.4415, 4);
    expect(total(LLAMA_7B, 'share-b', 64, ALL_LLAMA)).toBe(75_595_776);
    expect(total(LLAMA_7B, 'share-ab', 64, ALL_LLAMA)).toBe(4_997_120);
  });

  it('reports per module type: dims, LoRA count, this method, reduction', () => {
    const c = countParameters(LLAMA3_8B, presetConfig('share-a', { r: 64, targetModules: QV_LLAMA }));
    expect(c.byModuleType).toEqual([
      {
        moduleType: 'self_attn.q_proj',
        modules: 32,
        inFeatures: 4096,
        outFeatures: 4096,
        lora: 16_777_216,
        trainable: 64 * 4096 + 32 * 64 * 4096,
        reduction: 1 - (64 * 4096 + 32 * 64 * 4096) / 16_777_216,
      },
      {
        moduleType: 'self_attn.v_proj',
        modules: 32,
        inFeatures: 4096,
        outFeatures: 1024,
        lora: 10_485_760,
        trainable: 64 * 4096 + 32 * 64 * 1024,
        reduction: 1 - (64 * 4096 + 32 * 64 * 1024) / 10_485_760,
      },
    ]);
    expect(c.crossType).toEqual([]);
  });

  it('share-qkv: one A for q and v of every layer, B per layer and projection; listed as a cross-type matrix', () => {
    const c = countParameters(LLAMA3_8B, presetConfig('share-qkv', { r: 64, targetModules: QV_LLAMA }));
    expect(c.crossType).toEqual([
      {
        sharedOver: 'self_attn.{q_proj,k_proj,v_proj}',
        matrix: 'A',
        shape: [64, 4096],
        moduleTypes: ['self_attn.q_proj', 'self_attn.v_proj'],
        params: 64 * 4096,
      },
    ]);
    expect(c.total.trainable).toBe(64 * 4096 + 32 * 64 * (4096 + 1024));
  });

  it("GPT-2 medium's fused c_attn: q and v parts (the paper's runs) or the whole projection (PEFT)", () => {
    const parts = ['attn.c_attn[q,v]'];
    expect(total(GPT2_MEDIUM, 'lora', 4, parts)).toBe(24 * 2 * 4 * (1024 + 1024));
    expect(total(GPT2_MEDIUM, 'share-a', 4, parts)).toBe(2 * 4 * 1024 + 24 * 2 * 4 * 1024);
    expect(total(GPT2_MEDIUM, 'share-qkv', 4, parts)).toBe(4 * 1024 + 24 * 2 * 4 * 1024);
    // Separate entries for the parts of one module are merged.
    expect(total(GPT2_MEDIUM, 'lora', 4, ['c_attn[q]', 'c_attn[v]'])).toBe(24 * 2 * 4 * 2048);
    expect(total(GPT2_MEDIUM, 'lora', 4, ['c_attn'])).toBe(24 * 4 * (1024 + 3072));
    const c = countParameters(GPT2_MEDIUM, presetConfig('lora', { r: 4, targetModules: parts }));
    expect(c.byModuleType.map((t) => [t.moduleType, t.inFeatures, t.outFeatures])).toEqual([
      ['attn.c_attn[q]', 1024, 1024],
      ['attn.c_attn[v]', 1024, 1024],
    ]);
  });

  it('sharing restricted to a layer range: other layers keep per-layer matrices', () => {
    const cfg = presetConfig('share-a', { r: 8, targetModules: QV_ROBERTA, sharing: { layers: [0, 6] } });
    // Per type: one shared A for layers 0-5, own A for 6-11, B for all 12.
    expect(countParameters(ROBERTA_BASE, cfg).total.trainable).toBe(
      2 * (8 * 768 + 6 * 8 * 768 + 12 * 8 * 768),
    );
  });

  it('a regex target (PEFT string form) and rank_pattern', () => {
    const cfg = adapterConfig({ r: 8, targetModules: '.*\\.(query|value)', rankPattern: { value: 4 } });
    expect(countParameters(ROBERTA_BASE, cfg).total.trainable).toBe(12 * (8 * 1536 + 4 * 1536));
  });
});

describe('validation against the model', () => {
  const expectError = (fn: () => unknown, code: string, text: RegExp) => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(AdapterError);
      expect((e as AdapterError).code).toBe(code);
      expect((e as Error).message).toMatch(text);
      return;
    }
    throw new Error('expected an error');
  };

  it('sharing B across q/k/v under GQA is refused, naming the dims', () => {
    const cfg = adapterConfig({
      r: 64,
      targetModules: QV_LLAMA,
      sharing: { shareA: false, shareB: true, group: 'qkv' },
    });
    expectError(
      () => countParameters(LLAMA3_8B, cfg),
      'SHARE_SHAPE',
      /cannot share B over self_attn\.\{q_proj,k_proj,v_proj\}.*self_attn\.q_proj r=64 out=4096; self_attn\.v_proj r=64 out=1024.*grouped-query/,
    );
  });

  it('a shared A needs one rank across the group', () => {
    // A custom rank per module type breaks an A shared across q and v.
    const cfg = presetConfig('share-qkv', { r: 8, targetModules: QV_ROBERTA, rankPattern: { value: 4 } });
    expectError(
      () => countParameters(ROBERTA_BASE, cfg),
      'SHARE_SHAPE',
      /cannot share A over attention\.self\.\{query,key,value\}/,
    );
  });

  it('targets that match nothing, and bad fused parts, are errors', () => {
    const cfg = (t: string[]) => adapterConfig({ targetModules: t });
    expectError(
      () => countParameters(LLAMA_7B, cfg(['q_proj', 'qproj'])),
      'NO_TARGET',
      /target "qproj" matched no linear module.*self_attn\.q_proj/,
    );
    expectError(() => countParameters(LLAMA_7B, cfg(['q_proj[a]'])), 'NO_TARGET', /not a fused projection/);
    expectError(
      () => countParameters(GPT2_MEDIUM, cfg(['c_attn[q,x]'])),
      'NO_TARGET',
      /parts q, k, v, not x/,
    );
    expectError(
      () => countParameters(GPT2_MEDIUM, cfg(['c_attn', 'c_attn[q]'])),
      'NO_TARGET',
      /both whole and by parts/,
    );
  });
});

describe('adapter config', () => {
  const bad = (input: unknown, text: RegExp) =>
    expect(() => adapterConfig(input as Parameters<typeof adapterConfig>[0])).toThrow(text);

  it('fills defaults', () => {
    const c = adapterConfig({ targetModules: ['q_proj'] });
    expect(c).toMatchObject({
      r: 8,
      alpha: 8,
      dropout: 0,
      scaling: 'standard',
      initA: 'kaiming',
      bias: 'none',
    });
    expect(c.sharing).toEqual({ shareA: false, shareB: false, group: 'module', layers: null });
  });

  it('names unknown keys (with a hint for PEFT spellings) and bad values', () => {
    bad({ targetModules: ['q'], lora_alpha: 16 }, /unknown key "lora_alpha" \(did you mean "alpha"\?\)/);
    bad({ targetModules: ['q'], target_modules: ['q'] }, /did you mean "targetModules"/);
    bad({ targetModules: ['q'], sharing: { shareC: true } }, /unknown key "sharing.shareC"/);
    bad({ targetModules: ['q'], r: 0 }, /r must be a positive integer, got 0/);
    bad({ targetModules: ['q'], dropout: 1 }, /dropout must be a number in \[0, 1\)/);
    bad({ targetModules: ['q'], scaling: 'rs' }, /scaling must be one of "standard", "rslora"/);
    bad({ targetModules: ['q'], bias: 'all' }, /bias must be one of "none"/);
    bad({ targetModules: [] }, /targetModules must be a non-empty list/);
    bad({ targetModules: '(' }, /targetModules must be a valid regular expression/);
    bad({ r: 8 }, /targetModules is required/);
    bad(
      { targetModules: ['q'], sharing: { shareA: true, layers: [4, 2] } },
      /sharing.layers must be null or \[start, end\)/,
    );
    bad(
      { targetModules: ['q'], sharing: { layers: [0, 2] } },
      /sharing.layers must be null when nothing is shared/,
    );
  });

  it('presets and methodOf agree; a preset refuses a conflicting sharing override', () => {
    for (const m of METHODS) {
      const c = presetConfig(m, { targetModules: ['q'] });
      expect(c.sharing).toEqual({ ...PRESETS[m], layers: null });
      expect(methodOf(c.sharing)).toBe(m);
    }
    expect(() => presetConfig('share-a', { targetModules: ['q'], sharing: { shareB: true } })).toThrow(
      /sharing.shareB must be left out: method "share-a" sets it/,
    );
  });
});
