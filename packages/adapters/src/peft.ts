import {
  assignTensor,
  baseModelDifference,
  baseModelIdentityOf,
  type Module,
  type Parameter,
  type Tensor,
} from '@sharelora/core';
import { type AdapterConfig, type AdapterConfigInput, adapterConfig, scalingFactor } from './config.js';
import { AdapterError } from './errors.js';
import type { ModulesToSaveWrapper } from './layers.js';
import {
  deleteAdapter,
  getAdapter,
  type InjectedAdapter,
  type InjectOptions,
  injectAdapter,
  linearModules,
} from './model.js';
import type { AdapterSite } from './plan.js';
import { matchesSuffix } from './targets.js';

/** PEFT prefixes every adapter tensor with the path of the base model inside its PeftModel. */
export const PEFT_PREFIX = 'base_model.model.';

/** Bumped when the "sharelora" block (see exportAdapter) changes incompatibly. */
export const SHARELORA_FORMAT_VERSION = 1;

/**
 * The keys PEFT's LoraConfig writes to adapter_config.json, from PEFT 0.6 to 0.21 (the dataclass
 * fields of PeftConfig and LoraConfig in each release). A key outside this list is warned about and
 * ignored; keys whose non-default values change the model are refused (see UNSUPPORTED).
 */
export const PEFT_LORA_CONFIG_KEYS: readonly string[] = [
  'alora_invocation_tokens',
  'alpha_pattern',
  'arrow_config',
  'auto_mapping',
  'base_model_name_or_path',
  'bias',
  'corda_config',
  'ensure_weight_tying',
  'eva_config',
  'exclude_modules',
  'fan_in_fan_out',
  'inference_mode',
  'init_lora_weights',
  'kasa_config',
  'layer_replication',
  'layers_pattern',
  'layers_to_transform',
  'loftq_config',
  'lora_alpha',
  'lora_bias',
  'lora_dropout',
  'lora_ga_config',
  'megatron_config',
  'megatron_core',
  'modules_to_save',
  'monteclora_config',
  'peft_type',
  'peft_version',
  'qalora_group_size',
  'r',
  'rank_pattern',
  'revision',
  'runtime_config',
  'target_modules',
  'target_parameters',
  'task_type',
  'trainable_token_indices',
  'use_bdlora',
  'use_dora',
  'use_qalora',
  'use_rslora',
  'velora_config',
];

/** The safetensors metadata key of adapter_model.safetensors that holds the "sharelora" block. */
export const SHARELORA_METADATA_KEY = 'sharelora';

/** Top-level model prefixes that differ between HF classes (LlamaForCausalLM vs LlamaModel, ...). */
const MODEL_PREFIXES = ['model.', 'transformer.', 'roberta.', 'bert.'];

/** What is written to an adapter directory: adapter_config.json and adapter_model.safetensors. */
export interface PeftAdapterFiles {
  /** adapter_config.json: PEFT's LoraConfig fields only, so that every PEFT version loads it. */
  config: Record<string, unknown>;
  tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>;
  /**
   * The safetensors `__metadata__` of adapter_model.safetensors: PEFT's `format: "pt"` and, under
   * SHARELORA_METADATA_KEY, the "sharelora" block as JSON (sharing, fused-part targets, patterns,
   * the base model's identity), where no PEFT version reads it.
   */
  metadata: Record<string, string>;
}

