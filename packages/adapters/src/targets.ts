import { AdapterError } from './errors.js';

/**
 * A linear module as the adapters see it: enough to plan an adapter and count its parameters without
 * any weights. `@sharelora/models` derives the same structure from a config.json (structurally
 * identical type, so neither package imports the other).
 */
export interface LinearModuleInfo {
  /** Dotted module path, e.g. "model.layers.3.self_attn.q_proj". */
  name: string;
  /** Layer index parsed from the path, null for modules outside the layer stack. */
  layer: number | null;
  /** The path with the layer index (and what precedes it) removed, e.g. "self_attn.q_proj". */
  moduleType: string;
  inFeatures: number;
  outFeatures: number;
  /** A fused projection whose output is the concatenation of equal parts, e.g. GPT-2's c_attn: q|k|v. */
  fused?: { parts: string[] };
}

/**
 * Layer index, module type and the path before the index of a dotted module path: the first
 * all-digit component is the layer index ("model.layers.3.self_attn.q_proj" → 3,
 * "self_attn.q_proj", "model.layers"). A path without one is its own type, outside any layer.
 */
export function parseModuleName(name: string): { layer: number | null; moduleType: string; prefix: string } {
  const parts = name.split('.');
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  if (i < 0) return { layer: null, moduleType: name, prefix: '' };
  const prefix = parts.slice(0, i).join('.');
  // A list of bare Linear modules ("layers.3") is one type, written "layers.*".
  return { layer: Number(parts[i]), moduleType: parts.slice(i + 1).join('.') || `${prefix}.*`, prefix };
}

/** Whether `pattern` (dotted, `*` = any one component) matches the trailing components of `name`. */
export function matchesSuffix(pattern: string, name: string): boolean {
  const p = pattern.split('.');
  const n = name.split('.');
  if (p.length > n.length) return false;
  const off = n.length - p.length;
  return p.every((c, i) => c === '*' || c === n[off + i]);
}

/** PEFT's rank_pattern/alpha_pattern lookup: the first key that, as a regex, matches the end of the path. */
export function patternValue(pattern: Record<string, number>, name: string): number | undefined {
  for (const [key, value] of Object.entries(pattern)) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(name)) return value;
  }
  return undefined;
}

interface TargetEntry {
  text: string;
  pattern: string;
  parts: string[] | null;
}

function parseEntry(text: string): TargetEntry {
  const m = /^([^[\]]+?)(?:\[([^[\]]*)\])?$/.exec(text.trim());
  if (!m) {
    throw new AdapterError(
      'BAD_ADAPTER_CONFIG',
      `target "${text}": expected a module name, optionally with parts, e.g. "q_proj" or "c_attn[q,v]"`,
    );
  }
  if (m[2] === undefined) return { text, pattern: m[1], parts: null };
  const parts = m[2].split(',').map((s) => s.trim());
  if (parts.some((p) => !p) || new Set(parts).size !== parts.length) {
    throw new AdapterError('BAD_ADAPTER_CONFIG', `target "${text}": list each part once, e.g. "c_attn[q,v]"`);
  }
  return { text, pattern: m[1], parts };
}

/** A targeted module and which of its fused parts are adapted (null: the whole output). */
export interface TargetSelection {
  module: LinearModuleInfo;
  parts: string[] | null;
}

const typesOf = (modules: readonly LinearModuleInfo[]): string =>
  [...new Set(modules.map((m) => m.moduleType))].join(', ');

/**
 * Resolves config.targetModules against the model's linear modules. Every list entry must match at
 * least one module (a typo is an error, not a silently smaller adapter); part lists of the same
 * module are merged; targeting a module both whole and by parts is an error.
 */
export function selectTargets(
  modules: readonly LinearModuleInfo[],
  targets: readonly string[] | string,
): TargetSelection[] {
  if (typeof targets === 'string') {
    const re = new RegExp(`^(?:${targets})$`);
    const hits = modules.filter((m) => re.test(m.name)).map((module) => ({ module, parts: null }));
    if (!hits.length) {
      throw new AdapterError(
        'NO_TARGET',
        `target regex "${targets}" matched no linear module (module types: ${typesOf(modules)})`,
      );
    }
    return hits;
  }
  const chosen = new Map<LinearModuleInfo, Set<string> | null>();
  for (const entry of targets.map(parseEntry)) {
    const hits = modules.filter((m) => matchesSuffix(entry.pattern, m.name));
    if (!hits.length) {
      throw new AdapterError(
        'NO_TARGET',
        `target "${entry.text}" matched no linear module (module types: ${typesOf(modules)})`,
      );
    }
    for (const m of hits) {
      if (entry.parts) {
        const have = m.fused?.parts;
        if (!have) {
          throw new AdapterError(
            'NO_TARGET',
            `target "${entry.text}": ${m.name} is not a fused projection, so it has no parts to select`,
          );
        }
        const unknown = entry.parts.filter((p) => !have.includes(p));
        if (unknown.length) {
          throw new AdapterError(
            'NO_TARGET',
            `target "${entry.text}": ${m.name} has parts ${have.join(', ')}, not ${unknown.join(', ')}`,
          );
        }
      }
      const prev = chosen.get(m);
      if (prev === undefined) chosen.set(m, entry.parts ? new Set(entry.parts) : null);
      else if ((prev === null) !== (entry.parts === null)) {
        throw new AdapterError(
          'NO_TARGET',
          `${m.name} is targeted both whole and by parts (target "${entry.text}"); choose one`,
        );
      } else if (prev && entry.parts) for (const p of entry.parts) prev.add(p);
    }
  }
  return modules
    .filter((m) => chosen.has(m))
    .map((module) => {
      const parts = chosen.get(module);
      return { module, parts: parts ? (module.fused?.parts.filter((p) => parts.has(p)) ?? null) : null };
    });
}

