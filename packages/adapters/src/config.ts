import { AdapterError } from './errors.js';

/**
 * Over what a shared matrix is shared. 'module': one matrix per module type across layers (the
 * paper: every layer's q_proj uses one A). 'qkv': like 'module', and the q, k and v projections of
 * an attention block share one matrix too (the self-attention variant); other module types keep
 * one matrix per type.
 */
export type SharingGroup = 'module' | 'qkv';

export interface SharingSpec {
  shareA: boolean;
  shareB: boolean;
  group: SharingGroup;
  /** Only layers in [start, end) share; the others get ordinary per-layer matrices. null: all layers. */
  layers: [number, number] | null;
}

export const TASK_TYPES = [
  'CAUSAL_LM',
  'SEQ_CLS',
  'SEQ_2_SEQ_LM',
  'TOKEN_CLS',
  'QUESTION_ANS',
  'FEATURE_EXTRACTION',
] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** A validated adapter config with every default filled in. */
export interface AdapterConfig {
  /** Rank of the update. */
  r: number;
  alpha: number;
  /** Dropout probability applied to the adapter's input (training mode only). */
  dropout: number;
  /**
   * Which linear modules get an adapter. A list: names matched as dotted suffixes of the module path
   * ("q_proj", "attention.self.query"), where `*` stands for any one path component
   * ("layer.*.output.dense") and a fused projection may be restricted to some of its parts
   * ("c_attn[q,v]"). A single string: a regular expression the full module path must match (PEFT).
   */
  targetModules: string[] | string;
  /** 'standard': alpha/r; 'rslora': alpha/√r (rank-stabilised LoRA). */
  scaling: 'standard' | 'rslora';
  /** 'kaiming': kaiming-uniform with a=√5, i.e. U(±1/√in); 'gaussian': normal with std 1/r. B starts at zero. */
  initA: 'kaiming' | 'gaussian';
  /** Only 'none': biases stay frozen and are not saved with the adapter. */
  bias: 'none';
  /**
   * PEFT's fan_in_fan_out: whether the targeted weights are stored [in, out] (GPT-2's Conv1D). null
   * (default): taken from each module's layout; set explicitly, it must agree with the modules.
   */
  fanInFanOut: boolean | null;
  /** Modules (suffix names) trained in full alongside the adapter, e.g. a classifier head. */
  modulesToSave: string[];
  taskType: TaskType | null;
  /** Per-module rank overrides: PEFT's rank_pattern (key: regex matched against the end of the module path). */
  rankPattern: Record<string, number>;
  /** Per-module alpha overrides: PEFT's alpha_pattern. */
  alphaPattern: Record<string, number>;
  sharing: SharingSpec;
  baseModelNameOrPath: string | null;
}

/** What users pass: everything optional except targetModules; sharing may be partial. */
export type AdapterConfigInput = Partial<Omit<AdapterConfig, 'sharing'>> & {
  targetModules: string[] | string;
  sharing?: Partial<SharingSpec>;
};

/** The named methods: plain LoRA and the ShareLoRA variants. */
export const METHODS = ['lora', 'share-a', 'share-b', 'share-ab', 'share-qkv'] as const;
export type Method = (typeof METHODS)[number];

/**
 * Sharing of each method. share-qkv shares A across all layers AND across the q, k and v
 * projections (one A per attention block type for the whole model), with B per layer and per
 * projection: A only needs equal input sizes, which q/k/v always have, so it also works under
 * grouped-query attention. Other targeted modules (o, MLP) share A per module type.
 */
export const PRESETS: Readonly<Record<Method, Omit<SharingSpec, 'layers'>>> = {
  lora: { shareA: false, shareB: false, group: 'module' },
  'share-a': { shareA: true, shareB: false, group: 'module' },
  'share-b': { shareA: false, shareB: true, group: 'module' },
  'share-ab': { shareA: true, shareB: true, group: 'module' },
  'share-qkv': { shareA: true, shareB: false, group: 'qkv' },
};

/**
 * The setting the ShareLoRA paper recommends, used by the CLI when no method, rank or alpha is given:
 * ShareA (A shared per module type, B per layer), rank 8, alpha 16.
 */
export const RECOMMENDED: Readonly<{ method: Method; r: number; alpha: number }> = {
  method: 'share-a',
  r: 8,
  alpha: 16,
};

const DEFAULTS: Omit<AdapterConfig, 'targetModules'> = {
  r: 8,
  alpha: 8,
  dropout: 0,
  scaling: 'standard',
  initA: 'kaiming',
  bias: 'none',
  fanInFanOut: null,
  modulesToSave: [],
  taskType: null,
  rankPattern: {},
  alphaPattern: {},
  sharing: { shareA: false, shareB: false, group: 'module', layers: null },
  baseModelNameOrPath: null,
};

type Check = (v: unknown, key: string) => unknown;

const bad = (key: string, want: string, v: unknown): AdapterError =>
  new AdapterError('BAD_ADAPTER_CONFIG', `adapter config: ${key} must be ${want}, got ${JSON.stringify(v)}`);

const positiveInt: Check = (v, k) => {
  if (!Number.isInteger(v) || (v as number) < 1) throw bad(k, 'a positive integer', v);
  return v;
};
const positiveNumber: Check = (v, k) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(k, 'a positive number', v);
  return v;
};
const oneOf =
  (values: readonly unknown[]): Check =>
  (v, k) => {
    if (!values.includes(v)) throw bad(k, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
    return v;
  };
const boolean: Check = (v, k) => {
  if (typeof v !== 'boolean') throw bad(k, 'true or false', v);
  return v;
};
const stringList: Check = (v, k) => {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === ''))
    throw bad(k, 'a list of non-empty strings', v);
  return [...v];
};
const numberRecord =
  (item: Check): Check =>
  (v, k) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(k, 'an object of numbers', v);
    return Object.fromEntries(Object.entries(v).map(([p, x]) => [p, item(x, `${k}["${p}"]`)]));
  };

