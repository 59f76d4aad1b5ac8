/**
 * GSM8K in three prompt conventions, scored like lm-evaluation-harness (strict and flexible answer
 * extraction, then exact match after lm-eval's normalisation):
 * - `gsm8k`: lm-eval's `gsm8k` task. "Question: …\nAnswer: <full worked answer>" shots, 5 by default,
 *   drawn from the train split by CPython's `random.Random(1234).sample`, one draw per test document
 *   in document order on one generator (so document i's shots depend only on i, not on --limit or
 *   --shard). Strict extraction reads "#### N".
 * - `gsm8k-cot`: lm-eval's `gsm8k_cot`: the 8 fixed chain-of-thought exemplars of Wei et al. (2022)
 *   as "Q: …\nA: …"; strict extraction reads "The answer is N".
 * - `gsm8k-paper`: the ShareLoRA paper's "GSM8K 8-shot CoT". The paper publishes neither prompt nor
 *   scorer, so we use the same 8 exemplars and format as `gsm8k-cot` (identical prompts) and make
 *   flexible-extract the headline: a model fine-tuned on GSM8K's train split ends with "#### N" rather
 *   than the exemplars' "The answer is N", and flexible extraction (the last number) reads both.
 */

import { fileIn, locate, pick } from '../data-files.js';
import { EvalConfigError, EvalDataError } from '../errors.js';
import { parseJsonl, readText, stringField } from '../io.js';
import type { EvalModel } from '../model.js';
import { PyRandom } from '../pyrandom.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import {
  applyShard,
  firstN,
  generateForDocs,
  meanWithStderr,
  type RunOptions,
  truncateAtStop,
  validateLimit,
} from '../run.js';
import { pyStrip } from '../text.js';
import type { EvalTaskDefinition } from './definition.js';
import { MAX_NEW_TOKENS, SEED, SHOTS, TEMPERATURE } from './options.js';

/** One GSM8K problem, as the dataset's JSONL holds it. */
export interface Gsm8kDoc {
  question: string;
  /** Worked solution ending in a "#### N" line. */
  answer: string;
}

/**
 * The GSM8K prompt and scoring conventions (see the module description): `gsm8k` (lm-eval's
 * few-shot from the train split), `gsm8k-cot` (lm-eval's 8 chain-of-thought exemplars) and
 * `gsm8k-paper` (the same prompts, flexible extraction as the headline).
 */
export type Gsm8kVariant = 'gsm8k' | 'gsm8k-cot' | 'gsm8k-paper';
/** Every {@link Gsm8kVariant}, e.g. for a command line's choices. */
export const GSM8K_VARIANTS: readonly Gsm8kVariant[] = ['gsm8k', 'gsm8k-cot', 'gsm8k-paper'];

/** Shots by default: lm-eval's 5 drawn from train for gsm8k, all 8 exemplars for the CoT variants. */
const DEFAULT_SHOTS: Readonly<Record<Gsm8kVariant, number>> = { gsm8k: 5, 'gsm8k-cot': 8, 'gsm8k-paper': 8 };
const DEFAULT_MAX_NEW_TOKENS = 256;

/**
 * A fixed chain-of-thought shot: a question and the worked answer shown after it, ending in "The
 * answer is N.".
 */
export interface Gsm8kExemplar {
  question: string;
  target: string;
}

/** The 8 chain-of-thought exemplars of lm-eval's gsm8k-cot.yaml (Wei et al., 2022), in order. */
export const GSM8K_COT_EXEMPLARS: readonly Gsm8kExemplar[] = [
  {
    question:
      'There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?',
    target:
      'There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.',
  },
  {
    question:
      'If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?',
    target: 'There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.',
  },
  {
    question:
      'Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?',
    target:
      'Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.',
  },
  {
    question:
      'Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?',
    target:
      'Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.',
  },
  {
    question:
      'Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?',
    target:
      'Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.',
  },
  {
    question:
      'There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?',
    target:
      'There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.',
  },
  {
    question:
      'Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?',
    target:
      'Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.',
  },
  {
    question: 'Olivia has $23. She bought five bagels for $3 each. How much money does she have left?',
    target:
      'Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.',
  },
];

/** lm-eval's default few-shot seed (`fewshot_random_seed`). */
export const LM_EVAL_FEWSHOT_SEED = 1234;

