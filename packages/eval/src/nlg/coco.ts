/**
 * ROUGE-L and CIDEr-D as the MS-COCO caption evaluation code computes them (the E2E NLG challenge's
 * scorer), on its tokenization: Stanford's PTB tokenizer, lower-cased, with punctuation tokens
 * removed. The tokenizer here reproduces what that one does to English text of the kind NLG
 * datasets hold (clitics, currency signs, sentence punctuation, quotes, brackets); hyphenated words
 * stay whole, as there.
 */

/** Tokens the COCO evaluation drops after tokenizing (PTB's spellings of punctuation). */
const PUNCTUATION = new Set(["''", "'", '``', '`', '.', '?', '!', ',', ':', '-', '--', '...', ';']);

const CLITIC = /^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$/;

/**
 * Spaces inserted where the PTB tokenizer splits: commas and periods unless inside a number,
 * sentence punctuation, currency signs, hyphens and apostrophes at a word's edge (quotes,
 * brackets and runs of dots become lone tokens that are then dropped).
 */
const SPLITS: Array<[RegExp, string]> = [
  [/(?<![0-9]),|,(?![0-9])/g, ' , '],
  [/["`()[\]{}]/g, ' '],
  [/-(?=\s|$)|(?<=^|\s)-/g, ' - '],
  [/([;:!?£$€¥])/gu, ' $1 '],
  [/\.{2,}/g, ' ... '],
  [/\.(?=\s|$)|(?<=^|\s)\./g, ' . '],
  [/'(?=\s|$)|(?<=^|\s)'/g, " ' "],
];

/** A text as COCO's evaluation tokenizes it: lower-cased PTB tokens, punctuation removed. */
export function cocoTokenize(text: string): string[] {
  let t = text.toLowerCase();
  for (const [re, to] of SPLITS) t = t.replace(re, to);
  const out: string[] = [];
  for (const w of t.split(/\s+/)) {
    if (w === '' || PUNCTUATION.has(w)) continue;
    const c = CLITIC.exec(w);
    if (c) out.push(c[1], c[2]);
    else out.push(w);
  }
  return out;
}

/** Length of the longest common subsequence of two token lists. */
function lcs(a: readonly string[], b: readonly string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    const row = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++)
      row[j] = x === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    prev = row;
  }
  return prev[b.length];
}

/**
 * ROUGE-L of one tokenized candidate against its references: the best precision and the best
 * recall over the references (each taken on its own), combined as an F-measure with β = 1.2.
 */
export function rougeL(candidate: readonly string[], references: readonly (readonly string[])[]): number {
  // COCO splits an empty string into one empty token.
  const c = candidate.length ? candidate : [''];
  let precision = 0;
  let recall = 0;
  for (const r0 of references) {
    const r = r0.length ? r0 : [''];
    const l = lcs(r, c);
    precision = Math.max(precision, l / c.length);
    recall = Math.max(recall, l / r.length);
  }
  if (precision === 0 || recall === 0) return 0;
  const b2 = 1.2 ** 2;
  return ((1 + b2) * precision * recall) / (recall + b2 * precision);
}

/** n-gram counts (n = 1..4) of a token list, keyed by the n-gram's tokens joined with a space. */
function cook(tokens: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (let n = 1; n <= 4; n++)
    for (let i = 0; i + n <= tokens.length; i++) {
      const g = tokens.slice(i, i + n).join(' ');
      out.set(g, (out.get(g) ?? 0) + 1);
    }
  return out;
}

interface TfIdf {
  vec: Map<string, number>[];
  norm: number[];
  /** COCO's CIDEr-D "length": the number of bigrams (its own quirk, kept for equal scores). */
  length: number;
}

/**
 * CIDEr-D of each candidate (tokenized) against its references: tf-idf n-gram vectors (n = 1..4,
 * document frequencies from the scored set's references), clipped cosine similarity, a Gaussian
 * length penalty (σ = 6), averaged over n and references, times 10. Returns the corpus mean and
 * the per-candidate scores.
 */
export function ciderD(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
): { score: number; scores: number[] } {
  if (candidates.length !== references.length)
    throw new RangeError(`CIDEr: ${candidates.length} candidates for ${references.length} reference sets`);
  const refs = references.map((set) => set.map(cook));
  const df = new Map<string, number>();
  for (const set of refs) {
    const seen = new Set<string>();
    for (const r of set) for (const g of r.keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  const logDocs = Math.log(candidates.length);
  const tfidf = (counts: Map<string, number>): TfIdf => {
    const vec = [0, 1, 2, 3].map(() => new Map<string, number>());
    const norm = [0, 0, 0, 0];
    let length = 0;
    for (const [g, tf] of counts) {
      const n = g.split(' ').length - 1;
      const v = tf * (logDocs - Math.log(Math.max(1, df.get(g) ?? 0)));
      vec[n].set(g, v);
      norm[n] += v * v;
      if (n === 1) length += tf;
    }
    return { vec, norm: norm.map(Math.sqrt), length };
  };
  const scores = candidates.map((cand, i) => {
    const h = tfidf(cook(cand));
    const sum = [0, 0, 0, 0];
    for (const rc of refs[i]) {
      const r = tfidf(rc);
      const delta = h.length - r.length;
      for (let n = 0; n < 4; n++) {
        let val = 0;
        for (const [g, v] of h.vec[n]) {
          const rv = r.vec[n].get(g) ?? 0;
          val += Math.min(v, rv) * rv;
        }
        if (h.norm[n] !== 0 && r.norm[n] !== 0) val /= h.norm[n] * r.norm[n];
        sum[n] += val * Math.exp(-(delta * delta) / (2 * 6 * 6));
      }
    }
    return ((sum[0] + sum[1] + sum[2] + sum[3]) / 4 / refs[i].length) * 10;
  });
  return { score: scores.reduce((a, b) => a + b, 0) / scores.length, scores };
}
