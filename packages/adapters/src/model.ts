import {
  defaultRng,
  kaimingUniform,
  Linear,
  type Module,
  Parameter,
  Rng,
  randn,
  type Tensor,
  zeros,
} from '@sharelora/core';
import { type AdapterConfig, type AdapterConfigInput, adapterConfig } from './config.js';
import { AdapterError } from './errors.js';
import { type LoraBranch, LoraLinear, ModulesToSaveWrapper } from './layers.js';
import { type AdapterPlan, type MatrixGroup, planAdapter } from './plan.js';
import { type LinearModuleInfo, matchesSuffix, parseModuleName } from './targets.js';

/**
 * Fused projections by module-name suffix and their parts in output order. GPT-2's attention packs
 * q|k|v into one Conv1D named c_attn; pass `fused` to injectAdapter for other models.
 */
export const DEFAULT_FUSED: Readonly<Record<string, string[]>> = { c_attn: ['q', 'k', 'v'] };

/** An adapter as injected into a model. */
export interface InjectedAdapter {
  name: string;
  config: AdapterConfig;
  plan: AdapterPlan;
  /** The fused-projection table the plan was made with (saved with the adapter). */
  fused: Record<string, string[]>;
  /** One Parameter per distinct matrix, by plan key: a shared matrix is one Parameter used by many layers. */
  matrices: Map<string, Parameter>;
  /** Paths of the modules whose full copies this adapter trains (modulesToSave). */
  savedModules: string[];
}

interface ModelAdapters {
  adapters: Map<string, InjectedAdapter>;
  active: string | null;
}

const STATE = new WeakMap<Module, ModelAdapters>();

function stateOf(model: Module): ModelAdapters {
  const s = STATE.get(model);
  if (!s)
    throw new AdapterError(
      'ADAPTER_STATE',
      'this model has no adapters (call injectAdapter or loadAdapter first)',
    );
  return s;
}

function adapterOf(model: Module, name: string): InjectedAdapter {
  const a = stateOf(model).adapters.get(name);
  if (!a) {
    throw new AdapterError(
      'ADAPTER_STATE',
      `no adapter "${name}" on this model (adapters: ${[...stateOf(model).adapters.keys()].join(', ')})`,
    );
  }
  return a;
}

/** Modules of the tree that adapters touch, skipping the insides of wrappers (base layers, saved copies). */
function walk(model: Module): Array<[string, Module]> {
  const out: Array<[string, Module]> = [];
  let skip: string | null = null;
  for (const [name, m] of model.namedModules()) {
    if (skip !== null && name.startsWith(skip)) continue;
    skip = null;
    out.push([name, m]);
    if (m instanceof LoraLinear || m instanceof ModulesToSaveWrapper) skip = `${name}.`;
  }
  return out;
}

/**
 * The model's linear modules (core Linear, or an already wrapped one) as LinearModuleInfo. A module
 * type is the path after the layer index; when two stacks (e.g. encoder and decoder) would give the
 * same type, the text before the index is kept to tell them apart.
 */
export function linearModules(
  model: Module,
  fused: Readonly<Record<string, string[]>> = DEFAULT_FUSED,
): Array<LinearModuleInfo & { layout: 'out_in' | 'in_out' }> {
  const found = walk(model).filter(([, m]) => m instanceof Linear || m instanceof LoraLinear) as Array<
    [string, Linear | LoraLinear]
  >;
  const prefixes = new Map<string, Set<string>>();
  const parsed = found.map(([name]) => {
    const p = parseModuleName(name);
    prefixes.set(p.moduleType, (prefixes.get(p.moduleType) ?? new Set()).add(p.prefix));
    return p;
  });
  return found.map(([name, m], i) => {
    const { layer, moduleType, prefix } = parsed[i];
    const parts = Object.entries(fused).find(([suffix]) => matchesSuffix(suffix, name))?.[1];
    return {
      name,
      layer,
      moduleType: (prefixes.get(moduleType)?.size ?? 0) > 1 ? `${prefix}.*.${moduleType}` : moduleType,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      layout: m.layout,
      ...(parts ? { fused: { parts: [...parts] } } : {}),
    };
  });
}