/** Generation stop strings (lm-eval's `until`) per variant. */
export function gsm8kStop(variant: Gsm8kVariant): string[] {
  return variant === 'gsm8k' ? ['Question:', '</s>', '<|im_end|>'] : ['Q:', '</s>', '<|im_end|>'];
}

/**
 * Reads a GSM8K JSONL file (gzipped when it ends in .gz) into documents. Throws an
 * {@link EvalDataError} naming the file and line when it has no records, a record lacks `question`
 * or `answer`, or an answer has no final "#### N".
 */
export async function loadGsm8k(file: string): Promise<Gsm8kDoc[]> {
  const records = parseJsonl(await readText(file), file);
  if (records.length === 0) throw new EvalDataError(file, null, 'no GSM8K records');
  return records.map((rec) => {
    const doc = { question: stringField(rec, 'question', file), answer: stringField(rec, 'answer', file) };
    if (!doc.answer.includes('####')) {
      throw new EvalDataError(file, rec.line, 'answer has no final "#### N" line');
    }
    return doc;
  });
}

/**
 * Train-split indices of the shots of test documents 0..count-1 under lm-eval's `gsm8k` sampling:
 * one generator seeded once, `sample(train, shots)` per document in order.
 */
export function gsm8kFewshotIndices(
  trainSize: number,
  count: number,
  shots: number,
  seed = LM_EVAL_FEWSHOT_SEED,
): number[][] {
  const rng = new PyRandom(seed);
  return Array.from({ length: count }, () => rng.sampleIndices(trainSize, shots));
}

/** lm-eval `gsm8k` prompt: shots as "Question: q\nAnswer: a\n\n", then "Question: q\nAnswer:". */
export function gsm8kPrompt(question: string, shots: readonly Gsm8kDoc[]): string {
  let out = '';
  for (const s of shots) out += `Question: ${s.question}\nAnswer: ${s.answer}\n\n`;
  return `${out}Question: ${question}\nAnswer:`;
}

/** lm-eval `gsm8k_cot` prompt: exemplars as "Q: q\nA: target\n\n", then "Q: q\nA:". */
export function gsm8kCotPrompt(
  question: string,
  exemplars: readonly Gsm8kExemplar[] = GSM8K_COT_EXEMPLARS,
): string {
  let out = '';
  for (const e of exemplars) out += `Q: ${e.question}\nA: ${e.target}\n\n`;
  return `${out}Q: ${question}\nA:`;
}

/** The fallback of lm-eval's regex filter when nothing matches. */
export const INVALID = '[invalid]';

/**
 * Strict extraction: the first "#### N" (`gsm8k`) or "The answer is N." (`gsm8k-cot`, `gsm8k-paper`).
 * In the latter pattern the final "." of lm-eval's regex is any character but a newline.
 */
export function extractStrict(output: string, variant: Gsm8kVariant): string {
  const re = variant === 'gsm8k' ? /#### (-?[0-9.,]+)/ : /The answer is (-?[0-9.,]+)[^\n]/;
  const m = re.exec(output);
  return m ? m[1].trim() : INVALID;
}

/** Flexible extraction: the last number-like match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`, first non-empty group. */
export function extractFlexible(output: string): string {
  let last: RegExpExecArray | null = null;
  for (const m of output.matchAll(/(-?[$0-9.,]{2,})|(-?[0-9]+)/g)) last = m;
  if (!last) return INVALID;
  return (last[1] || last[2] || INVALID).trim();
}

/**
 * lm-eval's exact_match normalisation for GSM8K: remove "," and "$", everything up to the last
 * "#### ", a final "." (Python's `$` also matches before a trailing newline), then lower-case.
 */
