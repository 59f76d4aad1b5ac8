import { ShareloraError } from '@sharelora/core';
import { MAX_LAYERS } from '../load/limits.js';

/**
 * A linear module of a model, from its config.json alone. Structurally identical to
 * @sharelora/adapters' LinearModuleInfo (the two packages do not import each other), so the result
 * can be passed straight to its countParameters().
 */
export interface LinearModuleInfo {
  /** HF module path, e.g. "model.layers.3.self_attn.q_proj". */
  name: string;
  layer: number;
  /** The path after the layer index, e.g. "self_attn.q_proj". */
  moduleType: string;
  inFeatures: number;
  outFeatures: number;
  /** GPT-2's c_attn packs q|k|v into one projection. */
  fused?: { parts: string[] };
}

/**
 * The architecture families {@link linearModulesFromConfig} knows (RoBERTa covers BERT and
 * XLM-RoBERTa, LLaMA covers Mistral). The same names as {@link Arch}, but read from config.json
 * alone, without building a model.
 */
export type LinearArch = 'gpt2' | 'roberta' | 'llama';

/**
 * What {@link linearModulesFromConfig} finds in a config.json: the architecture, the layer count
 * and every linear module with its shape (adapters resolves target names against these).
 */
export interface LinearModules {
  arch: LinearArch;
  /** Number of transformer layers. */
  layers: number;
  /** Every linear module inside the layers, layer by layer, in forward order. */
  modules: LinearModuleInfo[];
}

const ARCHS: Record<string, LinearArch> = {
  gpt2: 'gpt2',
  roberta: 'roberta',
  'xlm-roberta': 'roberta',
  bert: 'roberta',
  llama: 'llama',
  mistral: 'llama',
};

const badConfig = (msg: string): ShareloraError =>
  new ShareloraError('BAD_MODEL_CONFIG', `config.json: ${msg}`);

function int(config: Record<string, unknown>, key: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (!Number.isInteger(v) || (v as number) < 1) {
    throw badConfig(`${key} must be a positive integer, got ${JSON.stringify(config[key])}`);
  }
  return v as number;
}

/** A layer count, at most MAX_LAYERS: the module list has an entry per layer. */
function layerCount(config: Record<string, unknown>, key: string): number {
  const n = int(config, key);
  if (n > MAX_LAYERS) throw badConfig(`"${key}" is ${n}, more than the ${MAX_LAYERS} layers supported`);
  return n;
}

/** Per-layer module specs: [type, in, out, fused parts?]. */
type Spec = [string, number, number, string[]?];

function build(prefix: string, layers: number, specs: Spec[]): LinearModuleInfo[] {
  const out: LinearModuleInfo[] = [];
  for (let layer = 0; layer < layers; layer++) {
    for (const [moduleType, inFeatures, outFeatures, parts] of specs) {
      out.push({
        name: `${prefix}.${layer}.${moduleType}`,
        layer,
        moduleType,
        inFeatures,
        outFeatures,
        ...(parts ? { fused: { parts } } : {}),
      });
    }
  }
  return out;
}

/**
 * The linear modules of a GPT-2, RoBERTa/BERT or LLaMA-family model from its config.json, with HF
 * module paths (`transformer.h.{i}`, `roberta.encoder.layer.{i}` / `bert.`, `model.layers.{i}`).
 * Enough to count adapter parameters without any weights. Unknown model types and missing or
 * non-integer sizes are errors (code BAD_MODEL_CONFIG) naming the key.
 */
export function linearModulesFromConfig(config: Record<string, unknown>): LinearModules {
  const modelType = config.model_type;
  const arch = typeof modelType === 'string' ? ARCHS[modelType] : undefined;
  if (!arch) {
    throw badConfig(
      `model_type ${JSON.stringify(modelType)} is not supported (supported: ${Object.keys(ARCHS).join(', ')})`,
    );
  }
  let layers: number;
  let specs: Spec[];
  let prefix: string;
  if (arch === 'gpt2') {
    const d = int(config, 'n_embd');
    const inner = config.n_inner == null ? 4 * d : int(config, 'n_inner');
    layers = layerCount(config, 'n_layer');
    prefix = 'transformer.h';
    specs = [
      ['attn.c_attn', d, 3 * d, ['q', 'k', 'v']],
      ['attn.c_proj', d, d],
      ['mlp.c_fc', d, inner],
      ['mlp.c_proj', inner, d],
    ];
  } else if (arch === 'roberta') {
    const h = int(config, 'hidden_size');
    const inner = int(config, 'intermediate_size');
    layers = layerCount(config, 'num_hidden_layers');
    prefix = `${modelType === 'bert' ? 'bert' : 'roberta'}.encoder.layer`;
    specs = [
      ['attention.self.query', h, h],
      ['attention.self.key', h, h],
      ['attention.self.value', h, h],
      ['attention.output.dense', h, h],
      ['intermediate.dense', h, inner],
      ['output.dense', inner, h],
    ];
  } else {
    const h = int(config, 'hidden_size');
    const inner = int(config, 'intermediate_size');
    const heads = int(config, 'num_attention_heads');
    const kvHeads = int(config, 'num_key_value_heads', heads);
    if (config.head_dim == null && h % heads !== 0) {
      throw badConfig(`hidden_size ${h} is not divisible by num_attention_heads ${heads}; give head_dim`);
    }
    const headDim = int(config, 'head_dim', h / heads);
    layers = layerCount(config, 'num_hidden_layers');
    prefix = 'model.layers';
    specs = [
      ['self_attn.q_proj', h, heads * headDim],
      ['self_attn.k_proj', h, kvHeads * headDim],
      ['self_attn.v_proj', h, kvHeads * headDim],
      ['self_attn.o_proj', heads * headDim, h],
      ['mlp.gate_proj', h, inner],
      ['mlp.up_proj', h, inner],
      ['mlp.down_proj', inner, h],
    ];
  }
  return { arch, layers, modules: build(prefix, layers, specs) };
}
