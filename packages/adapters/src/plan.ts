import { type AdapterConfig, scalingFactor } from './config.js';
import { AdapterError } from './errors.js';
import { type LinearModuleInfo, patternValue, selectTargets } from './targets.js';

/** One adapted linear map: a whole module, or one part of a fused projection (GPT-2's c_attn[q]). */
export interface AdapterSite {
  /** The module path, plus "[part]" for a fused part. */
  id: string;
  module: LinearModuleInfo;
  part: string | null;
  /** Module type, plus "[part]" for a fused part: what the parameter table groups by. */
  type: string;
  inFeatures: number;
  /** Output size of this site (a fused part is outFeatures / number of parts). */
  outFeatures: number;
  /** Where this site's output starts within the module's output. */
  outOffset: number;
  r: number;
  alpha: number;
  scaling: number;
  /** Key of the matrix group holding this site's A (shared sites have the same key), likewise B. */
  aKey: string;
  bKey: string;
}

/** One distinct trainable matrix: A is [r, in], B is [out, r]. */
export interface MatrixGroup {
  key: string;
  kind: 'A' | 'B';
  shape: [number, number];
  /** Sites using it: one for an ordinary LoRA matrix, several for a shared one. */
  sites: AdapterSite[];
  /** A readable name of what it is shared over, e.g. "self_attn.q_proj" or "self_attn.{q_proj,k_proj,v_proj}"; null if per site. */
  sharedOver: string | null;
}

/** planAdapter's decision: every adapted linear map, and the distinct A/B matrices they use. */
export interface AdapterPlan {
  sites: AdapterSite[];
  /** Distinct matrices in first-use order. */
  matrices: Map<string, MatrixGroup>;
}

const QKV_FAMILIES = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['query', 'key', 'value'],
  ['q', 'k', 'v'],
];

/** The qkv sharing group of a site (e.g. "self_attn.{q_proj,k_proj,v_proj}"), or null if it is not a q/k/v projection. */
function qkvGroup(site: Pick<AdapterSite, 'module' | 'part'>): string | null {
  const type = site.module.moduleType;
  if (site.part !== null) return QKV_FAMILIES[2].includes(site.part) ? `${type}[q,k,v]` : null;
  const comps = type.split('.');
  const last = comps.pop() as string;
  const family = QKV_FAMILIES.find((f) => f.includes(last));
  return family ? [...comps, `{${family.join(',')}}`].join('.') : null;
}

function sharedOver(site: AdapterSite, config: AdapterConfig): string | null {
  const { layers, group } = config.sharing;
  const layer = site.module.layer;
  if (layer === null || (layers && (layer < layers[0] || layer >= layers[1]))) return null;
  return (group === 'qkv' ? qkvGroup(site) : null) ?? site.type;
}

function checkGroup(g: MatrixGroup): void {
  const dim = g.kind === 'A' ? 'inFeatures' : 'outFeatures';
  const what = g.kind === 'A' ? 'in' : 'out';
  const dims = new Map<string, string>();
  for (const s of g.sites) dims.set(s.type, `${s.type} r=${s.r} ${what}=${s[dim]}`);
  const first = g.sites[0];
  if (g.sites.every((s) => s.r === first.r && s[dim] === first[dim])) return;
  const gqa =
    g.kind === 'B' && g.sharedOver?.includes('{')
      ? ' (under grouped-query attention k and v are narrower than q: share only A, e.g. method share-qkv)'
      : '';
  throw new AdapterError(
    'SHARE_SHAPE',
    `cannot share ${g.kind} over ${g.sharedOver}: a shared ${g.kind} needs equal rank and ${what}-dims, ` +
      `but the group has ${[...dims.values()].join('; ')}${gqa}`,
  );
}

/**
 * Decides, from shapes and names only, which linear maps get an adapter and which of their matrices
 * are shared: the single source of truth for injection and for parameter counting. Throws on targets
 * that match nothing and on shared matrices whose members differ in shape (never reshapes).
 */
export function planAdapter(modules: readonly LinearModuleInfo[], config: AdapterConfig): AdapterPlan {
  const sites: AdapterSite[] = [];
  for (const { module: m, parts } of selectTargets(modules, config.targetModules)) {
    const r = patternValue(config.rankPattern, m.name) ?? config.r;
    const alpha = patternValue(config.alphaPattern, m.name) ?? config.alpha;
    const base = {
      module: m,
      inFeatures: m.inFeatures,
      r,
      alpha,
      scaling: scalingFactor(alpha, r, config.scaling),
    };
    if (parts === null) {
      sites.push({
        ...base,
        id: m.name,
        part: null,
        type: m.moduleType,
        outFeatures: m.outFeatures,
        outOffset: 0,
        aKey: '',
        bKey: '',
      });
      continue;
    }
    const all = m.fused?.parts ?? [];
    if (m.outFeatures % all.length !== 0) {
      throw new AdapterError(
        'NO_TARGET',
        `${m.name}: output size ${m.outFeatures} does not split into ${all.length} equal parts (${all.join(', ')})`,
      );
    }
    const size = m.outFeatures / all.length;
    for (const part of parts) {
      sites.push({
        ...base,
        id: `${m.name}[${part}]`,
        part,
        type: `${m.moduleType}[${part}]`,
        outFeatures: size,
        outOffset: all.indexOf(part) * size,
        aKey: '',
        bKey: '',
      });
    }
  }
  // B·A has rank at most min(in, out): a larger r only adds memory (and a huge one exhausts it).
  const tooWide = sites.find((s) => s.r > Math.min(s.inFeatures, s.outFeatures));
  if (tooWide) {
    throw new AdapterError(
      'BAD_ADAPTER_CONFIG',
      `rank ${tooWide.r} exceeds ${tooWide.id} (${tooWide.inFeatures} in, ${tooWide.outFeatures} out): ` +
        `a LoRA rank can be at most min(in, out) = ${Math.min(tooWide.inFeatures, tooWide.outFeatures)}`,
    );
  }
  const matrices = new Map<string, MatrixGroup>();
  const assign = (site: AdapterSite, kind: 'A' | 'B', share: boolean): string => {
    const over = share ? sharedOver(site, config) : null;
    const key = `${kind}:${over ?? site.id}`;
    let g = matrices.get(key);
    if (!g) {
      const shape: [number, number] = kind === 'A' ? [site.r, site.inFeatures] : [site.outFeatures, site.r];
      g = { key, kind, shape, sites: [], sharedOver: over };
      matrices.set(key, g);
    }
    g.sites.push(site);
    return key;
  };
  for (const s of sites) {
    s.aKey = assign(s, 'A', config.sharing.shareA);
    s.bKey = assign(s, 'B', config.sharing.shareB);
  }
  for (const g of matrices.values()) if (g.sharedOver) checkGroup(g);
  return { sites, matrices };
}
