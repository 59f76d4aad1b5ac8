import { describe, expect, it } from 'vitest';
import {
  type EvalModel,
  evaluateGsm8k,
  extractFlexible,
  extractStrict,
  type GenerationRequest,
  type Gsm8kDoc,
  gsm8kCotPrompt,
  gsm8kExactMatch,
  gsm8kFewshotIndices,
  gsm8kPrompt,
  gsm8kTarget,
  loadGsm8k,
  normalizeGsm8k,
  PyRandom,
} from '../src/index.js';
import { dataPath, hasData, hasPython, python } from './data.js';

const withData = hasData('gsm8k');
const withPython = hasPython();

// lm-eval gsm8k-cot.yaml, rendered by hand: doc_to_text "Q: {{question}}\nA:", target_delimiter " ",
// fewshot_delimiter "\n\n", the 8 samples in their order.
const COT_PREFIX =
  'Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?\n' +
  'A: There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.\n\n' +
  'Q: If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?\n' +
  'A: There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.\n\n' +
  'Q: Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?\n' +
  'A: Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.\n\n' +
  'Q: Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?\n' +
  'A: Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.\n\n' +
  'Q: Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?\n' +
  'A: Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.\n\n' +
  'Q: There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?\n' +
  'A: There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.\n\n' +
  'Q: Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?\n' +
  'A: Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.\n\n' +
  'Q: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\n' +
  'A: Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.\n\n';

describe('GSM8K extraction and normalisation (lm-eval semantics)', () => {
  it('strict takes the first "#### N", flexible the last number', () => {
    expect(extractStrict('x #### 1,234\n#### 5', 'gsm8k')).toBe('1,234');
    expect(extractStrict('no answer here', 'gsm8k')).toBe('[invalid]');
    expect(extractStrict('So 3 + 4 = 7. The answer is 7.\n\nQ:', 'gsm8k-cot')).toBe('7');
    expect(extractStrict('The answer is 18', 'gsm8k-cot')).toBe('1'); // lm-eval's trailing "." eats the last digit
    expect(extractStrict('The answer is 18.', 'gsm8k-cot')).toBe('18');
    expect(extractStrict('The answer is -3.5!', 'gsm8k-cot')).toBe('-3.5');
    expect(extractFlexible('She pays $1,200. Then 5 more')).toBe('5');
    expect(extractFlexible('She pays $1,200.')).toBe('$1,200.');
    expect(extractFlexible('none')).toBe('[invalid]');
  });

  it('normalises like exact_match with regexes_to_ignore and ignore_case', () => {
    expect(normalizeGsm8k('$1,200.')).toBe('1200');
    expect(normalizeGsm8k('Work.\n#### 72')).toBe('72');
    expect(normalizeGsm8k('5.\n')).toBe('5\n'); // Python's `$` also matches before a final newline
    expect(gsm8kExactMatch('$1,200.', 'She spends... #### 1200')).toBe(true);
    expect(gsm8kExactMatch('12', '#### 120')).toBe(false);
  });
});