const SHARING_CHECKS: Record<keyof SharingSpec, Check> = {
  shareA: boolean,
  shareB: boolean,
  group: oneOf(['module', 'qkv']),
  layers: (v, k) => {
    if (v === null) return null;
    if (
      !Array.isArray(v) ||
      v.length !== 2 ||
      !v.every((x) => Number.isInteger(x) && x >= 0) ||
      v[0] >= v[1]
    ) {
      throw bad(k, 'null or [start, end) with 0 <= start < end', v);
    }
    return [v[0], v[1]];
  },
};

const CHECKS: Record<keyof AdapterConfig, Check> = {
  r: positiveInt,
  alpha: positiveNumber,
  dropout: (v, k) => {
    if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw bad(k, 'a number in [0, 1)', v);
    return v;
  },
  targetModules: (v, k) => {
    if (typeof v === 'string') {
      try {
        new RegExp(v);
      } catch (e) {
        throw bad(k, `a valid regular expression (${(e as Error).message})`, v);
      }
      return v;
    }
    const list = stringList(v, k) as string[];
    if (list.length === 0) throw bad(k, 'a non-empty list of module names or a regular expression', v);
    return list;
  },
  scaling: oneOf(['standard', 'rslora']),
  initA: oneOf(['kaiming', 'gaussian']),
  bias: oneOf(['none']),
  fanInFanOut: oneOf([null, true, false]),
  modulesToSave: stringList,
  taskType: oneOf([null, ...TASK_TYPES]),
  rankPattern: numberRecord(positiveInt),
  alphaPattern: numberRecord(positiveNumber),
  sharing: (v, k) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(k, 'an object', v);
    return checkKeys(v as Record<string, unknown>, SHARING_CHECKS, DEFAULTS.sharing, 'sharing.');
  },
  baseModelNameOrPath: (v, k) => {
    if (v !== null && typeof v !== 'string') throw bad(k, 'a string or null', v);
    return v;
  },
};

/** A close allowed key for an unknown one: PEFT's snake_case names and lora_ prefixes are common slips. */
function suggest(key: string, allowed: string[]): string {
  const norm = (s: string) => s.toLowerCase().replace(/_/g, '').replace(/^lora/, '');
  const hit = allowed.find((a) => norm(a) === norm(key));
  return hit ? ` (did you mean "${hit}"?)` : '';
}

function checkKeys<T extends object>(
  input: Record<string, unknown>,
  checks: Record<string, Check>,
  defaults: T,
  prefix: string,
): T {
  const allowed = Object.keys(checks);
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [k, v] of Object.entries(input)) {
    if (!(k in checks)) {
      throw new AdapterError(
        'BAD_ADAPTER_CONFIG',
        `adapter config: unknown key "${prefix}${k}"${suggest(k, allowed)}; allowed: ${allowed.join(', ')}`,
      );
    }
    if (v !== undefined) out[k] = checks[k](v, prefix + k);
  }
  return out as T;
}

/** Validates a config (unknown keys and bad values are errors naming the key) and fills in defaults. */
export function adapterConfig(input: AdapterConfigInput): AdapterConfig {
  if (!input || typeof input !== 'object') throw bad('config', 'an object', input);
  if (input.targetModules === undefined) {
    throw new AdapterError(
      'BAD_ADAPTER_CONFIG',
      'adapter config: targetModules is required (e.g. ["q_proj", "v_proj"], or a model\'s default targets)',
    );
  }
  const cfg = checkKeys(input as Record<string, unknown>, CHECKS, DEFAULTS as AdapterConfig, '');
  const { layers } = cfg.sharing;
  if (layers && !cfg.sharing.shareA && !cfg.sharing.shareB) {
    throw bad('sharing.layers', 'null when nothing is shared (shareA and shareB are false)', layers);
  }
  return cfg;
}

/** A config for one of the named methods; `overrides.sharing.layers` may restrict its sharing to a layer range. */
export function presetConfig(method: Method, overrides: AdapterConfigInput): AdapterConfig {
  const sharing = PRESETS[method];
  if (!sharing) throw bad('method', `one of ${METHODS.join(', ')}`, method);
  const { sharing: extra, ...rest } = overrides;
  const clash = Object.keys(extra ?? {}).filter((k) => k !== 'layers');
  if (clash.length) {
    throw bad(
      `sharing.${clash[0]}`,
      `left out: method "${method}" sets it (only sharing.layers may be given)`,
      extra,
    );
  }
  return adapterConfig({ ...rest, sharing: { ...sharing, layers: extra?.layers ?? null } });
}

/** The named method a sharing spec corresponds to, or null for a custom combination. */
export function methodOf(sharing: SharingSpec): Method | null {
  const hit = METHODS.find((m) => {
    const p = PRESETS[m];
    return p.shareA === sharing.shareA && p.shareB === sharing.shareB && p.group === sharing.group;
  });
  // Without sharing the group does not matter: it is plain LoRA.
  return hit ?? (!sharing.shareA && !sharing.shareB ? 'lora' : null);
}

/** The factor s in W x + s·B A x: alpha/r, or alpha/√r with rsLoRA. */
export function scalingFactor(alpha: number, r: number, kind: AdapterConfig['scaling']): number {
  return kind === 'rslora' ? alpha / Math.sqrt(r) : alpha / r;
}