function initMatrix(g: MatrixGroup, config: AdapterConfig, rng: Rng): Tensor {
  if (g.kind === 'B') return zeros(g.shape, 'f32', 'trainable');
  return config.initA === 'gaussian'
    ? randn(g.shape, { rng, std: 1 / g.shape[0], category: 'trainable' })
    : kaimingUniform(g.shape, rng, Math.sqrt(5), { category: 'trainable' });
}

/** How injectAdapter names the adapter, seeds it and recognises fused projections. */
export interface InjectOptions {
  /** Adapter name (default "default", as PEFT). */
  name?: string;
  /** Generator or seed for A's initialisation and the dropout masks (default: core's process-wide generator). */
  rng?: Rng | number;
  /** Fused projections by name suffix → parts (default DEFAULT_FUSED: GPT-2's c_attn = q|k|v). */
  fused?: Record<string, string[]>;
}

/**
 * Adds a LoRA/ShareLoRA adapter to any core Module tree, by module names (like PEFT): each targeted
 * Linear is replaced (setSubmodule) by a LoraLinear wrapper, every base parameter is frozen, and the
 * adapter's matrices are created once per plan matrix, so a shared A or B is one Parameter referenced
 * by all the layers it serves: autograd sums their gradients into it and AdamW keeps one state.
 * The first adapter of a model becomes active (trainable); later ones are added inactive and frozen
 * until setActiveAdapter(), as in PEFT.
 */
export function injectAdapter(
  model: Module,
  config: AdapterConfigInput,
  opts: InjectOptions = {},
): InjectedAdapter {
  const cfg = adapterConfig(config);
  const name = opts.name ?? 'default';
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    throw new AdapterError('ADAPTER_STATE', `adapter name "${name}": use letters, digits, "_" and "-" only`);
  }
  const state = STATE.get(model) ?? { adapters: new Map<string, InjectedAdapter>(), active: null };
  if (state.adapters.has(name))
    throw new AdapterError('ADAPTER_STATE', `the model already has an adapter "${name}"`);
  const fused = { ...(opts.fused ?? DEFAULT_FUSED) };
  const infos = linearModules(model, fused);
  const plan = planAdapter(infos, cfg);
  const layoutOf = new Map(infos.map((m) => [m.name, m.layout]));
  if (cfg.fanInFanOut !== null) {
    const wrong = plan.sites.find((s) => (layoutOf.get(s.module.name) === 'in_out') !== cfg.fanInFanOut);
    if (wrong) {
      throw new AdapterError(
        'BAD_ADAPTER_CONFIG',
        `adapter config: fanInFanOut is ${cfg.fanInFanOut} but ${wrong.module.name} stores its weight ` +
          `${layoutOf.get(wrong.module.name) === 'in_out' ? '[in, out] (Conv1D)' : '[out, in]'}; leave fanInFanOut unset to follow each module`,
      );
    }
  }
  const targeted = new Set(plan.sites.map((s) => s.module.name));
  const savedTargets = cfg.modulesToSave.map((pattern) => {
    const hits = walk(model).filter(
      ([path, m]) => path && !(m instanceof LoraLinear) && matchesSuffix(pattern, path),
    );
    if (!hits.length) throw new AdapterError('NO_TARGET', `modulesToSave "${pattern}" matched no module`);
    for (const [path, m] of hits) {
      const inner = m
        .namedModules()
        .find(([p, x]) => x instanceof LoraLinear || targeted.has(p ? `${path}.${p}` : path));
      if (inner) {
        throw new AdapterError(
          'NO_TARGET',
          `modulesToSave "${pattern}": ${path} contains the LoRA target ${inner[0] ? `${path}.${inner[0]}` : path}; a module is either trained in full or adapted`,
        );
      }
    }
    return hits;
  });
  const rng =
    opts.rng === undefined ? defaultRng() : typeof opts.rng === 'number' ? new Rng(opts.rng) : opts.rng;
  const isActive = state.active === null;
  const matrices = new Map<string, Parameter>();
  for (const g of plan.matrices.values()) {
    matrices.set(
      g.key,
      new Parameter(initMatrix(g, cfg, rng.fork(`${name}/${g.key}`)), { trainable: isActive }),
    );
  }
  const byModule = new Map<string, typeof plan.sites>();
  for (const s of plan.sites) byModule.set(s.module.name, [...(byModule.get(s.module.name) ?? []), s]);
  for (const [path, sites] of byModule) {
    const current = model.getSubmodule(path);
    const wrapper = current instanceof LoraLinear ? current : new LoraLinear(current as Linear);
    if (wrapper !== current) model.setSubmodule(path, wrapper);
    const branches: LoraBranch[] = sites.map((s) => ({
      part: s.part,
      A: matrices.get(s.aKey) as Parameter,
      B: matrices.get(s.bKey) as Parameter,
    }));
    const parts = sites[0].part === null ? null : (sites[0].module.fused?.parts ?? null);
    wrapper.addAdapter(
      name,
      { branches, scaling: sites[0].scaling, parts },
      { p: cfg.dropout, seed: rng.fork(`${name}/dropout/${path}`).nextU32() },
    );
  }
  const savedModules: string[] = [];
  for (const [path, m] of savedTargets.flat()) {
    const wrapper = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m);
    if (wrapper !== m) model.setSubmodule(path, wrapper);
    for (const p of wrapper.addAdapter(name).parameters()) p.trainable = isActive;
    savedModules.push(path);
  }
  const adapter: InjectedAdapter = { name, config: cfg, plan, fused, matrices, savedModules };
  state.adapters.set(name, adapter);
  STATE.set(model, state);
  const own = new Set([...state.adapters.keys()].flatMap((n) => adapterParameters(model, n)));
  for (const p of model.parameters()) if (!own.has(p)) p.trainable = false;
  if (isActive) setActiveAdapter(model, name);
  return adapter;
}

