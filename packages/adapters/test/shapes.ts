import type { LinearModuleInfo } from '../src/index.js';

/** Linear modules of a layer stack, e.g. stack('model.layers', 32, [['self_attn.q_proj', 4096, 4096]]). */
export function stack(
  prefix: string,
  layers: number,
  specs: Array<[moduleType: string, inFeatures: number, outFeatures: number, parts?: string[]]>,
): LinearModuleInfo[] {
  return Array.from({ length: layers }, (_, layer) =>
    specs.map(([moduleType, inFeatures, outFeatures, parts]) => ({
      name: `${prefix}.${layer}.${moduleType}`,
      layer,
      moduleType,
      inFeatures,
      outFeatures,
      ...(parts ? { fused: { parts } } : {}),
    })),
  ).flat();
}

/** The published shapes: RoBERTa-base, Llama-3-8B (GQA: k/v 1024), LLaMA-7B, GPT-2 medium. */
export const ROBERTA_BASE = stack('roberta.encoder.layer', 12, [
  ['attention.self.query', 768, 768],
  ['attention.self.key', 768, 768],
  ['attention.self.value', 768, 768],
  ['attention.output.dense', 768, 768],
  ['intermediate.dense', 768, 3072],
  ['output.dense', 3072, 768],
]);

const llama = (layers: number, h: number, kv: number, inner: number) =>
  stack('model.layers', layers, [
    ['self_attn.q_proj', h, h],
    ['self_attn.k_proj', h, kv],
    ['self_attn.v_proj', h, kv],
    ['self_attn.o_proj', h, h],
    ['mlp.gate_proj', h, inner],
    ['mlp.up_proj', h, inner],
    ['mlp.down_proj', inner, h],
  ]);

export const LLAMA3_8B = llama(32, 4096, 1024, 14336);
export const LLAMA_7B = llama(32, 4096, 4096, 11008);

export const GPT2_MEDIUM = stack('transformer.h', 24, [
  ['attn.c_attn', 1024, 3072, ['q', 'k', 'v']],
  ['attn.c_proj', 1024, 1024],
  ['mlp.c_fc', 1024, 4096],
  ['mlp.c_proj', 4096, 1024],
]);
