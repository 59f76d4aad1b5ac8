import { type AdapterConfigInput, adapterConfig } from './config.js';
import { planAdapter } from './plan.js';
import type { LinearModuleInfo } from './targets.js';

/** One targeted module type's sizes and parameter counts, under plain LoRA and under the method. */
export interface ModuleTypeCount {
  /** Module type, e.g. "self_attn.q_proj", or "attn.c_attn[q]" for a fused part. */
  moduleType: string;
  /** How many modules (usually one per layer) of this type are adapted. */
  modules: number;
  inFeatures: number;
  outFeatures: number;
  /** Trainable parameters plain LoRA would give these modules: Σ r·(in + out). */
  lora: number;
  /** Distinct trainable parameters of the matrices used only by this type under the config's sharing. */
  trainable: number;
  /** 1 − trainable / lora. */
  reduction: number;
}

/** A matrix shared by several module types (the qkv group), counted once and listed separately. */
export interface CrossTypeMatrix {
  sharedOver: string;
  matrix: 'A' | 'B';
  shape: [number, number];
  moduleTypes: string[];
  params: number;
}

/** What countParameters reports: per module type, per matrix shared across types, and in total. */
export interface ParameterCount {
  byModuleType: ModuleTypeCount[];
  crossType: CrossTypeMatrix[];
  total: { lora: number; trainable: number; reduction: number };
}

const reduction = (trainable: number, lora: number): number => (lora ? 1 - trainable / lora : 0);

/**
 * Exact trainable-parameter counts from shapes alone (e.g. a config.json via @sharelora/models'
 * linearModulesFromConfig): per module type, LoRA's count and this config's distinct count, each
 * shared matrix counted once. modulesToSave are not included (their shapes are not linear-module info).
 */
export function countParameters(
  modules: readonly LinearModuleInfo[],
  config: AdapterConfigInput,
): ParameterCount {
  const plan = planAdapter(modules, adapterConfig(config));
  const rows = new Map<string, ModuleTypeCount>();
  for (const s of plan.sites) {
    let row = rows.get(s.type);
    if (!row) {
      row = {
        moduleType: s.type,
        modules: 0,
        inFeatures: s.inFeatures,
        outFeatures: s.outFeatures,
        lora: 0,
        trainable: 0,
        reduction: 0,
      };
      rows.set(s.type, row);
    }
    row.modules++;
    row.lora += s.r * (s.inFeatures + s.outFeatures);
  }
  const crossType: CrossTypeMatrix[] = [];
  let trainable = 0;
  for (const g of plan.matrices.values()) {
    const params = g.shape[0] * g.shape[1];
    trainable += params;
    const types = [...new Set(g.sites.map((s) => s.type))];
    if (types.length === 1) (rows.get(types[0]) as ModuleTypeCount).trainable += params;
    else
      crossType.push({
        sharedOver: g.sharedOver ?? '',
        matrix: g.kind,
        shape: g.shape,
        moduleTypes: types,
        params,
      });
  }
  const byModuleType = [...rows.values()].map((r) => ({ ...r, reduction: reduction(r.trainable, r.lora) }));
  const lora = byModuleType.reduce((s, r) => s + r.lora, 0);
  return { byModuleType, crossType, total: { lora, trainable, reduction: reduction(trainable, lora) } };
}