/** Read access to the tensors of an adapter_model.safetensors (a SafetensorsReader, or a parsed buffer). */
export interface AdapterTensorSource {
  keys(): string[];
  shape(key: string): readonly number[];
  read(key: string): Promise<Float32Array> | Float32Array;
  /** The file's safetensors `__metadata__`, where sharelora records the sharing. */
  metadata?: Readonly<Record<string, string>>;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function sitesByModule(a: InjectedAdapter): Map<string, AdapterSite[]> {
  const out = new Map<string, AdapterSite[]>();
  for (const s of a.plan.sites) out.set(s.module.name, [...(out.get(s.module.name) ?? []), s]);
  return out;
}

/**
 * PEFT's target_modules: the adapted module types when they select exactly the adapted modules by
 * PEFT's suffix rule, otherwise the full paths (always exact).
 */
function peftTargets(model: Module, a: InjectedAdapter): string[] {
  const adapted = new Set(a.plan.sites.map((s) => s.module.name));
  const types = [...new Set(a.plan.sites.map((s) => s.module.moduleType))];
  const exact =
    !types.some((t) => t.includes('*')) &&
    linearModules(model, a.fused).every(
      (m) => types.some((t) => matchesSuffix(t, m.name)) === adapted.has(m.name),
    );
  return exact ? types : [...adapted];
}

/**
 * A module adapted by parts is saved as one PEFT LoRA of rank k·r (k parts): A stacks the parts'
 * A matrices, B is block-diagonal in the parts' rows. rank_pattern/alpha_pattern give PEFT that
 * rank and an alpha keeping the scaling s unchanged.
 */
function partPatterns(a: InjectedAdapter): { rank: Record<string, number>; alpha: Record<string, number> } {
  const rank: Record<string, number> = {};
  const alpha: Record<string, number> = {};
  for (const sites of sitesByModule(a).values()) {
    if (sites[0].part === null) continue;
    const key = escapeRegex(sites[0].module.moduleType);
    const r = sites.length * sites[0].r;
    const al = sites[0].scaling / scalingFactor(1, r, a.config.scaling);
    if ((key in rank && rank[key] !== r) || (key in alpha && alpha[key] !== al)) {
      throw new AdapterError(
        'ADAPTER_STATE',
        `${sites[0].module.moduleType}: modules adapted by parts must share rank and alpha to be saved for PEFT`,
      );
    }
    rank[key] = r;
    alpha[key] = al;
  }
  return { rank, alpha };
}

function peftConfig(model: Module, a: InjectedAdapter, baseModel: string | null): Record<string, unknown> {
  const cfg = a.config;
  const layouts = new Map(linearModules(model, a.fused).map((m) => [m.name, m.layout]));
  const inOut = new Set(a.plan.sites.map((s) => layouts.get(s.module.name) === 'in_out'));
  if (inOut.size > 1) {
    throw new AdapterError(
      'ADAPTER_STATE',
      'PEFT has one fan_in_fan_out flag, but the targets mix [in, out] (Conv1D) and [out, in] weights; use separate adapters',
    );
  }
  const parts = partPatterns(a);
  return {
    peft_type: 'LORA',
    task_type: cfg.taskType,
    base_model_name_or_path: baseModel ?? cfg.baseModelNameOrPath,
    r: cfg.r,
    lora_alpha: cfg.alpha,
    lora_dropout: cfg.dropout,
    target_modules: peftTargets(model, a),
    fan_in_fan_out: inOut.has(true),
    bias: 'none',
    modules_to_save: cfg.modulesToSave.length ? cfg.modulesToSave : null,
    use_rslora: cfg.scaling === 'rslora',
    init_lora_weights: cfg.initA === 'gaussian' ? 'gaussian' : true,
    rank_pattern: { ...parts.rank, ...cfg.rankPattern },
    alpha_pattern: { ...parts.alpha, ...cfg.alphaPattern },
    use_dora: false,
    layers_to_transform: null,
    layers_pattern: null,
    inference_mode: true,
    revision: null,
  };
}

/**
 * What PEFT's config cannot say: lets sharelora re-tie the shared matrices and restore fused-part
 * targets, and refuse loading onto another base model than the one the loader recorded.
 */
function shareloraBlock(model: Module, a: InjectedAdapter): Record<string, unknown> {
  const cfg = a.config;
  const usedFused = Object.fromEntries(
    Object.entries(a.fused).filter(([suffix]) =>
      a.plan.sites.some((s) => s.part !== null && matchesSuffix(suffix, s.module.name)),
    ),
  );
  const base = baseModelIdentityOf(model);
  return {
    version: SHARELORA_FORMAT_VERSION,
    shareA: cfg.sharing.shareA,
    shareB: cfg.sharing.shareB,
    group: cfg.sharing.group,
    layers: cfg.sharing.layers,
    targetModules: cfg.targetModules,
    rankPattern: cfg.rankPattern,
    alphaPattern: cfg.alphaPattern,
    fused: usedFused,
    ...(base ? { baseModel: base } : {}),
  };
}

/**
 * An adapter in PEFT's format, in memory: adapter_config.json's content and the tensors of
 * adapter_model.safetensors under PEFT's names (`base_model.model.<path>.lora_A.weight` [r, in],
 * `.lora_B.weight` [out, r]). A shared matrix is written under every layer's key, so stock PEFT
 * loads a ShareLoRA adapter as ordinary LoRA; the "sharelora" block in the weights file's metadata
 * records the sharing (adapter_config.json keeps to PEFT's keys: PEFT 0.13 and older refuse others).
 */
export async function exportAdapter(
  model: Module,
  opts: { name?: string; baseModelNameOrPath?: string } = {},
): Promise<PeftAdapterFiles> {
  const a = getAdapter(model, opts.name);
  const config = peftConfig(model, a, opts.baseModelNameOrPath ?? null);
  const metadata = { format: 'pt', [SHARELORA_METADATA_KEY]: JSON.stringify(shareloraBlock(model, a)) };
  return { config, tensors: await peftLayout(model, a, 'value'), metadata };
}

/**
 * The adapter's tensors under PEFT's names and shapes, holding each matrix's value or its gradient
 * (zeros where it has none): a module adapted by parts as one rank k·r LoRA (A stacked, B
 * block-diagonal over the parts' rows), a shared matrix under every key that uses it, and
 * modules_to_save copies under the module's own path (their state, or their parameters' gradients).
 */
async function peftLayout(
  model: Module,
  a: InjectedAdapter,
  what: 'value' | 'grad',
): Promise<PeftAdapterFiles['tensors']> {
  const read = async (p: Parameter): Promise<Float32Array> => {
    const t = what === 'value' ? p.value : p.grad;
    return t ? ((await t.data()) as Float32Array) : new Float32Array(p.value.size);
  };
  const values = new Map<string, Float32Array>();
  for (const [key, p] of a.matrices) values.set(key, await read(p));
  const tensors: PeftAdapterFiles['tensors'] = {};
  const put = (key: string, shape: number[], data: Float32Array) => {
    tensors[PEFT_PREFIX + key] = { dtype: 'F32', shape, data };
  };
  for (const [path, sites] of sitesByModule(a)) {
    const { inFeatures: din, outFeatures: dout } = sites[0].module;
    if (sites[0].part === null) {
      const s = sites[0];
      put(`${path}.lora_A.weight`, [s.r, din], values.get(s.aKey) as Float32Array);
      put(`${path}.lora_B.weight`, [s.outFeatures, s.r], values.get(s.bKey) as Float32Array);
      continue;
    }
    const r = sites[0].r;
    const R = sites.length * r;
    const A = new Float32Array(R * din);
    const B = new Float32Array(dout * R);
    sites.forEach((s, j) => {
      A.set(values.get(s.aKey) as Float32Array, j * r * din);
      const Bj = values.get(s.bKey) as Float32Array;
      for (let i = 0; i < s.outFeatures; i++) {
        B.set(Bj.subarray(i * r, (i + 1) * r), (s.outOffset + i) * R + j * r);
      }
    });
    put(`${path}.lora_A.weight`, [R, din], A);
    put(`${path}.lora_B.weight`, [dout, R], B);
  }
  for (const path of a.savedModules) {
    const copy = (model.getSubmodule(path) as ModulesToSaveWrapper).modules_to_save.get(a.name) as Module;
    if (what === 'grad')
      for (const [k, p] of copy.namedParameters()) put(`${path}.${k}`, [...p.shape], await read(p));
    else
      for (const [k, t] of Object.entries(copy.stateDict()))
        put(`${path}.${k}`, [...t.shape], (await t.data()) as Float32Array);
  }
  return tensors;
}

/**
 * The gradients of adapter `name` (default: the active one) after a backward pass, in the layout
 * {@link exportAdapter} writes the adapter itself: the same keys and shapes, so a gradient file
 * lines up with PEFT's `named_parameters()` of the loaded adapter.
 */
export async function adapterGradients(
  model: Module,
  opts: { name?: string } = {},
): Promise<PeftAdapterFiles['tensors']> {
  return peftLayout(model, getAdapter(model, opts.name), 'grad');
}

const fileError = (file: string, msg: string): AdapterError =>
  new AdapterError('BAD_ADAPTER_FILE', `${file}: ${msg}`);

const set = (v: unknown) => v !== null && v !== undefined;

/** PEFT LoRA options this library does not implement: loading them would silently change the model. */
const UNSUPPORTED: Array<[string, (v: unknown) => boolean, string]> = [
  ['use_dora', (v) => !!v, 'DoRA'],
  ['lora_bias', (v) => !!v, 'LoRA biases'],
  ['layers_to_transform', (v) => v !== null && v !== undefined, 'layers_to_transform'],
  ['layer_replication', (v) => v !== null && v !== undefined, 'layer_replication'],
  ['trainable_token_indices', (v) => v !== null && v !== undefined, 'trainable_token_indices'],
  ['target_parameters', (v) => Array.isArray(v) && v.length > 0, 'target_parameters'],
  [
    'exclude_modules',
    (v) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length),
    'exclude_modules',
  ],
  ['use_qalora', (v) => !!v, 'QALoRA'],
  ['alora_invocation_tokens', set, 'activated LoRA (aLoRA)'],
  ['arrow_config', set, 'Arrow routing'],
  ['use_bdlora', (v) => !!v, 'block-diagonal LoRA'],
  ['monteclora_config', set, 'MonteCLoRA'],
  ['kasa_config', set, 'KaSA'],
];