export function normalizeGsm8k(text: string): string {
  return text
    .replace(/,/g, '')
    .replace(/\$/g, '')
    .replace(/[\s\S]*#### /g, '')
    .replace(/\.(?=\n?$)/g, '')
    .toLowerCase();
}

/** Reference string each variant compares against: the whole answer (`gsm8k`) or the text after "####". */
export function gsm8kTarget(doc: Gsm8kDoc, variant: Gsm8kVariant): string {
  if (variant === 'gsm8k') return doc.answer;
  const parts = doc.answer.split('####');
  return pyStrip(parts[parts.length - 1]);
}

/**
 * Whether an extracted answer equals the target after lm-eval's GSM8K normalisation
 * ({@link normalizeGsm8k}: no commas or dollar signs, no trailing period, lower case), so "$1,000."
 * matches "1000".
 */
export function gsm8kExactMatch(prediction: string, target: string): boolean {
  return normalizeGsm8k(prediction) === normalizeGsm8k(target);
}

/**
 * lm-eval's two answer extractions, each scored separately: `strict-match` reads the variant's
 * answer format ("#### N" or "The answer is N"), `flexible-extract` the last number in the output.
 */
export type Gsm8kFilter = 'strict-match' | 'flexible-extract';

export interface Gsm8kSample extends ResultSample {
  prompt: string;
  output: string;
  target: string;
  extracted: Record<Gsm8kFilter, string>;
  verdict: Record<Gsm8kFilter, boolean>;
}

/**
 * The metrics of a GSM8K result, per extraction: exact match in [0, 1] and its standard error, as
 * lm-eval reports them; `n` is the number of documents scored.
 */
export interface Gsm8kMetrics {
  n: number;
  exact_match: Record<Gsm8kFilter, number>;
  exact_match_stderr: Record<Gsm8kFilter, number>;
  /** The metric the variant quotes: strict-match, or flexible-extract for `gsm8k-paper`. */
  headline: { metric: string; value: number };
}

/**
 * Options of {@link evaluateGsm8k}: the variant, shots, and generation settings, with those of
 * {@link RunOptions}.
 */
export interface Gsm8kOptions extends RunOptions {
  /** Default `gsm8k`. */
  variant?: Gsm8kVariant;
  /** Shots: default 5 for `gsm8k`, 8 (at most 8) for the CoT variants. */
  shots?: number;
  /** Seed of the few-shot sampler (`gsm8k` only); lm-eval's default 1234. */
  fewshotSeed?: number;
  /** Default 256 (lm-eval's max_gen_toks). */
  maxNewTokens?: number;
  /** 0 (default): greedy. */
  temperature?: number;
  /**
   * Base seed of sampled generation (default 0); each document's request seed derives from it and
   * the document.
   */
  seed?: number;
}

/** Scores one model output against one document. */
export function scoreGsm8k(output: string, doc: Gsm8kDoc, variant: Gsm8kVariant) {
  const target = gsm8kTarget(doc, variant);
  const extracted = {
    'strict-match': extractStrict(output, variant),
    'flexible-extract': extractFlexible(output),
  };
  const verdict = {
    'strict-match': gsm8kExactMatch(extracted['strict-match'], target),
    'flexible-extract': gsm8kExactMatch(extracted['flexible-extract'], target),
  };
  return { target, extracted, verdict };
}

/**
 * Computes a GSM8K result's metrics from its samples' verdicts; the headline follows
 * `settings.variant`. Used by {@link evaluateGsm8k} and to recompute the metrics of merged shards.
 */
export function gsm8kMetrics(samples: Gsm8kSample[], settings: ResultSettings): Gsm8kMetrics {
  const strict = meanWithStderr(samples.map((s) => (s.verdict['strict-match'] ? 1 : 0)));
  const flexible = meanWithStderr(samples.map((s) => (s.verdict['flexible-extract'] ? 1 : 0)));
  const headline: Gsm8kFilter = settings.variant === 'gsm8k-paper' ? 'flexible-extract' : 'strict-match';
  const exact_match = { 'strict-match': strict.mean, 'flexible-extract': flexible.mean };
  return {
    n: samples.length,
    exact_match,
    exact_match_stderr: { 'strict-match': strict.stderr, 'flexible-extract': flexible.stderr },
    headline: { metric: `exact_match,${headline}`, value: exact_match[headline] },
  };
}

/**
 * Evaluates a model on GSM8K: builds each selected test document's prompt for the variant,
 * generates (greedy by default) up to the stop strings, and scores both extractions against the
 * reference answer. `data.train` is needed by the `gsm8k` variant with shots. Throws an
 * {@link EvalConfigError} for an unknown variant or a shot count the variant cannot give.
 */
export async function evaluateGsm8k(
  model: EvalModel,
  data: { test: Gsm8kDoc[]; train?: Gsm8kDoc[] },
  options: Gsm8kOptions = {},
): Promise<EvalResult<Gsm8kSample, Gsm8kMetrics>> {
  const variant = options.variant ?? 'gsm8k';
  if (!GSM8K_VARIANTS.includes(variant)) throw new EvalConfigError(`unknown GSM8K variant "${variant}"`);
  const shots = options.shots ?? DEFAULT_SHOTS[variant];
  const maxShots = variant === 'gsm8k' ? (data.train?.length ?? 0) : GSM8K_COT_EXEMPLARS.length;
  if (!Number.isInteger(shots) || shots < 0 || shots > maxShots) {
    throw new EvalConfigError(
      variant === 'gsm8k' && !data.train
        ? 'the gsm8k variant draws its shots from the train split: pass data.train'
        : `${variant} supports 0..${maxShots} shots, got ${shots}`,
    );
  }
  const fewshotSeed = options.fewshotSeed ?? LM_EVAL_FEWSHOT_SEED;
  const limit = validateLimit(options.limit);
  const selected = firstN(data.test.length, limit);
  const mine = applyShard(selected, options.shard);
  const stop = gsm8kStop(variant);
  const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const temperature = options.temperature ?? 0;
  const seed = options.seed ?? 0;

  const draws =
    variant === 'gsm8k' && shots > 0 && mine.length > 0
      ? gsm8kFewshotIndices(data.train?.length ?? 0, mine[mine.length - 1] + 1, shots, fewshotSeed)
      : [];
  const prompts = mine.map((i) =>
    variant === 'gsm8k'
      ? gsm8kPrompt(
          data.test[i].question,
          shots > 0 ? draws[i].map((j) => (data.train as Gsm8kDoc[])[j]) : [],
        )
      : gsm8kCotPrompt(data.test[i].question, GSM8K_COT_EXEMPLARS.slice(0, shots)),
  );
  const outputs = await generateForDocs(
    model,
    variant,
    prompts.map((prompt, k) => ({ prompt, doc: mine[k] })),
    { stop, maxNewTokens, temperature, seed },
    options,
  );

  const samples: Gsm8kSample[] = mine.map((i, k) => {
    const output = truncateAtStop(outputs[k], stop);
    return { doc: i, prompt: prompts[k], output, ...scoreGsm8k(output, data.test[i], variant) };
  });
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    variant,
    shots,
    fewshotSeed: variant === 'gsm8k' ? fewshotSeed : null,
    stop,
    maxNewTokens,
    temperature,
    seed,
  };
  return {
    model: model.name,
    adapter: options.adapter ?? null,
    task: variant,
    settings,
    metrics: gsm8kMetrics(samples, settings),
    samples,
  };
}

