/**
 * Corpus BLEU and NIST as NIST's mteval-v13a computes them (the E2E NLG challenge's scorer, run
 * with its default options): its tokenization (the "11b" rules, ASCII lower-casing), n-grams up to
 * 9 counted, BLEU-4 with the closest reference length (the shorter one on a tie) and its 1/2^k
 * smoothing of empty n-gram matches, NIST-5 with information weights from the references' n-gram
 * counts and its length penalty. References may differ in number per segment; only non-empty ones
 * count towards NIST's average number of references.
 */

/** What mteval's default tokenization makes of a segment: space-separated lower-case tokens. */
export function mtevalTokenize(text: string): string {
  let t = text
    .replace(/<skipped>/g, '')
    .replace(/-\n/g, '')
    .replace(/\n/g, ' ')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');
  t = ` ${t} `.replace(/[A-Z]/g, (c) => c.toLowerCase());
  // ASCII punctuation except ' - . , (those have their own rules): { | } ~ [ \ ] ^ _ ` space
  // ! " # $ % & ( ) * + : ; < = > ? @ /
  t = t.replace(/([{-~[-` -&(-+:-@/])/g, ' $1 ');
  t = t.replace(/([^0-9])([.,])/g, '$1 $2 ');
  t = t.replace(/([.,])([^0-9])/g, ' $1 $2');
  t = t.replace(/([0-9])(-)/g, '$1 $2 ');
  return t.replace(/\s+/g, ' ').trim();
}

const MAX_NGRAM = 9;

/** Counts of the n-grams (n ≤ 9) of a token list, keyed by the space-joined n-gram. */
function ngrams(words: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < words.length; i++) {
    let g = '';
    for (let j = 0; j < MAX_NGRAM && i + j < words.length; j++) {
      g = j === 0 ? words[i] : `${g} ${words[i + j]}`;
      out.set(g, (out.get(g) ?? 0) + 1);
    }
  }
  return out;
}

const words = (tokenized: string) => (tokenized === '' ? [] : tokenized.split(/\s+/));
const order = (g: string) => g.split(' ').length;

/** Corpus BLEU-4 and NIST-5 of `outputs` against `references[i]` (one list per output). */
export function mtevalScores(
  outputs: readonly string[],
  references: readonly (readonly string[])[],
): { bleu: number; nist: number } {
  if (outputs.length !== references.length)
    throw new RangeError(`mteval: ${outputs.length} outputs for ${references.length} reference sets`);
  if (outputs.length === 0) throw new RangeError('mteval: nothing to score');
  const refs = references.map((r) => r.map((s) => words(mtevalTokenize(s))));
  // Each reference's n-gram counts, used for the information weights and for clipping.
  const refGrams = refs.map((set) => set.map(ngrams));
  // Information weight of each n-gram: -log2(count(w1..wn) / count(w1..wn-1)) over all references.
  const counts = new Map<string, number>();
  let totalWords = 0;
  for (const [i, set] of refs.entries())
    for (const [j, r] of set.entries()) {
      totalWords += r.length;
      for (const [g, c] of refGrams[i][j]) counts.set(g, (counts.get(g) ?? 0) + c);
    }
  const info = (g: string): number => {
    const cut = g.lastIndexOf(' ');
    const prefix = cut < 0 ? '' : g.slice(0, cut);
    // Perl's truth test: an empty prefix, or the one-word prefix "0", divides by the word total.
    const denom = prefix === '' || prefix === '0' ? totalWords : (counts.get(prefix) as number);
    return -Math.log((counts.get(g) as number) / denom) / Math.log(2);
  };

  const match = new Array<number>(MAX_NGRAM + 1).fill(0);
  const tstCount = new Array<number>(MAX_NGRAM + 1).fill(0);
  const refCount = new Array<number>(MAX_NGRAM + 1).fill(0);
  const tstInfo = new Array<number>(MAX_NGRAM + 1).fill(0);
  let refLength = 0;
  let nonEmptyRefs = 0;
  for (const [i, out] of outputs.entries()) {
    const tst = words(mtevalTokenize(out));
    for (let j = 1; j <= MAX_NGRAM; j++) tstCount[j] += Math.max(0, tst.length - j + 1);
    const maxRef = new Map<string, number>();
    let closest: number | undefined;
    for (const [j, r] of refs[i].entries()) {
      if (r.length > 0) nonEmptyRefs++;
      for (const [g, c] of refGrams[i][j]) maxRef.set(g, Math.max(maxRef.get(g) ?? 0, c));
      for (let j = 1; j <= MAX_NGRAM; j++) refCount[j] += Math.max(0, r.length - j + 1);
      if (closest === undefined) closest = r.length;
      else if (r.length > 0) {
        const d = Math.abs(tst.length - r.length);
        const dc = Math.abs(tst.length - closest);
        if (d < dc || (d === dc && r.length < closest)) closest = r.length;
      }
    }
    refLength += closest ?? 0;
    for (const [g, c] of ngrams(tst)) {
      const m = maxRef.get(g);
      if (m === undefined) continue;
      const n = order(g);
      const clipped = Math.min(c, m);
      match[n] += clipped;
      tstInfo[n] += info(g) * clipped;
    }
  }

  let bleuLog = 0;
  let smooth = 1;
  for (let j = 1; j <= 4; j++) {
    if (tstCount[j] === 0) continue;
    if (match[j] === 0) {
      smooth *= 2;
      bleuLog += Math.log(1 / (smooth * tstCount[j]));
    } else bleuLog += Math.log(match[j] / tstCount[j]);
  }
  const brevity = tstCount[1] > 0 ? Math.exp(Math.min(0, 1 - refLength / tstCount[1])) : 0;
  const bleu = Math.exp(bleuLog / 4) * brevity;

  let nist = 0;
  for (let n = 1; n <= 5; n++) nist += tstInfo[n] / Math.max(tstCount[n], 1);
  const avgRefs = nonEmptyRefs / outputs.length;
  nist *= nistLengthPenalty(tstCount[1] / (refCount[1] / avgRefs));
  return { bleu, nist };
}

/** NIST's brevity penalty: 1 at or above the average reference length, 0.5 at two thirds of it. */
function nistLengthPenalty(ratio: number): number {
  if (ratio >= 1) return 1;
  if (ratio <= 0) return 0;
  const beta = -Math.log(0.5) / Math.log(1.5) / Math.log(1.5);
  return Math.exp(-beta * Math.log(ratio) ** 2);
}
