/**
 * config.json -> a typed ModelConfig, with transformers' defaults for absent (or null) keys and the
 * spellings different transformers versions write: GPT-2's n_embd/n_layer/... or their generic
 * aliases, rope_scaling (`type` or `rope_type`) or v5's rope_parameters, eos_token_id as an int or a list.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RopeScaling } from '@sharelora/core';
import { ACTIVATIONS, type ActivationName, type RopeConfig } from '../arch/common.js';
import type {
  Arch,
  Gpt2Config,
  LlamaConfig,
  ModelConfig,
  ProblemType,
  RobertaConfig,
} from '../arch/types.js';
import { ModelLoadError } from './errors.js';
import { MAX_LAYERS } from './limits.js';

const ARCH_BY_MODEL_TYPE: Readonly<Record<string, Arch>> = {
  gpt2: 'gpt2',
  roberta: 'roberta',
  'xlm-roberta': 'roberta',
  camembert: 'roberta',
  llama: 'llama',
};
/** For configs without model_type: the class prefixes of `architectures`. */
const ARCH_BY_CLASS: ReadonlyArray<[RegExp, Arch]> = [
  [/^GPT2/, 'gpt2'],
  [/^(Roberta|XLMRoberta|Camembert)/, 'roberta'],
  [/^Llama/, 'llama'],
];
const PROBLEM_TYPES: readonly ProblemType[] = [
  'regression',
  'single_label_classification',
  'multi_label_classification',
];

type Json = Record<string, unknown>;

/** Typed access to config keys; absent and null both mean "use the default", as in transformers. */
class Keys {
  constructor(
    readonly raw: Json,
    readonly path: string,
  ) {}

  fail(detail: string, code: 'BAD_CONFIG' | 'UNSUPPORTED' = 'BAD_CONFIG'): never {
    throw new ModelLoadError(code, this.path, detail);
  }

  /** The first of `names` present, with its name. */
  private get(names: readonly string[]): [string, unknown] | null {
    for (const n of names) if (this.raw[n] !== undefined && this.raw[n] !== null) return [n, this.raw[n]];
    return null;
  }

  num(
    names: string | readonly string[],
    def: number,
    opts: { int?: boolean; min?: number; max?: number } = {},
  ): number {
    const hit = this.get(typeof names === 'string' ? [names] : names);
    if (!hit) return def;
    const [n, v] = hit;
    const min = opts.min ?? (opts.int ? 1 : 0);
    // Sizes are array lengths and shader indices: beyond 2^31 nothing downstream can address them.
    const max = opts.max ?? (opts.int ? 2 ** 31 - 1 : Number.POSITIVE_INFINITY);
    if (typeof v !== 'number' || !Number.isFinite(v) || (opts.int && !Number.isInteger(v)) || v < min) {
      this.fail(`"${n}" must be ${opts.int ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(v)}`);
    }
    if (v > max) this.fail(`"${n}" is ${v}, more than the ${max} supported`);
    return v;
  }

  int(names: string | readonly string[], def: number): number {
    return this.num(names, def, { int: true });
  }

  /** The number of transformer layers, at most MAX_LAYERS. */
  layers(names: string | readonly string[], def: number): number {
    return this.num(names, def, { int: true, max: MAX_LAYERS });
  }

  bool(name: string, def: boolean): boolean {
    const hit = this.get([name]);
    if (!hit) return def;
    if (typeof hit[1] !== 'boolean')
      this.fail(`"${name}" must be true or false, got ${JSON.stringify(hit[1])}`);
    return hit[1];
  }

  tokenId(name: string, def: number | null): number | null {
    const hit = this.get([name]);
    if (!hit) return def;
    if (!Number.isInteger(hit[1])) this.fail(`"${name}" must be an integer, got ${JSON.stringify(hit[1])}`);
    return hit[1] as number;
  }

  /** An id or a list of ids. */
  tokenIds(name: string, def: number[]): number[] {
    const hit = this.get([name]);
    if (!hit) return def;
    const list = Array.isArray(hit[1]) ? hit[1] : [hit[1]];
    if (!list.every(Number.isInteger))
      this.fail(`"${name}" must be an integer or a list of integers, got ${JSON.stringify(hit[1])}`);
    return list as number[];
  }

  activation(names: string | readonly string[], def: ActivationName): ActivationName {
    const hit = this.get(typeof names === 'string' ? [names] : names);
    if (!hit) return def;
    if (typeof hit[1] !== 'string' || !Object.hasOwn(ACTIVATIONS, hit[1])) {
      this.fail(
        `activation ${JSON.stringify(hit[1])} ("${hit[0]}") is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`,
        'UNSUPPORTED',
      );
    }
    return hit[1] as ActivationName;
  }