/** The Parameters of one adapter: its distinct matrices and its copies of modulesToSave. */
export function adapterParameters(model: Module, name: string): Parameter[] {
  const a = adapterOf(model, name);
  const copies = a.savedModules.flatMap((path) => {
    const w = model.getSubmodule(path) as ModulesToSaveWrapper;
    return w.modules_to_save.get(name)?.parameters() ?? [];
  });
  return [...a.matrices.values(), ...copies];
}

function wrappers(model: Module): Array<LoraLinear | ModulesToSaveWrapper> {
  return walk(model)
    .map(([, m]) => m)
    .filter(
      (m): m is LoraLinear | ModulesToSaveWrapper =>
        m instanceof LoraLinear || m instanceof ModulesToSaveWrapper,
    );
}

function mergedAdapters(model: Module): string[] {
  const out = new Set<string>();
  for (const w of wrappers(model)) {
    if (w instanceof LoraLinear) for (const n of w.adapters()) if (w.isMerged(n)) out.add(n);
  }
  return [...out];
}

/** Makes `name` the adapter every wrapper uses; only its parameters are trainable afterwards. */
export function setActiveAdapter(model: Module, name: string): void {
  const state = stateOf(model);
  adapterOf(model, name);
  const merged = mergedAdapters(model).filter((n) => n !== name);
  if (merged.length) {
    throw new AdapterError(
      'ADAPTER_STATE',
      `adapter "${merged[0]}" is merged into the weights; unmergeAdapter() first`,
    );
  }
  for (const w of wrappers(model)) w.setActive(name);
  for (const n of state.adapters.keys())
    for (const p of adapterParameters(model, n)) p.trainable = n === name;
  state.active = name;
}

/** One adapter of a model, as listAdapters reports it. */
export interface AdapterInfo {
  name: string;
  config: AdapterConfig;
  active: boolean;
  merged: boolean;
}

/** The model's adapters in the order they were added. */
export function listAdapters(model: Module): AdapterInfo[] {
  const s = STATE.get(model);
  if (!s) return [];
  const merged = new Set(mergedAdapters(model));
  return [...s.adapters.values()].map((a) => ({
    name: a.name,
    config: a.config,
    active: s.active === a.name,
    merged: merged.has(a.name),
  }));
}

/** The adapter record (config, plan, matrices) of `name`, default the active one. */
export function getAdapter(model: Module, name?: string): InjectedAdapter {
  const n = name ?? stateOf(model).active;
  if (n === null) throw new AdapterError('ADAPTER_STATE', 'the model has no active adapter');
  return adapterOf(model, n);
}

