/**
 * E2E NLG metrics against the challenge's published scores of its baseline: TGen's test-set output
 * (fixtures/e2e/tgen.tsv, see its SOURCE.md) against the test set's references scores BLEU 0.6593,
 * NIST 8.6094, ROUGE-L 0.6850 and CIDEr 2.2338 with the official e2e-metrics scripts. BLEU and
 * NIST of three altered copies of that output were computed with the official Perl scorer
 * (mteval-v13a-sig.pl of e2e-metrics, run through its measure_scores.py) for this test.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ciderD, cocoTokenize, rougeL } from '../src/nlg/coco.js';
import { groupE2eReferences, parseE2eRows } from '../src/nlg/e2e-data.js';
import { meteorApprox } from '../src/nlg/meteor.js';
import { mtevalScores, mtevalTokenize } from '../src/nlg/mteval.js';

const here = dirname(fileURLToPath(import.meta.url));
const data = process.env.SHARELORA_DATA ?? resolve(here, '../../../../shared/data');

function load() {
  const refsFile = join(data, 'e2e_nlg/testset_w_refs.csv');
  const refs = groupE2eReferences(parseE2eRows(readFileSync(refsFile, 'utf8'), refsFile));
  const sysFile = join(here, 'fixtures/e2e/tgen.tsv');
  return { refs, sys: parseE2eRows(readFileSync(sysFile, 'utf8'), sysFile) };
}

describe('E2E metrics on TGen', () => {
  it('equal the official scripts to 4 decimals', () => {
    const { refs, sys } = load();
    expect(refs.length).toBe(630);
    expect(sys.map((s) => s[0])).toEqual(refs.map((r) => r.mr));
    const outputs = sys.map((s) => s[1]);
    const { bleu, nist } = mtevalScores(
      outputs,
      refs.map((r) => r.references),
    );
    const cand = outputs.map(cocoTokenize);
    const refTok = refs.map((r) => r.references.map(cocoTokenize));
    const rouge = cand.reduce((s, c, i) => s + rougeL(c, refTok[i]), 0) / cand.length;
    const cider = ciderD(cand, refTok).score;
    const meteor = meteorApprox(
      outputs,
      refs.map((r) => r.references),
    );
    console.log(
      `TGen on the E2E test set: BLEU ${bleu.toFixed(4)} NIST ${nist.toFixed(4)} ROUGE-L ${rouge.toFixed(4)} CIDEr ${cider.toFixed(4)} METEOR (approximate) ${meteor.toFixed(4)}`,
    );
    expect(meteor).toBeGreaterThan(0.3);
    expect(meteor).toBeLessThan(0.6);
    expect(bleu.toFixed(4)).toBe('0.6593');
    expect(nist.toFixed(4)).toBe('8.6094');
    expect(rouge.toFixed(4)).toBe('0.6850');
    expect(cider.toFixed(4)).toBe('2.2338');
  });

  it("BLEU and NIST of altered outputs equal the official Perl scorer's", () => {
    const { refs, sys } = load();
    const variants: Array<[string, (out: string, i: number) => string, number, number]> = [
      // every third word dropped
      [
        'drop3',
        (o) =>
          o
            .split(' ')
            .filter((_, i) => i % 3 !== 2)
            .join(' '),
        0.1122,
        3.7189,
      ],
      // upper case: mteval lower-cases ASCII letters only
      ['upper', (o) => o.toUpperCase(), 0.6393, 8.4287],
      // one word for every fifth MR
      ['short5', (o, i) => (i % 5 === 0 ? 'the' : o), 0.5507, 7.1232],
    ];
    for (const [name, change, bleu, nist] of variants) {
      const got = mtevalScores(
        sys.map(([, o], i) => change(o, i)),
        refs.map((r) => r.references),
      );
      expect([got.bleu.toFixed(4), got.nist.toFixed(4)], name).toEqual([bleu.toFixed(4), nist.toFixed(4)]);
    }
  });
});

describe('E2E metric pieces', () => {
  it("mteval's tokenization, as its Perl tokenizer prints it", () => {
    // Expected strings printed by mteval-v13a's own tokenization routine on these inputs.
    expect(
      mtevalTokenize('Hello, World. £20-25 it\'s "great" (really) [x] {y} a/b 3.5 5,000 x.y 20-£25!'),
    ).toBe(
      'hello , world . £20 - 25 it\'s " great " ( really ) [ x ] { y } a / b 3.5 5,000 x . y 20 - £25 !',
    );
    expect(mtevalTokenize("The Café's price-range: £30+ & more; ok?")).toBe(
      "the café's price-range : £30 + & more ; ok ?",
    );
  });

  it('COCO tokenization: PTB splits, lower case, punctuation dropped', () => {
    expect(cocoTokenize("It's a family-friendly pub, near Café Rouge. Prices: £20-25.")).toEqual([
      'it',
      "'s",
      'a',
      'family-friendly',
      'pub',
      'near',
      'café',
      'rouge',
      'prices',
      '£',
      '20-25',
    ]);
    expect(cocoTokenize("The 'Mill' isn't cheap (over £30,000)... ok?")).toEqual([
      'the',
      'mill',
      'is',
      "n't",
      'cheap',
      'over',
      '£',
      '30,000',
      'ok',
    ]);
  });

  it('ROUGE-L and CIDEr-D by hand', () => {
    // LCS("a b c d", "a c d e") = 3: P = R = 3/4, F = 0.75 for any beta.
    expect(rougeL(['a', 'b', 'c', 'd'], [['a', 'c', 'd', 'e']])).toBeCloseTo(0.75, 12);
    // Best precision and best recall come from different references: P = 1 (ref 1), R = 1 (ref 2).
    expect(rougeL(['a', 'b'], [['a', 'b', 'c', 'd'], ['a']])).toBe(0.5 / 0.5);
    // Two documents whose references share no n-gram: every n-gram has df 1, so the same idf, and a
    // candidate equal to its single reference has cosine 1 at each n it has n-grams for (and 0 at
    // the others), with no length penalty: 10 · (n-gram orders present) / 4.
    const c = ciderD(
      [
        ['w', 'x', 'y', 'z'],
        ['p', 'q'],
      ],
      [[['w', 'x', 'y', 'z']], [['p', 'q']]],
    );
    expect(c.scores[0]).toBeCloseTo(10, 10);
    expect(c.scores[1]).toBeCloseTo(5, 10);
    expect(c.score).toBeCloseTo(7.5, 10);
  });

  it('approximate METEOR by hand', () => {
    // Exact match of three words in one chunk: Fmean 1, penalty 0.6·(1/3)^0.2.
    expect(meteorApprox(['the cat sat'], [['the cat sat']])).toBeCloseTo(1 - 0.6 * (1 / 3) ** 0.2, 12);
    // "cats" matches "cat" by stem (weight 0.6): P = R = 1.6/2, one chunk of two matches.
    expect(meteorApprox(['cats sat'], [['cat sat']])).toBeCloseTo(0.8 * (1 - 0.6 * 0.5 ** 0.2), 12);
    expect(meteorApprox(['dog'], [['cat']])).toBe(0);
  });
});
