import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  EvalDataError,
  type EvalModel,
  evaluateMmlu,
  loadMmlu,
  loadMmluCsv,
  MMLU_SUBJECTS,
  type MmluData,
  type MmluDoc,
  mmluPrompt,
  mmluTables,
} from '../src/index.js';
import { dataPath, hasData, hasPython, python } from './data.js';

const withData = hasData('mmlu');
const withPython = hasPython();

describe.skipIf(!withData)('MMLU data and prompts', () => {
  it('loads the 57 subjects of the copy (header row, 0-3 answers): 14,042 test and 285 dev questions', async () => {
    const data = await loadMmlu(dataPath('mmlu'));
    expect(data.test.length).toBe(14042);
    expect(Object.keys(data.dev).length).toBe(57);
    expect(Object.values(data.dev).reduce((a, d) => a + d.length, 0)).toBe(285);
    expect(Object.keys(MMLU_SUBJECTS).length).toBe(57);
    const q = data.test[0];
    expect(q.subject).toBe('abstract_algebra');
    expect(q.question).toBe(
      'Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.',
    );
  });

  it.skipIf(!withPython)(
    'reads the original layout (no header, letter answers) to the same questions',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mmlu-orig-'));
      try {
        const file = join(dir, 'high_school_european_history_test.csv');
        // Rewritten by Python's csv module into the hendrycks layout.
        python(
          `
import csv, json
rows = list(csv.reader(open(${JSON.stringify(dataPath('mmlu', 'test', 'high_school_european_history_test.csv'))}, newline='', encoding='utf-8')))[1:]
with open(${JSON.stringify(file)}, 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow(r[:5] + ['ABCD'[int(r[5])]])
print('null')
`,
        );
        const original = await loadMmluCsv(file, 'high_school_european_history');
        const copy = await loadMmluCsv(
          dataPath('mmlu', 'test', 'high_school_european_history_test.csv'),
          'high_school_european_history',
        );
        expect(original.length).toBe(165);
        expect(original).toEqual(copy);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(!withPython)('builds lm-eval 5-shot prompts byte for byte', async () => {
    // Expected prompts rendered in Python from lm-eval's published template: description
    // "The following are multiple choice questions (with answers) about {subject with spaces}.\n\n",
    // doc_to_text "{{question.strip()}}\nA. {{choices[0]}}\nB. …\nD. {{choices[3]}}\nAnswer:",
    // the first 5 dev rows as shots answered with " " + letter, "\n\n" between examples.
    const cases: [string, number][] = [
      ['abstract_algebra', 0],
      ['high_school_european_history', 2],
      ['professional_law', 1000],
    ];
    const expected = python(
      `
import csv, json
root = ${JSON.stringify(dataPath('mmlu'))}
def rows(split, subject):
    return list(csv.reader(open(f'{root}/{split}/{subject}_{split}.csv', newline='', encoding='utf-8')))[1:]
def text(r):
    return r[0].strip() + '\\nA. ' + r[1] + '\\nB. ' + r[2] + '\\nC. ' + r[3] + '\\nD. ' + r[4] + '\\nAnswer:'
out = []
for subject, i in ${JSON.stringify(cases)}:
    desc = 'The following are multiple choice questions (with answers) about ' + subject.replace('_', ' ') + '.\\n\\n'
    shots = ''.join(text(r) + ' ' + 'ABCD'[int(r[5])] + '\\n\\n' for r in rows('dev', subject)[:5])
    out.append(desc + shots + text(rows('test', subject)[i]))
print(json.dumps(out))
`,
    ) as string[];
    const data = await loadMmlu(dataPath('mmlu'), { subjects: cases.map((c) => c[0]) });
    cases.forEach(([subject, i], k) => {
      const doc = data.test.filter((d) => d.subject === subject)[i];
      expect(mmluPrompt(doc, data.dev[subject].slice(0, 5))).toBe(expected[k]);
    });
    expect(
      expected[0].startsWith(
        'The following are multiple choice questions (with answers) about abstract algebra.\n\n',
      ),
    ).toBe(true);
  });

  it('reports malformed rows with file and line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mmlu-bad-'));
    try {
      const file = join(dir, 'anatomy_test.csv');
      await writeFile(
        file,
        'question,choice0,choice1,choice2,choice3,answer\n"Q1",a,b,c,d,0\n"Q2\nspans",a,b,c,d,7\n',
      );
      await expect(loadMmluCsv(file, 'anatomy')).rejects.toThrow(
        `${file}:3: answer must be an index 0-3, got "7"`,
      );
      await writeFile(file, 'Q,a,b,c\n');
      await expect(loadMmluCsv(file, 'anatomy')).rejects.toBeInstanceOf(EvalDataError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('MMLU scoring and averaging (fake models)', () => {
  const doc = (subject: string, answer: number, n: number): MmluDoc => ({
    subject,
    question: `${subject} question ${n}`,
    choices: ['w', 'x', 'y', 'z'],
    answer,
  });
  // abstract_algebra (STEM): 3 questions, philosophy (humanities): 1 question.
  const data: MmluData = {
    test: [
      doc('abstract_algebra', 0, 0),
      doc('abstract_algebra', 1, 1),
      doc('abstract_algebra', 2, 2),
      doc('philosophy', 3, 0),
    ],
    dev: { abstract_algebra: [doc('abstract_algebra', 1, 9)], philosophy: [doc('philosophy', 2, 9)] },
  };
  // Fixed scores: the model always prefers B, except on "abstract_algebra question 0" where it prefers A.
  const scoresFor = (prompt: string) =>
    prompt.endsWith('question 0\nA. w\nB. x\nC. y\nD. z\nAnswer:') && prompt.includes('about abstract')
      ? [-0.1, -2, -3, -4]
      : [-2, -0.5, -3, -4];
  const model: EvalModel = {
    name: 'fixed',
    generate: async () => [],
    loglikelihood: async (reqs) =>
      reqs.map((r) => ({
        logprob: scoresFor(r.context)['ABCD'.indexOf(r.continuation.trim())],
        isGreedy: false,
      })),
    nextTokenLogprobs: async (prompts, candidates) => {
      expect(candidates).toEqual([' A', ' B', ' C', ' D']);
      return prompts.map(scoresFor);
    },
  };

  it('letter logits: argmax per question, macro average headline, category tables', async () => {
    const r = await evaluateMmlu(model, data, { scoring: 'letter-logits', shots: 1 });
    expect(r.samples.map((s) => s.output)).toEqual(['A', 'B', 'B', 'B']);
    expect(r.samples.map((s) => s.verdict)).toEqual([true, true, false, false]);
    expect(r.metrics.acc).toBe(0.5); // micro: 2 of 4
    expect(r.metrics.acc_macro).toBeCloseTo((2 / 3 + 0) / 2, 15); // macro over subjects
    expect(r.metrics.headline).toEqual({ metric: 'acc_macro', value: r.metrics.acc_macro });
    expect(r.metrics.subjects.philosophy).toEqual({ category: 'humanities', n: 1, acc: 0 });
    expect(r.metrics.categories.stem).toEqual({ subjects: 1, n: 3, acc: 2 / 3, acc_macro: 2 / 3 });
    expect(r.metrics.categories.social_sciences).toBeUndefined();
    expect(r.samples[0].prompt).toBe(
      'The following are multiple choice questions (with answers) about abstract algebra.\n\n' +
        'abstract_algebra question 9\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n' +
        'abstract_algebra question 0\nA. w\nB. x\nC. y\nD. z\nAnswer:',
    );
    expect(mmluTables(r.metrics)).toContain('| stem | 1 | 3 | 66.67 | 66.67 |');
  });

  it('log-likelihood: same predictions from " A".." D", micro average headline', async () => {
    const r = await evaluateMmlu(model, data, { shots: 1 });
    expect(r.samples.map((s) => s.output)).toEqual(['A', 'B', 'B', 'B']);
    expect(r.metrics.headline).toEqual({ metric: 'acc', value: 0.5 });
    expect(r.metrics.acc_stderr).toBeCloseTo(Math.sqrt(1 / 3) / 2, 15);
  });

  it('limit applies per subject; letter logits need nextTokenLogprobs', async () => {
    const r = await evaluateMmlu(model, data, { shots: 0, limit: 1 });
    expect(r.samples.map((s) => s.doc)).toEqual([0, 3]);
    const { nextTokenLogprobs: _, ...noLetters } = model;
    await expect(evaluateMmlu(noLetters, data, { scoring: 'letter-logits' })).rejects.toThrow(
      /nextTokenLogprobs/,
    );
  });
});