  /** Keys every architecture shares. */
  base(defaults: { vocab: number; tie: boolean; bos: number | null; eos: number[]; pad: number | null }) {
    const archs = this.raw.architectures;
    return {
      vocabSize: this.int('vocab_size', defaults.vocab),
      initializerRange: this.num('initializer_range', 0.02),
      tieWordEmbeddings: this.bool('tie_word_embeddings', defaults.tie),
      bosTokenId: this.tokenId('bos_token_id', defaults.bos),
      eosTokenIds: this.tokenIds('eos_token_id', defaults.eos),
      padTokenId: this.tokenId('pad_token_id', defaults.pad),
      hfArchitecture: Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null,
      raw: this.raw,
    };
  }

  divisible(a: number, aName: string, b: number, bName: string): void {
    if (a % b !== 0) this.fail(`${aName} (${a}) is not a multiple of ${bName} (${b})`);
  }
}

function gpt2(k: Keys): Gpt2Config {
  if (k.bool('add_cross_attention', false))
    k.fail('add_cross_attention (GPT-2 as a decoder of an encoder) is not supported', 'UNSUPPORTED');
  const hiddenSize = k.int(['n_embd', 'hidden_size'], 768);
  const numHeads = k.int(['n_head', 'num_attention_heads'], 12);
  k.divisible(hiddenSize, 'n_embd', numHeads, 'n_head');
  return {
    arch: 'gpt2',
    ...k.base({ vocab: 50257, tie: true, bos: 50256, eos: [50256], pad: null }),
    hiddenSize,
    numHeads,
    numLayers: k.layers(['n_layer', 'num_hidden_layers'], 12),
    maxPositions: k.int(['n_positions', 'max_position_embeddings'], 1024),
    intermediateSize: k.int('n_inner', 4 * hiddenSize),
    activation: k.activation('activation_function', 'gelu_new'),
    layerNormEps: k.num(['layer_norm_epsilon', 'layer_norm_eps'], 1e-5),
    scaleAttnWeights: k.bool('scale_attn_weights', true),
    scaleAttnByInverseLayerIdx: k.bool('scale_attn_by_inverse_layer_idx', false),
    embdPdrop: k.num('embd_pdrop', 0.1),
    residPdrop: k.num('resid_pdrop', 0.1),
  };
}

function roberta(k: Keys): RobertaConfig {
  if (k.bool('is_decoder', false))
    k.fail('is_decoder (RoBERTa as a causal decoder) is not supported', 'UNSUPPORTED');
  const posType = k.raw.position_embedding_type;
  if (posType !== undefined && posType !== null && posType !== 'absolute') {
    k.fail(
      `position_embedding_type ${JSON.stringify(posType)} is not supported (supported: absolute)`,
      'UNSUPPORTED',
    );
  }
  const hiddenSize = k.int('hidden_size', 768);
  const numHeads = k.int('num_attention_heads', 12);
  k.divisible(hiddenSize, 'hidden_size', numHeads, 'num_attention_heads');
  const id2label = k.raw.id2label;
  const labelsInMap = id2label && typeof id2label === 'object' ? Object.keys(id2label).length : 0;
  const problemType = k.raw.problem_type ?? null;
  if (problemType !== null && !PROBLEM_TYPES.includes(problemType as ProblemType)) {
    k.fail(`problem_type ${JSON.stringify(problemType)} is not one of ${PROBLEM_TYPES.join(', ')}`);
  }
  const hiddenDropoutProb = k.num('hidden_dropout_prob', 0.1);
  const base = k.base({ vocab: 50265, tie: true, bos: 0, eos: [2], pad: 1 });
  return {
    arch: 'roberta',
    ...base,
    // RoBERTa's position ids are defined by the padding id, so it cannot be absent.
    padTokenId: base.padTokenId ?? 1,
    hiddenSize,
    numHeads,
    numLayers: k.layers('num_hidden_layers', 12),
    intermediateSize: k.int('intermediate_size', 3072),
    activation: k.activation('hidden_act', 'gelu'),
    maxPositions: k.int('max_position_embeddings', 512),
    typeVocabSize: k.int('type_vocab_size', 2),
    layerNormEps: k.num('layer_norm_eps', 1e-12),
    hiddenDropoutProb,
    classifierDropout: k.num('classifier_dropout', hiddenDropoutProb),
    numLabels: k.int('num_labels', labelsInMap || 2),
    problemType: problemType as ProblemType | null,
  };
}

