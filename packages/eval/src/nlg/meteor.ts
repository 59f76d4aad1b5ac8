/**
 * An approximation of METEOR 1.5 (Denkowski & Lavie, "Meteor Universal", 2014) with the parameters
 * its English ranking task uses (α 0.85, β 0.2, γ 0.6; exact matches weigh 1.0, stem matches 0.6),
 * built from the description, not from its code. What differs from the official jar: no synonym
 * (WordNet) or paraphrase modules and no function-word list (every word counts as content), and the
 * alignment is chosen greedily (each hypothesis word, in order, takes the unmatched reference word
 * that continues the previous match's chunk, else the nearest one) rather than by Meteor's search.
 * Scores therefore differ from the official METEOR, usually downwards: report it as approximate.
 */
import snowball from 'snowball-stemmers';

const ALPHA = 0.85;
const BETA = 0.2;
const GAMMA = 0.6;
const STEM_WEIGHT = 0.6;

const stemmer = snowball.newStemmer('english');

/** Meteor's -norm for English, roughly: lower case, punctuation split off into tokens. */
function normalize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/([.,;:!?"()])/g, ' $1 ')
    .split(/\s+/)
    .filter((w) => w !== '');
}

/** What a segment contributes to the corpus score: lengths, weighted matches, matches and chunks. */
interface Stats {
  hyp: number;
  ref: number;
  weighted: number;
  matches: number;
  chunks: number;
}

function align(h: readonly string[], r: readonly string[]): Stats {
  const hStem = h.map((w) => stemmer.stem(w));
  const rStem = r.map((w) => stemmer.stem(w));
  const toRef = new Array<number>(h.length).fill(-1);
  const usedRef = new Array<boolean>(r.length).fill(false);
  let weighted = 0;
  // Exact matches first, then stems, each hypothesis word in order.
  for (const [stage, same] of [
    [1, (i: number, j: number) => h[i] === r[j]],
    [STEM_WEIGHT, (i: number, j: number) => hStem[i] === rStem[j]],
  ] as const) {
    for (let i = 0; i < h.length; i++) {
      if (toRef[i] >= 0) continue;
      const prev = i > 0 ? toRef[i - 1] : -1;
      let best = -1;
      if (prev >= 0 && prev + 1 < r.length && !usedRef[prev + 1] && same(i, prev + 1)) best = prev + 1;
      else
        for (let j = 0; j < r.length; j++)
          if (!usedRef[j] && same(i, j) && (best < 0 || Math.abs(j - i) < Math.abs(best - i))) best = j;
      if (best >= 0) {
        toRef[i] = best;
        usedRef[best] = true;
        weighted += stage;
      }
    }
  }
  let matches = 0;
  let chunks = 0;
  for (let i = 0; i < h.length; i++) {
    if (toRef[i] < 0) continue;
    matches++;
    if (i === 0 || toRef[i - 1] < 0 || toRef[i - 1] + 1 !== toRef[i]) chunks++;
  }
  return { hyp: h.length, ref: r.length, weighted, matches, chunks };
}

function score(s: Stats): number {
  if (s.matches === 0 || s.hyp === 0 || s.ref === 0) return 0;
  const p = s.weighted / s.hyp;
  const r = s.weighted / s.ref;
  const fmean = (p * r) / (ALPHA * p + (1 - ALPHA) * r);
  return fmean * (1 - GAMMA * (s.chunks / s.matches) ** BETA);
}

/**
 * Corpus approximate METEOR of `outputs` against their references: each output's best-scoring
 * reference, then the score of the summed statistics (as Meteor aggregates a test set).
 */
export function meteorApprox(outputs: readonly string[], references: readonly (readonly string[])[]): number {
  const total: Stats = { hyp: 0, ref: 0, weighted: 0, matches: 0, chunks: 0 };
  for (const [i, out] of outputs.entries()) {
    const h = normalize(out);
    let best: Stats | null = null;
    for (const ref of references[i]) {
      const s = align(h, normalize(ref));
      if (best === null || score(s) > score(best)) best = s;
    }
    if (!best) continue;
    for (const k of Object.keys(total) as (keyof Stats)[]) total[k] += best[k];
  }
  return score(total);
}