/** Options of configFromPeft and importAdapter. */
export interface PeftReadOptions {
  /** The weights file's safetensors `__metadata__` (where sharelora records the sharing). */
  metadata?: Readonly<Record<string, string>>;
  /** Told about config keys no PEFT version writes (they are ignored); default: console.warn. */
  onWarning?: (message: string) => void;
}

/** The "sharelora" block: from the weights' metadata, or from adapter_config.json as sharelora wrote it before. */
function shareloraBlockOf(
  j: Record<string, unknown>,
  metadata: Readonly<Record<string, string>> | undefined,
  file: string,
): Record<string, unknown> | undefined {
  const text = metadata?.[SHARELORA_METADATA_KEY];
  let block: unknown = j.sharelora;
  if (text !== undefined) {
    try {
      block = JSON.parse(text);
    } catch (e) {
      throw fileError(file, `the "${SHARELORA_METADATA_KEY}" metadata is not JSON: ${(e as Error).message}`);
    }
  }
  if (
    block !== undefined &&
    (typeof block !== 'object' ||
      block === null ||
      (block as Record<string, unknown>).version !== SHARELORA_FORMAT_VERSION)
  ) {
    throw fileError(
      file,
      `"sharelora" block version ${JSON.stringify((block as Record<string, unknown> | null)?.version)} is not ${SHARELORA_FORMAT_VERSION} (written by a newer sharelora?)`,
    );
  }
  return block as Record<string, unknown> | undefined;
}