/** GSM8K's three variants: {@link evaluateGsm8k} on `gsm8k/` (test.jsonl, train.jsonl for the shots). */
export const GSM8K_TASK: EvalTaskDefinition = {
  names: GSM8K_VARIANTS,
  summary:
    'grade-school math: lm-eval gsm8k (5 shots from train, strict "#### N"), gsm8k-cot (the 8 Wei et al. exemplars, "The answer is N."), gsm8k-paper (the ShareLoRA paper\'s 8-shot CoT, headline flexible extraction)',
  order: 10,
  model: 'causal-lm',
  options: [
    { option: SHOTS, default: { byName: DEFAULT_SHOTS } },
    { option: MAX_NEW_TOKENS, default: DEFAULT_MAX_NEW_TOKENS },
    { option: TEMPERATURE, default: 0 },
    { option: SEED, default: 0 },
  ],
  sampleFields: [['verdict', 'object']],
  metrics: (samples, settings) => gsm8kMetrics(samples as Gsm8kSample[], settings),
  async run(model, spec) {
    const variant = spec.task as Gsm8kVariant;
    const test = await loadGsm8k(await fileIn(spec.data, ['test.jsonl', 'test.jsonl.gz'], 'GSM8K test'));
    const needsTrain = variant === 'gsm8k' && ((spec.shots as number | undefined) ?? DEFAULT_SHOTS.gsm8k) > 0;
    const train = needsTrain
      ? await loadGsm8k(
          await pick((await locate(spec.data)).dir, ['train.jsonl', 'train.jsonl.gz'], 'GSM8K train'),
        )
      : undefined;
    return evaluateGsm8k(model, { test, train }, { ...(spec as Gsm8kOptions), variant });
  },
};

export default GSM8K_TASK;