/** rope_parameters (transformers v5) or rope_scaling, each with `rope_type` or the older `type`. */
function llamaRope(k: Keys, headDim: number): RopeConfig {
  const spec = (k.raw.rope_parameters ?? k.raw.rope_scaling ?? null) as Json | null;
  const where = k.raw.rope_parameters ? 'rope_parameters' : 'rope_scaling';
  if (spec !== null && (typeof spec !== 'object' || Array.isArray(spec)))
    k.fail(`"${where}" must be an object or null`);
  const sub = new Keys(spec ?? {}, k.path);
  const type = spec?.rope_type ?? spec?.type ?? 'default';
  const theta = sub.num('rope_theta', k.num('rope_theta', 10000));
  const partial = sub.num('partial_rotary_factor', k.num('partial_rotary_factor', 1));
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    k.fail(
      `head_dim ${headDim} × partial_rotary_factor ${partial} must give an even rotary dimension <= head_dim`,
    );
  }
  const need = (name: string): number => {
    if (typeof spec?.[name] !== 'number')
      k.fail(`${where} of type ${JSON.stringify(type)} needs a numeric "${name}"`);
    return sub.num(name, 0);
  };
  let scaling: RopeScaling | undefined;
  if (type === 'linear') scaling = { type: 'linear', factor: need('factor') };
  else if (type === 'llama3') {
    scaling = {
      type: 'llama3',
      factor: need('factor'),
      low_freq_factor: need('low_freq_factor'),
      high_freq_factor: need('high_freq_factor'),
      original_max_position_embeddings: need('original_max_position_embeddings'),
    };
    if (scaling.high_freq_factor <= scaling.low_freq_factor)
      k.fail(`${where}: high_freq_factor must exceed low_freq_factor`);
  } else if (type !== 'default') {
    k.fail(
      `${where} type ${JSON.stringify(type)} is not supported (supported: default, linear, llama3)`,
      'UNSUPPORTED',
    );
  }
  return { theta, rotaryDim, ...(scaling ? { scaling } : {}) };
}

function llama(k: Keys): LlamaConfig {
  const hiddenSize = k.int('hidden_size', 4096);
  const numHeads = k.int('num_attention_heads', 32);
  const numKvHeads = k.int('num_key_value_heads', numHeads);
  k.divisible(numHeads, 'num_attention_heads', numKvHeads, 'num_key_value_heads');
  if (k.raw.head_dim === undefined || k.raw.head_dim === null)
    k.divisible(hiddenSize, 'hidden_size', numHeads, 'num_attention_heads');
  const headDim = k.int('head_dim', Math.floor(hiddenSize / numHeads));
  return {
    arch: 'llama',
    ...k.base({ vocab: 32000, tie: false, bos: 1, eos: [2], pad: null }),
    hiddenSize,
    numHeads,
    numKvHeads,
    headDim,
    numLayers: k.layers('num_hidden_layers', 32),
    intermediateSize: k.int('intermediate_size', 11008),
    maxPositions: k.int('max_position_embeddings', 2048),
    activation: k.activation('hidden_act', 'silu'),
    rmsNormEps: k.num('rms_norm_eps', 1e-6),
    rope: llamaRope(k, headDim),
    attentionBias: k.bool('attention_bias', false),
    mlpBias: k.bool('mlp_bias', false),
  };
}

/** Parses config.json's object; `path` is named in errors. */
export function parseConfig(raw: unknown, path = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelLoadError('BAD_CONFIG', path, 'config must be a JSON object');
  }
  const k = new Keys(raw as Json, path);
  const modelType = k.raw.model_type;
  const archs = k.raw.architectures;
  let arch: Arch | undefined;
  if (typeof modelType === 'string') arch = ARCH_BY_MODEL_TYPE[modelType];
  else if (Array.isArray(archs) && typeof archs[0] === 'string') {
    arch = ARCH_BY_CLASS.find(([re]) => re.test(archs[0]))?.[1];
  }
  if (!arch) {
    const what =
      typeof modelType === 'string'
        ? `model_type ${JSON.stringify(modelType)}`
        : 'a config without model_type';
    k.fail(
      `${what} is not supported (supported model_type: ${Object.keys(ARCH_BY_MODEL_TYPE).join(', ')})`,
      'UNSUPPORTED',
    );
  }
  return arch === 'gpt2' ? gpt2(k) : arch === 'roberta' ? roberta(k) : llama(k);
}

/** Reads and parses `dir`/config.json. */
export async function readConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  const isFile = await stat(dir).then(
    (s) => !s.isDirectory(),
    () => false,
  );
  if (isFile)
    throw new ModelLoadError(
      'BAD_CONFIG',
      dir,
      'is a file, not a model directory (give the directory that holds config.json and the weights)',
    );
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ModelLoadError(
      'BAD_CONFIG',
      path,
      missing ? 'not found (a model directory needs config.json)' : `cannot read: ${(e as Error).message}`,
      { cause: e },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError('BAD_CONFIG', path, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseConfig(raw, path);
}
