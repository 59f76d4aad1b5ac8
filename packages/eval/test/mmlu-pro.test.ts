import { describe, expect, it } from 'vitest';
import {
  type EvalModel,
  evaluateMmluPro,
  extractMmluProCascade,
  extractMmluProLmEval,
  loadMmluPro,
  MMLU_PRO_CATEGORIES,
  type MmluProDoc,
  mmluProCotPrompt,
  mmluProMcPrompt,
} from '../src/index.js';
import { dataPath, hasData, hasPython, python } from './data.js';

const withData = hasData('mmlu_pro');
const withPython = hasPython();

describe('MMLU-Pro answer extraction', () => {
  it('lm-eval\'s filter takes the first "answer is (X)"', () => {
    expect(extractMmluProLmEval('so the answer is (C). Later the answer is (D).')).toBe('C');
    expect(extractMmluProLmEval('the answer is J')).toBe('J');
    expect(extractMmluProLmEval('Answer: B')).toBe('[invalid]');
  });

  it("TIGER-Lab's cascade: answer is (X), then Answer: X, then the last standalone letter", () => {
    expect(extractMmluProCascade('The answer is (E).')).toEqual({ letter: 'E', rule: 'answer-is' });
    expect(extractMmluProCascade('Step 1.\nFinal Answer: G and answer: H\nanswer: I')).toEqual({
      letter: 'H',
      rule: 'answer-colon',
    });
    expect(extractMmluProCascade('answer:\nB')).toEqual({ letter: 'B', rule: 'answer-colon' });
    expect(extractMmluProCascade('I think B, or maybe C is right.\nSo D.')).toEqual({
      letter: 'D',
      rule: 'last-letter',
    });
    // Python's \b is Unicode-aware: "É" and "Cé" are word characters, so only the bare "A" stands alone.
    expect(extractMmluProCascade('A then ÉB and Cé')).toEqual({ letter: 'A', rule: 'last-letter' });
    expect(extractMmluProCascade('nothing here')).toEqual({ letter: null, rule: null });
  });
});

describe.skipIf(!withData)('MMLU-Pro on the real data', () => {
  it('loads the subset and the validation split', async () => {
    const test = await loadMmluPro(dataPath('mmlu_pro', 'mmlu_pro_test_subset400.jsonl'));
    const validation = await loadMmluPro(dataPath('mmlu_pro', 'mmlu_pro_validation.jsonl'));
    expect(test.length).toBe(400);
    expect(validation.length).toBe(70);
    expect(new Set(test.map((d) => d.category))).toEqual(new Set(MMLU_PRO_CATEGORIES));
    for (const c of MMLU_PRO_CATEGORIES) expect(validation.filter((d) => d.category === c).length).toBe(5);
  });

  it.skipIf(!withPython)(
    'builds lm-eval mmlu_pro CoT and leaderboard_mmlu_pro prompts byte for byte',
    async () => {
      // Rendered in Python following lm-eval's mmlu_pro utils and YAMLs: description per category
      // ending in a single "\n"; "Question:\n{q}\nOptions:\n" + "X. {opt.strip()}\n" per option +
      // "Answer: Let's think step by step."; shots answered with " " + cot_content minus its
      // "A: Let's think step by step. " lead-in, "\n\n" after each shot. leaderboard_mmlu_pro:
      // "{q}\n" + "X. {opt}\n" + "Answer:", the first 5 validation rows answered " X".
      const picks = [0, 119, 207, 276, 399];
      const expected = python(
        `
import json
test = [json.loads(l) for l in open(${JSON.stringify(dataPath('mmlu_pro', 'mmlu_pro_test_subset400.jsonl'))})]
val = [json.loads(l) for l in open(${JSON.stringify(dataPath('mmlu_pro', 'mmlu_pro_validation.jsonl'))})]
L = 'ABCDEFGHIJ'
def cot_q(d):
    s = 'Question:\\n' + d['question'] + '\\nOptions:\\n'
    for i, o in enumerate(d['options'][:10]):
        s += L[i] + '. ' + o.strip() + '\\n'
    return s + "Answer: Let's think step by step."
def mc_q(d):
    s = d['question'] + '\\n'
    for i, o in enumerate(d['options']):
        s += L[i] + '. ' + o + '\\n'
    return s + 'Answer:'
out = []
for i in ${JSON.stringify(picks)}:
    d = test[i]
    desc = ('The following are multiple choice questions (with answers) about ' + d['category'] +
            '. Think step by step and then finish your answer with "the answer is (X)" where X is the correct letter choice.\\n')
    shots = [v for v in val if v['category'] == d['category']][:5]
    cot = desc + ''.join(cot_q(s) + ' ' + s['cot_content'].replace("A: Let's think step by step. ", '') + '\\n\\n' for s in shots) + cot_q(d)
    mc = ''.join(mc_q(s) + ' ' + s['answer'] + '\\n\\n' for s in val[:5]) + mc_q(d)
    out.append([cot, mc])
print(json.dumps(out))
`,
      ) as [string, string][];
      const test = await loadMmluPro(dataPath('mmlu_pro', 'mmlu_pro_test_subset400.jsonl'));
      const validation = await loadMmluPro(dataPath('mmlu_pro', 'mmlu_pro_validation.jsonl'));
      picks.forEach((i, k) => {
        const doc = test[i];
        const shots = validation.filter((v) => v.category === doc.category).slice(0, 5);
        expect(mmluProCotPrompt(doc, shots)).toBe(expected[k][0]);
        expect(mmluProMcPrompt(doc, validation.slice(0, 5))).toBe(expected[k][1]);
      });
    },
  );
});