/**
 * Runs `fn` with every adapter switched off, so the model computes its base forward; restores them
 * afterwards (also when `fn` throws, and after a returned promise settles).
 */
export function disableAdapters<T>(model: Module, fn: () => T): T {
  stateOf(model);
  const merged = mergedAdapters(model);
  if (merged.length) {
    throw new AdapterError(
      'ADAPTER_STATE',
      `adapter "${merged[0]}" is merged into the weights, so the base forward is not available; unmergeAdapter() first`,
    );
  }
  const ws = wrappers(model);
  const set = (on: boolean) => {
    for (const w of ws) w.setDisabled(on);
  };
  set(true);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    set(false);
    throw e;
  }
  if (result instanceof Promise) return result.finally(() => set(false)) as T;
  set(false);
  return result;
}

function loraWrappers(model: Module, name: string): LoraLinear[] {
  return wrappers(model).filter(
    (w): w is LoraLinear => w instanceof LoraLinear && w.adapters().includes(name),
  );
}

/**
 * W ← W + s·B A in every layer of the active adapter (respecting layouts and fused parts); the forward
 * then skips it. Half-precision base weights stay half: W ← half(W + s·B A) (see LoraLinear.merge).
 */
export function mergeAdapter(model: Module): void {
  const name = getAdapter(model).name;
  const wrappers = loraWrappers(model, name);
  // All or nothing: a model is never left with some layers merged.
  for (const w of wrappers) w.checkMergeable();
  for (const w of wrappers) w.merge(name);
}

/** Undoes mergeAdapter(): W ← W − s·B A (exact up to float32 rounding, or the half rounding of a half W). */
export function unmergeAdapter(model: Module): void {
  const name = getAdapter(model).name;
  for (const w of loraWrappers(model, name)) w.unmerge(name);
}

/**
 * Merges the active adapter into the base weights and removes every adapter: wrapped layers are
 * put back as plain Linear modules, modulesToSave wrappers are replaced by the active adapter's
 * trained copy, and all adapter tensors are freed. The model is then an ordinary model again.
 */
export function mergeAndUnload(model: Module): void {
  const state = stateOf(model);
  const active = state.active;
  if (active !== null && !mergedAdapters(model).includes(active)) mergeAdapter(model);
  const free = new Set([...state.adapters.keys()].flatMap((n) => adapterParameters(model, n)));
  for (const [path, m] of walk(model)) {
    if (m instanceof LoraLinear) model.setSubmodule(path, m.base_layer);
    else if (m instanceof ModulesToSaveWrapper) {
      const keep = active === null ? m.original_module : (m.modules_to_save.get(active) ?? m.original_module);
      for (const p of keep.parameters()) free.delete(p);
      if (keep !== m.original_module) m.original_module.dispose();
      model.setSubmodule(path, keep);
    }
  }
  for (const p of free) p.dispose();
  STATE.delete(model);
}

/**
 * Removes one adapter: its branches leave every wrapper (a wrapper left without adapters is replaced
 * by its base layer again), its modulesToSave copies go, and its tensors are freed. If it was
 * active, the first remaining adapter becomes active.
 */
export function deleteAdapter(model: Module, name: string): void {
  const state = stateOf(model);
  const params = adapterParameters(model, name);
  for (const [path, m] of walk(model)) {
    if (m instanceof LoraLinear && m.adapters().includes(name)) {
      m.removeAdapter(name);
      if (!m.adapters().length) model.setSubmodule(path, m.base_layer);
    } else if (m instanceof ModulesToSaveWrapper && m.modules_to_save.get(name)) {
      m.modules_to_save.delete(name);
      if (!m.modules_to_save.keys().length) model.setSubmodule(path, m.original_module);
    }
  }
  for (const p of params) p.dispose();
  state.adapters.delete(name);
  if (!state.adapters.size) STATE.delete(model);
  else if (state.active === name) {
    state.active = null;
    setActiveAdapter(model, state.adapters.keys().next().value as string);
  }
}

/** Distinct trainable parameters of the model (a shared matrix once): what to give the optimizer. */
export function trainableParameters(model: Module): Parameter[] {
  return model.parameters({ trainableOnly: true });
}