/**
 * Short target names and the module patterns they stand for, across the naming conventions of
 * GPT-2 (fused `c_attn` = q|k|v), RoBERTa/BERT and LLaMA-family checkpoints. A name resolves to the
 * patterns that match the model at hand, so one word means the same projections in every command.
 * `all` (every linear module inside the layers) is resolved separately.
 */
export const TARGET_ALIASES: Readonly<Record<string, readonly string[]>> = {
  q: ['self_attn.q_proj', 'attention.self.query', 'attn.c_attn[q]'],
  k: ['self_attn.k_proj', 'attention.self.key', 'attn.c_attn[k]'],
  v: ['self_attn.v_proj', 'attention.self.value', 'attn.c_attn[v]'],
  o: ['self_attn.o_proj', 'attention.output.dense', 'attn.c_proj'],
  qkv: ['attn.c_attn'],
  fc1: ['intermediate.dense', 'mlp.c_fc'],
  // "output.dense" alone would also match RoBERTa's attention.output.dense.
  fc2: ['layer.*.output.dense', 'mlp.c_proj'],
  gate: ['mlp.gate_proj'],
  up: ['mlp.up_proj'],
  down: ['mlp.down_proj'],
};

/** The targets used when none are given: the q and v projections, as in the LoRA and ShareLoRA papers. */
export const DEFAULT_TARGETS: readonly string[] = ['q', 'v'];

/** Whether a target entry (a pattern, optionally with fused parts) selects at least one of `modules`. */
function selectsAny(modules: readonly LinearModuleInfo[], entry: TargetEntry): boolean {
  return modules.some(
    (m) =>
      matchesSuffix(entry.pattern, m.name) &&
      (!entry.parts || entry.parts.every((p) => m.fused?.parts.includes(p))),
  );
}

/** The short names (TARGET_ALIASES and `all`) that select something in `modules`. */
export function targetAliasesOf(modules: readonly LinearModuleInfo[]): string[] {
  const names = Object.entries(TARGET_ALIASES)
    .filter(([, patterns]) => patterns.some((p) => selectsAny(modules, parseEntry(p))))
    .map(([name]) => name);
  return [...names, 'all'];
}

/**
 * Replaces short names (q, k, v, o, qkv, fc1, fc2, gate, up, down, all; see TARGET_ALIASES) by the
 * patterns that select those projections in `modules`, merges the parts of one fused projection
 * ("attn.c_attn[q]" and "[v]" become "attn.c_attn[q,v]"), and passes other entries through for
 * selectTargets to check. No entries means DEFAULT_TARGETS. A short name that selects nothing in
 * this model is an AdapterError (NO_TARGET) listing the names that do.
 */
export function resolveTargets(
  modules: readonly LinearModuleInfo[],
  targets: readonly string[] = DEFAULT_TARGETS,
): string[] {
  // Insertion-ordered; a fused projection targeted by parts is kept apart from the same one whole,
  // so that selectTargets reports the conflict.
  const out = new Map<string, { pattern: string; parts: string[] | null }>();
  const add = (text: string) => {
    const { pattern, parts } = parseEntry(text);
    const key = parts ? `${pattern}[]` : pattern;
    const have = out.get(key);
    if (!have) out.set(key, { pattern, parts: parts && [...parts] });
    else if (have.parts && parts) for (const p of parts) if (!have.parts.includes(p)) have.parts.push(p);
  };
  for (const word of targets.length ? targets : DEFAULT_TARGETS) {
    if (word === 'all') {
      for (const m of modules) if (m.layer !== null) add(m.moduleType);
      continue;
    }
    const patterns = Object.hasOwn(TARGET_ALIASES, word) ? TARGET_ALIASES[word] : undefined;
    if (!patterns) {
      add(word);
      continue;
    }
    const hits = patterns.filter((p) => selectsAny(modules, parseEntry(p)));
    if (!hits.length) {
      throw new AdapterError(
        'NO_TARGET',
        `target "${word}" matched no linear module (short names for this model: ${targetAliasesOf(modules).join(', ')}; module types: ${typesOf(modules)})`,
      );
    }
    for (const p of hits) add(p);
  }
  return [...out.values()].map(({ pattern, parts }) => (parts ? `${pattern}[${parts.join(',')}]` : pattern));
}