/**
 * Our config from a PEFT adapter_config.json, as any PEFT version since 0.6 writes it, or as
 * sharelora writes it. The sharing, fused-part targets, patterns and the base model's identity (if
 * recorded) come from the "sharelora" block (in `opts.metadata`, or an older adapter's config key);
 * without one the adapter is plain LoRA. Keys no PEFT version writes are warned about and ignored;
 * options that would change what the adapter computes and that sharelora lacks are refused.
 * fan_in_fan_out is not taken over: each module's own layout decides (the saved shapes are the same).
 */
export function configFromPeft(
  json: unknown,
  file = 'adapter_config.json',
  opts: PeftReadOptions = {},
): { config: AdapterConfig; fused: Record<string, string[]> | null; baseModel: unknown } {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw fileError(file, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  const unknown = Object.keys(j).filter((k) => k !== 'sharelora' && !PEFT_LORA_CONFIG_KEYS.includes(k));
  if (unknown.length)
    (opts.onWarning ?? ((m: string) => console.warn(`sharelora: warning: ${m}`)))(
      `${file}: ignoring ${unknown.map((k) => JSON.stringify(k)).join(', ')}: no PEFT LoRA config has ${unknown.length > 1 ? 'these keys' : 'this key'}`,
    );
  if (j.peft_type !== 'LORA')
    throw fileError(file, `peft_type is ${JSON.stringify(j.peft_type)}; only "LORA" adapters are supported`);
  for (const [key, used, what] of UNSUPPORTED) {
    if (used(j[key])) throw fileError(file, `${key} = ${JSON.stringify(j[key])}: ${what} is not supported`);
  }
  if (j.bias !== undefined && j.bias !== 'none') {
    throw fileError(
      file,
      `bias = ${JSON.stringify(j.bias)}: only "none" is supported (trained biases are not loaded)`,
    );
  }
  const init = j.init_lora_weights ?? true;
  if (init !== true && init !== false && init !== 'gaussian') {
    throw fileError(
      file,
      `init_lora_weights = ${JSON.stringify(init)}: this initialisation changes the base weights and is not supported`,
    );
  }
  if (j.target_modules === null || j.target_modules === undefined) {
    throw fileError(file, 'target_modules is missing (PEFT infers it from the model type; name the modules)');
  }
  const block = shareloraBlockOf(j, opts.metadata, file);
  const input: AdapterConfigInput = {
    r: j.r as number,
    alpha: j.lora_alpha as number,
    dropout: (j.lora_dropout as number | undefined) ?? 0,
    targetModules: (block?.targetModules ?? j.target_modules) as string[] | string,
    scaling: j.use_rslora ? 'rslora' : 'standard',
    initA: init === 'gaussian' ? 'gaussian' : 'kaiming',
    modulesToSave: (j.modules_to_save as string[] | null) ?? [],
    taskType: (j.task_type as AdapterConfig['taskType']) ?? null,
    rankPattern: (block?.rankPattern ?? j.rank_pattern ?? {}) as Record<string, number>,
    alphaPattern: (block?.alphaPattern ?? j.alpha_pattern ?? {}) as Record<string, number>,
    baseModelNameOrPath: (j.base_model_name_or_path as string | null) ?? null,
    ...(block
      ? {
          sharing: {
            shareA: block.shareA as boolean,
            shareB: block.shareB as boolean,
            group: block.group as AdapterConfig['sharing']['group'],
            layers: (block.layers ?? null) as [number, number] | null,
          },
        }
      : {}),
  };
  try {
    return {
      config: adapterConfig(input),
      fused: (block?.fused as Record<string, string[]>) ?? null,
      baseModel: block?.baseModel,
    };
  } catch (e) {
    throw e instanceof AdapterError ? fileError(file, e.message) : e;
  }
}

/** One file copy of a plan matrix: where it came from and its values. */
interface Copy {
  label: string;
  data: Float32Array;
}

function firstDifference(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < a.length; i++)
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

/**
 * Loads a PEFT-format adapter into `model` as a new adapter (see injectAdapter for activation):
 * builds it from the config, then fills it from `source`. Keys are matched to module paths with or
 * without the model class prefix (model./transformer./roberta./bert.); modulesToSave copies are
 * found as `<path>.<param>` (PEFT's saved form) or `<path>.modules_to_save.<name>.<param>`.
 * Copies of a matrix recorded as shared must be identical: they are re-tied into one Parameter.
 * modules_to_save names that match no module are dropped, as PEFT does (it lists "classifier" and
 * "score" for every sequence-classification adapter). Missing or unexpected keys and shape
 * mismatches are errors naming the keys; on any error the model is left without the new adapter.
 */
export async function importAdapter(
  model: Module,
  json: unknown,
  source: AdapterTensorSource,
  opts: InjectOptions & { file?: string; onWarning?: (message: string) => void } = {},
): Promise<InjectedAdapter> {
  const file = opts.file ?? 'adapter_model.safetensors';
  const parsed = configFromPeft(json, 'adapter_config.json', {
    metadata: source.metadata,
    onWarning: opts.onWarning,
  });
  const { fused, baseModel } = parsed;
  const paths = model.namedModules().map(([path]) => path);
  const config: AdapterConfig = {
    ...parsed.config,
    modulesToSave: parsed.config.modulesToSave.filter((pattern) =>
      paths.some((path) => path && matchesSuffix(pattern, path)),
    ),
  };
  const actual = baseModelIdentityOf(model);
  const difference = actual && baseModelDifference(baseModel, actual);
  if (difference) {
    throw new AdapterError(
      'BASE_MODEL_MISMATCH',
      `${file}: the adapter was trained on another base model${config.baseModelNameOrPath ? ` (${config.baseModelNameOrPath})` : ''}: ${difference}`,
    );
  }
  const adapter = injectAdapter(model, config, { ...opts, fused: fused ?? opts.fused });
  try {
    await fill(model, adapter, source, file);
  } catch (e) {
    deleteAdapter(model, adapter.name);
    throw e;
  }
  return adapter;
}

async function fill(
  model: Module,
  a: InjectedAdapter,
  source: AdapterTensorSource,
  file: string,
): Promise<void> {
  const index = new Map<string, string>();
  for (const k of source.keys()) {
    index.set(k.replace(/^base_model\.model\./, '').replace(/\.modules_to_save\.[^.]+\./, '.'), k);
  }
  const consumed = new Set<string>();
  const missing: string[] = [];
  const mismatched: string[] = [];
  const read = async (path: string, shape: number[]): Promise<{ key: string; data: Float32Array } | null> => {
    const variants = [
      path,
      ...MODEL_PREFIXES.map((p) => (path.startsWith(p) ? path.slice(p.length) : p + path)),
    ];
    const key = variants.map((v) => index.get(v)).find((k) => k !== undefined);
    if (key === undefined) {
      missing.push(PEFT_PREFIX + path);
      return null;
    }
    consumed.add(key);
    const got = source.shape(key);
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      mismatched.push(`${key} is [${got.join(', ')}], the model needs [${shape.join(', ')}]`);
      return null;
    }
    return { key, data: await source.read(key) };
  };

  const copies = new Map<string, Copy[]>();
  const add = (matrixKey: string, c: Copy) => copies.set(matrixKey, [...(copies.get(matrixKey) ?? []), c]);
  for (const [path, sites] of sitesByModule(a)) {
    const { inFeatures: din, outFeatures: dout } = sites[0].module;
    if (sites[0].part === null) {
      const s = sites[0];
      const A = await read(`${path}.lora_A.weight`, [s.r, din]);
      const B = await read(`${path}.lora_B.weight`, [s.outFeatures, s.r]);
      if (A) add(s.aKey, { label: A.key, data: A.data });
      if (B) add(s.bKey, { label: B.key, data: B.data });
      continue;
    }
    const r = sites[0].r;
    const R = sites.length * r;
    const A = await read(`${path}.lora_A.weight`, [R, din]);
    const B = await read(`${path}.lora_B.weight`, [dout, R]);
    if (!A || !B) continue;
    // Rows of B outside every part's own block must be zero, or the file is not a by-parts adapter.
    const own = new Uint8Array(dout * R);
    sites.forEach((s, j) => {
      add(s.aKey, {
        label: `${A.key} rows ${j * r}..${(j + 1) * r - 1}`,
        data: A.data.slice(j * r * din, (j + 1) * r * din),
      });
      const Bj = new Float32Array(s.outFeatures * r);
      for (let i = 0; i < s.outFeatures; i++) {
        const at = (s.outOffset + i) * R + j * r;
        Bj.set(B.data.subarray(at, at + r), i * r);
        own.fill(1, at, at + r);
      }
      add(s.bKey, { label: `${B.key} part ${s.part}`, data: Bj });
    });
    const stray = B.data.findIndex((v, i) => v !== 0 && !own[i]);
    if (stray >= 0) {
      throw fileError(
        file,
        `${B.key} has a nonzero value at [${Math.floor(stray / R)}, ${stray % R}] outside the blocks of parts ` +
          `${sites.map((s) => s.part).join(', ')}: it is not an adapter of those parts`,
      );
    }
  }
  const savedReads: Array<{ target: Tensor; data: Float32Array }> = [];
  for (const path of a.savedModules) {
    const copy = (model.getSubmodule(path) as ModulesToSaveWrapper).modules_to_save.get(a.name) as Module;
    for (const [k, t] of Object.entries(copy.stateDict())) {
      const got = await read(`${path}.${k}`, [...t.shape]);
      if (got) savedReads.push({ target: t, data: got.data });
    }
  }
  const unexpected = source.keys().filter((k) => !consumed.has(k));
  const list = (xs: string[]) =>
    xs.length > 6 ? `${xs.slice(0, 6).join('; ')}; ... (${xs.length} in all)` : xs.join('; ');
  const problems = [
    mismatched.length ? `shape mismatch: ${list(mismatched)}` : '',
    missing.length ? `missing keys: ${list(missing)}` : '',
    unexpected.length ? `unexpected keys (no such adapted module in the model): ${list(unexpected)}` : '',
  ].filter(Boolean);
  if (problems.length) throw fileError(file, problems.join('. '));

  for (const [key, cs] of copies) {
    const g = a.plan.matrices.get(key);
    for (const c of cs.slice(1)) {
      const at = firstDifference(cs[0].data, c.data);
      if (at >= 0) {
        throw new AdapterError(
          'SHARED_COPIES_DIFFER',
          `${file}: ${cs[0].label} and ${c.label} should hold the same shared ${g?.kind} (shared over ${g?.sharedOver}) ` +
            `but differ at element ${at} (${cs[0].data[at]} vs ${c.data[at]}); refusing to re-tie them. ` +
            'Remove the "sharelora" metadata of adapter_model.safetensors (or the "sharelora" key of an older ' +
            "adapter's adapter_config.json) to load the copies as plain per-layer LoRA.",
        );
      }
    }
    const p = a.matrices.get(key);
    if (p) assignTensor(p.value, { data: cs[0].data, shape: p.shape }, cs[0].label);
  }
  for (const { target, data } of savedReads) assignTensor(target, { data, shape: target.shape });
}