describe.skipIf(!withData)('GSM8K on the real data', () => {
  it('scores 100% on the dataset reference answers (strict and flexible, all variants)', async () => {
    for (const split of ['test', 'train']) {
      const docs = await loadGsm8k(dataPath('gsm8k', `${split}.jsonl`));
      expect(docs.length).toBe(split === 'test' ? 1319 : 7473);
      for (const doc of docs) {
        const target = gsm8kTarget(doc, 'gsm8k');
        expect(gsm8kExactMatch(extractStrict(doc.answer, 'gsm8k'), target)).toBe(true);
        expect(gsm8kExactMatch(extractFlexible(doc.answer), target)).toBe(true);
        // The CoT variants compare with the number after "####"; a reference rewritten in the
        // exemplars' style ("… The answer is N.") must extract to it too.
        const cotTarget = gsm8kTarget(doc, 'gsm8k-cot');
        const cotStyle = doc.answer.replace(/\n#### (.*)$/, ' The answer is $1.');
        expect(gsm8kExactMatch(extractStrict(cotStyle, 'gsm8k-cot'), cotTarget)).toBe(true);
        expect(gsm8kExactMatch(extractFlexible(cotStyle), cotTarget)).toBe(true);
        expect(gsm8kExactMatch(extractFlexible(doc.answer), cotTarget)).toBe(true);
      }
    }
  });

  it.skipIf(!withPython)(
    'builds lm-eval gsm8k 5-shot prompts byte for byte (shots from random.Random(1234))',
    async () => {
      // Expected prompts rendered in Python from the raw files: lm-eval draws sample(train, 5) per test
      // document, in order, from one Random(1234); "Question: {q}\nAnswer:" + " " + answer + "\n\n".
      const expected = python(
        `
import json, random
test = [json.loads(l) for l in open(${JSON.stringify(dataPath('gsm8k', 'test.jsonl'))})]
train = [json.loads(l) for l in open(${JSON.stringify(dataPath('gsm8k', 'train.jsonl'))})]
rnd = random.Random(1234)
out = {}
for i in range(12):
    shots = rnd.sample(train, 5)
    ctx = ''.join('Question: ' + d['question'] + '\\nAnswer:' + ' ' + d['answer'] + '\\n\\n' for d in shots)
    if i in (0, 3, 11):
        out[i] = ctx + 'Question: ' + test[i]['question'] + '\\nAnswer:'
print(json.dumps(out))
`,
      ) as Record<string, string>;
      const test = await loadGsm8k(dataPath('gsm8k', 'test.jsonl'));
      const train = await loadGsm8k(dataPath('gsm8k', 'train.jsonl'));
      const draws = gsm8kFewshotIndices(train.length, 12, 5);
      for (const i of [0, 3, 11]) {
        expect(
          gsm8kPrompt(
            test[i].question,
            draws[i].map((j) => train[j]),
          ),
        ).toBe(expected[String(i)]);
      }
      // The same prompts come out of a limited, sharded run: document i's shots depend only on i.
      const seen: string[] = [];
      const spy: EvalModel = {
        name: 'spy',
        generate: async (reqs) => {
          seen.push(...reqs.map((r) => r.prompt));
          return reqs.map(() => '');
        },
        loglikelihood: async () => [],
      };
      await evaluateGsm8k(spy, { test, train }, { limit: 12, shard: { index: 1, count: 2 } });
      expect(seen[1]).toBe(expected['3']);
      expect(seen[5]).toBe(expected['11']);
    },
  );

  it('builds lm-eval gsm8k_cot prompts byte for byte; gsm8k-paper uses the same prompt', async () => {
    const test = await loadGsm8k(dataPath('gsm8k', 'test.jsonl'));
    for (const i of [0, 1318]) {
      expect(gsm8kCotPrompt(test[i].question)).toBe(`${COT_PREFIX}Q: ${test[i].question}\nA:`);
    }
    const prompts: Record<string, string> = {};
    for (const variant of ['gsm8k-cot', 'gsm8k-paper'] as const) {
      const spy: EvalModel = {
        name: 'spy',
        generate: async (reqs) => {
          prompts[variant] = reqs[0].prompt;
          return reqs.map(() => ' The answer is 1.');
        },
        loglikelihood: async () => [],
      };
      const r = await evaluateGsm8k(spy, { test }, { variant, limit: 1 });
      expect(r.settings.shots).toBe(8);
    }
    expect(prompts['gsm8k-cot']).toBe(`${COT_PREFIX}Q: ${test[0].question}\nA:`);
    expect(prompts['gsm8k-paper']).toBe(prompts['gsm8k-cot']);
  });
});

describe('GSM8K harness', () => {
  const docs: Gsm8kDoc[] = [
    { question: 'What is 2+2?', answer: '2+2=<<2+2=4>>4\n#### 4' },
    { question: 'What is 10*100?', answer: '10*100=<<10*100=1000>>1000\n#### 1,000' },
  ];

  it('passes stop strings and cuts outputs at the first one', async () => {
    const requests: GenerationRequest[] = [];
    const model: EvalModel = {
      name: 'echo',
      generate: async (reqs) => {
        requests.push(...reqs);
        return reqs.map((r) =>
          r.prompt.includes('2+2') ? ' It is 4.\n#### 4\n\nQuestion: more' : ' #### 999',
        );
      },
      loglikelihood: async () => [],
    };
    const r = await evaluateGsm8k(model, { test: docs, train: docs }, { shots: 1 });
    expect(requests[0].stop).toEqual(['Question:', '</s>', '<|im_end|>']);
    expect(requests[0].maxNewTokens).toBe(256);
    expect(r.samples[0].output).toBe(' It is 4.\n#### 4\n\n');
    expect(r.samples[0].verdict).toEqual({ 'strict-match': true, 'flexible-extract': true });
    expect(r.samples[1].verdict['strict-match']).toBe(false);
    expect(r.metrics.exact_match['strict-match']).toBe(0.5);
    expect(r.metrics.headline.metric).toBe('exact_match,strict-match');
  });

  it('rejects impossible shot counts', async () => {
    const model: EvalModel = {
      name: 'm',
      generate: async (r) => r.map(() => ''),
      loglikelihood: async () => [],
    };
    await expect(evaluateGsm8k(model, { test: docs }, {})).rejects.toThrow(/train/);
    await expect(evaluateGsm8k(model, { test: docs }, { variant: 'gsm8k-cot', shots: 9 })).rejects.toThrow(
      /0\.\.8/,
    );
  });

  it('PyRandom reproduces CPython random.sample', () => {
    // Values printed by CPython 3.11: random.Random(1234).sample(range(7473), 5), twice, then sample(range(10), 5).
    const r = new PyRandom(1234);
    expect(r.sampleIndices(7473, 5)).toEqual([6374, 3610, 957, 61, 742]);
    expect(r.sampleIndices(7473, 5)).toEqual([7462, 6610, 4769, 286, 5501]);
    expect(r.sampleIndices(10, 5)).toEqual([1, 9, 5, 8, 0]);
  });
});