describe('MMLU-Pro harness (fake models)', () => {
  const doc = (category: string, n: number, options: number, answerIndex: number): MmluProDoc => ({
    questionId: n,
    question: `${category} q${n}`,
    options: Array.from({ length: options }, (_, i) => `opt${i}`),
    answer: 'ABCDEFGHIJ'[answerIndex],
    answerIndex,
    cotContent: "A: Let's think step by step. Because. The answer is (A).",
    category,
    src: '',
  });
  const test = [doc('math', 0, 10, 2), doc('math', 1, 4, 3), doc('law', 2, 3, 0)];
  const validation = [doc('math', 10, 10, 0), doc('law', 11, 10, 0)];

  it('cot: generates until "Question:", scores both extractions, per category', async () => {
    const model: EvalModel = {
      name: 'cot',
      generate: async (reqs) =>
        reqs.map((r) => {
          expect(r.stop).toEqual(['Question:']);
          expect(r.maxNewTokens).toBe(2048);
          if (
            r.prompt.endsWith(
              "q0\nOptions:\nA. opt0\nB. opt1\nC. opt2\nD. opt3\nE. opt4\nF. opt5\nG. opt6\nH. opt7\nI. opt8\nJ. opt9\nAnswer: Let's think step by step.",
            )
          )
            return ' Thus the answer is (C).\n\nQuestion: next';
          if (r.prompt.includes('math q1')) return ' Answer: D';
          return ' no idea';
        }),
      loglikelihood: async () => [],
    };
    const r = await evaluateMmluPro(model, { test, validation }, { shots: 1 });
    expect(r.samples[0].output).toBe(' Thus the answer is (C).\n\n');
    expect(r.samples.map((s) => s.verdict)).toEqual([
      { 'custom-extract': true, cascade: true },
      { 'custom-extract': false, cascade: true },
      { 'custom-extract': false, cascade: false },
    ]);
    expect(r.metrics.accuracy).toEqual({ 'custom-extract': 1 / 3, cascade: 2 / 3 });
    expect(r.metrics.no_answer).toBe(1);
    expect(r.metrics.categories.math).toEqual({ n: 2, 'custom-extract': 0.5, cascade: 1 });
    expect(
      r.samples[2].prompt.startsWith('The following are multiple choice questions (with answers) about law.'),
    ).toBe(true);
    expect(r.samples[2].prompt).toContain(
      "Answer: Let's think step by step. Because. The answer is (A).\n\nQuestion:\nlaw q2",
    );
  });

  it('loglikelihood: one continuation per option (" A".." J"), argmax', async () => {
    const model: EvalModel = {
      name: 'll',
      generate: async () => [],
      loglikelihood: async (reqs) =>
        reqs.map((r) => ({ logprob: r.continuation === ' D' ? -1 : -2, isGreedy: false })),
    };
    const r = await evaluateMmluPro(model, { test, validation }, { scoring: 'loglikelihood', shots: 2 });
    expect(r.samples.map((s) => s.scores?.length)).toEqual([10, 4, 3]);
    expect(r.samples.map((s) => s.output)).toEqual(['D', 'D', 'A']);
    expect(r.metrics.accuracy).toEqual({ acc: 2 / 3 });
    expect(r.samples[0].prompt.startsWith('math q10\nA. opt0\n')).toBe(true);
  });
});
