/**
 * MMLU-Pro (up to 10 options, A..J), two ways:
 * - `cot` (lm-eval's `mmlu_pro`): per-category description asking for "the answer is (X)", the first
 *   K validation questions of the same category with their chain of thought as shots, greedy
 *   generation until "Question:". Scored by lm-eval's extraction (`answer is \(?([A-J])\)?`, first
 *   match) and, alongside, by TIGER-Lab's cascade (that regex, then "[aA]nswer: X", then the last
 *   standalone letter). TIGER-Lab guesses at random when nothing is found; we count that as wrong.
 *   --limit applies per category, as lm-eval runs one subtask per category.
 * - `loglikelihood` (lm-eval's `leaderboard_mmlu_pro`): no description, the first K validation
 *   questions of any category as shots, log-likelihood of " A", " B", … per option; one task, so
 *   --limit is global.
 */

import { basename } from 'node:path';
import { argmax } from '@sharelora/models';
import { fileIn, locate, pick } from '../data-files.js';
import { EvalConfigError, EvalDataError } from '../errors.js';
import { describe, parseJsonl, readText, stringField } from '../io.js';
import type { EvalModel } from '../model.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import {
  applyShard,
  batched,
  batchSizeOf,
  firstN,
  generateForDocs,
  limitPerGroup,
  meanWithStderr,
  type RunOptions,
  reporter,
  truncateAtStop,
  validateLimit,
} from '../run.js';
import { pyStrip } from '../text.js';
import type { EvalTaskDefinition } from './definition.js';
import { MAX_NEW_TOKENS, SEED, SHOTS, scoringOption, TEMPERATURE } from './options.js';

/**
 * The 14 categories of MMLU-Pro, as its `category` field spells them. Informational: the harness
 * takes the categories from the data, and `cot` scoring draws each question's shots from its own
 * category.
 */
export const MMLU_PRO_CATEGORIES: readonly string[] = [
  'biology',
  'business',
  'chemistry',
  'computer science',
  'economics',
  'engineering',
  'health',
  'history',
  'law',
  'math',
  'other',
  'philosophy',
  'physics',
  'psychology',
];

const LETTERS = 'ABCDEFGHIJ';

/** One MMLU-Pro question, as {@link loadMmluPro} reads it (the dataset's fields in camel case). */
export interface MmluProDoc {
  questionId: number;
  question: string;
  /** The choices, lettered A.. in order (1 to 10 of them). */
  options: string[];
  /** Correct letter. */
  answer: string;
  /** Index of the correct option (the letter's position in A..J). */
  answerIndex: number;
  /** Chain of thought of validation questions, starting "A: Let's think step by step."; empty in test. */
  cotContent: string;
  category: string;
  /** The source the question was taken from (the dataset's `src`); empty when absent. */
  src: string;
}

/** Reads MMLU-Pro JSONL (the dataset's own fields: question_id, options, answer, answer_index, cot_content, ...). */
export async function loadMmluPro(file: string): Promise<MmluProDoc[]> {
  const records = parseJsonl(await readText(file), file);
  if (records.length === 0) throw new EvalDataError(file, null, 'no MMLU-Pro records');
  return records.map((rec) => {
    const v = rec.value;
    const options = v.options;
    if (
      !Array.isArray(options) ||
      options.length < 1 ||
      options.length > LETTERS.length ||
      !options.every((o) => typeof o === 'string')
    ) {
      throw new EvalDataError(file, rec.line, `"options" must be 1..10 strings, got ${describe(options)}`);
    }
    const answerIndex = v.answer_index;
    if (
      !Number.isInteger(answerIndex) ||
      (answerIndex as number) < 0 ||
      (answerIndex as number) >= options.length
    ) {
      throw new EvalDataError(
        file,
        rec.line,
        `"answer_index" must index the options, got ${JSON.stringify(answerIndex)}`,
      );
    }
    const answer = stringField(rec, 'answer', file);
    if (answer !== LETTERS[answerIndex as number]) {
      throw new EvalDataError(
        file,
        rec.line,
        `"answer" ${JSON.stringify(answer)} disagrees with answer_index ${answerIndex}`,
      );
    }
    if (!Number.isInteger(v.question_id))
      throw new EvalDataError(file, rec.line, '"question_id" must be an integer');
    return {
      questionId: v.question_id as number,
      question: stringField(rec, 'question', file),
      options: options as string[],
      answer,
      answerIndex: answerIndex as number,
      cotContent: typeof v.cot_content === 'string' ? v.cot_content : '',
      category: stringField(rec, 'category', file),
      src: typeof v.src === 'string' ? v.src : '',
    };
  });
}

/**
 * lm-eval's `mmlu_pro` description for a category: what the questions are about, and the request to
 * finish with "the answer is (X)". Begins every `cot` prompt ({@link mmluProCotPrompt}).
 */
export function mmluProCotDescription(category: string): string {
  return (
    `The following are multiple choice questions (with answers) about ${category}. Think step by step and then ` +
    'finish your answer with "the answer is (X)" where X is the correct letter choice.\n'
  );
}

/** lm-eval's CoT question block, ending in "Answer: Let's think step by step." (options stripped, at most 10). */
export function mmluProCotQuestion(doc: MmluProDoc): string {
  let out = `Question:\n${doc.question}\nOptions:\n`;
  doc.options.slice(0, LETTERS.length).forEach((opt, i) => {
    out += `${LETTERS[i]}. ${pyStrip(opt)}\n`;
  });
  return `${out}Answer: Let's think step by step.`;
}

/** A shot's answer: its chain of thought without the "A: Let's think step by step. " lead-in. */
export function mmluProCotTarget(doc: MmluProDoc): string {
  return doc.cotContent.replaceAll("A: Let's think step by step. ", '');
}

/**
 * The full `cot` prompt of lm-eval's `mmlu_pro`: the category's description, each shot's question
 * followed by its chain of thought, then the question ending in "Answer: Let's think step by
 * step.".
 */
export function mmluProCotPrompt(doc: MmluProDoc, shots: readonly MmluProDoc[]): string {
  let out = mmluProCotDescription(doc.category);
  for (const s of shots) out += `${mmluProCotQuestion(s)} ${mmluProCotTarget(s)}\n\n`;
  return out + mmluProCotQuestion(doc);
}

/** lm-eval `leaderboard_mmlu_pro` question: raw question, every option as "X. option", "Answer:". */
export function mmluProMcQuestion(doc: MmluProDoc): string {
  let out = `${doc.question}\n`;
  doc.options.forEach((opt, i) => {
    out += `${LETTERS[i]}. ${opt}\n`;
  });
  return `${out}Answer:`;
}

/**
 * The full `loglikelihood` prompt of lm-eval's `leaderboard_mmlu_pro`: each shot's question
 * answered with " <letter>", then the question ending in "Answer:". No description.
 */
export function mmluProMcPrompt(doc: MmluProDoc, shots: readonly MmluProDoc[]): string {
  let out = '';
  for (const s of shots) out += `${mmluProMcQuestion(s)} ${s.answer}\n\n`;
  return out + mmluProMcQuestion(doc);
}

/** lm-eval's filter: first "answer is (X)" / "answer is X", else "[invalid]". */
export function extractMmluProLmEval(output: string): string {
  const m = /answer is \(?([ABCDEFGHIJ])\)?/.exec(output);
  return m ? m[1] : '[invalid]';
}

/**
 * Which step of TIGER-Lab's cascade ({@link extractMmluProCascade}) found the letter: "answer is
 * (X)", "answer: X", or the last standalone letter A..J.
 */
export type MmluProRule = 'answer-is' | 'answer-colon' | 'last-letter';

// Python's \b in str patterns is Unicode-aware; these lookarounds reproduce it for a single letter.
const STANDALONE_LETTER = /(?<![\p{L}\p{N}_])[A-J](?![\p{L}\p{N}_])/gu;

/** TIGER-Lab's cascade: "answer is (X)", then the first line's last "answer: X", then the last standalone letter. */
export function extractMmluProCascade(output: string): { letter: string | null; rule: MmluProRule | null } {
  const first = /answer is \(?([A-J])\)?/.exec(output);
  if (first) return { letter: first[1], rule: 'answer-is' };
  const second = /[^\n]*[aA]nswer:\s*([A-J])/.exec(output);
  if (second) return { letter: second[1], rule: 'answer-colon' };
  let last: string | null = null;
  for (const m of output.matchAll(STANDALONE_LETTER)) last = m[0];
  return last ? { letter: last, rule: 'last-letter' } : { letter: null, rule: null };
}

/**
 * How an MMLU-Pro answer is chosen (see the module description): `cot`, generate a chain of thought
 * and extract the letter (lm-eval's `mmlu_pro`); `loglikelihood`, the most likely " X" after the
 * prompt (lm-eval's `leaderboard_mmlu_pro`).
 */
export type MmluProScoring = 'cot' | 'loglikelihood';
const MMLU_PRO_SCORINGS: readonly MmluProScoring[] = ['cot', 'loglikelihood'];
const DEFAULT_SCORING: MmluProScoring = 'cot';
const DEFAULT_SHOTS = 5;
/** lm-eval's max_gen_toks for the chain of thought. */
const DEFAULT_MAX_NEW_TOKENS = 2048;

/** `--mmlu-pro-scoring`: chain-of-thought generation or the loglikelihood of each option. */
const MMLU_PRO_SCORING = scoringOption('mmlu-pro-scoring', MMLU_PRO_SCORINGS);

export interface MmluProSample extends ResultSample {
  category: string;
  prompt: string;
  target: string;
  /** Generated chain of thought (cot) or the predicted letter (loglikelihood). */
  output: string;
  /** cot: lm-eval's and the cascade's extractions. */
  extracted?: { 'custom-extract': string; cascade: string | null; rule: MmluProRule | null };
  /** loglikelihood: log-likelihood per option. */
  scores?: number[];
  /** cot: per extraction; loglikelihood: a single boolean under "acc". */
  verdict: Record<string, boolean>;
}

/**
 * The metrics of an MMLU-Pro result: accuracy in [0, 1] and its standard error per extraction (or
 * `acc` for loglikelihood scoring), per-category accuracies and the headline (lm-eval's extraction,
 * or `acc`); `n` is the number of questions scored.
 */
export interface MmluProMetrics {
  n: number;
  /** cot: `custom-extract` (lm-eval) and `cascade` (TIGER-Lab); loglikelihood: `acc`. */
  accuracy: Record<string, number>;
  accuracy_stderr: Record<string, number>;
  /** cot only: outputs where the cascade found no letter. */
  no_answer?: number;
  categories: Record<string, { n: number } & Record<string, number>>;
  headline: { metric: string; value: number };
}

/**
 * Options of {@link evaluateMmluPro}: scoring, shots and generation settings, with those of
 * {@link RunOptions}. `limit` applies per category under `cot` and globally under `loglikelihood`,
 * as in lm-eval; under loglikelihood scoring a model call takes 10 × batchSize requests (one per
 * option).
 */
export interface MmluProOptions extends RunOptions {
  /** Default `cot`. */
  scoring?: MmluProScoring;
  /** Validation shots (default 5). */
  shots?: number;
  /** cot: default 2048 (lm-eval's max_gen_toks). */
  maxNewTokens?: number;
  /** cot: 0 (default) is greedy. */
  temperature?: number;
  /** cot: base seed of sampled generation (default 0). */
  seed?: number;
}

/**
 * Computes an MMLU-Pro result's metrics from its samples' verdicts; which accuracies depends on
 * `settings.scoring`. Used by {@link evaluateMmluPro} and to recompute the metrics of merged
 * shards.
 */
export function mmluProMetrics(samples: MmluProSample[], settings: ResultSettings): MmluProMetrics {
  const keys = settings.scoring === 'loglikelihood' ? ['acc'] : ['custom-extract', 'cascade'];
  const accuracy: Record<string, number> = {};
  const accuracy_stderr: Record<string, number> = {};
  for (const k of keys) {
    const m = meanWithStderr(samples.map((s) => (s.verdict[k] ? 1 : 0)));
    accuracy[k] = m.mean;
    accuracy_stderr[k] = m.stderr;
  }
  const categories: MmluProMetrics['categories'] = {};
  for (const cat of [...new Set(samples.map((s) => s.category))].sort()) {
    const own = samples.filter((s) => s.category === cat);
    const row: { n: number } & Record<string, number> = { n: own.length };
    for (const k of keys) row[k] = meanWithStderr(own.map((s) => (s.verdict[k] ? 1 : 0))).mean;
    categories[cat] = row;
  }
  const metrics: MmluProMetrics = {
    n: samples.length,
    accuracy,
    accuracy_stderr,
    categories,
    headline: { metric: `accuracy,${keys[0]}`, value: accuracy[keys[0]] },
  };
  if (settings.scoring !== 'loglikelihood')
    metrics.no_answer = samples.filter((s) => !s.extracted?.cascade).length;
  return metrics;
}

/** The per-category accuracies as a Markdown table (counts as integers, accuracies to 4 places). */
export function mmluProTables(metrics: MmluProMetrics): string {
  const cats = metrics.categories;
  const cols = [...new Set(Object.values(cats).flatMap((r) => Object.keys(r)))];
  const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(4));
  return [
    `| category | ${cols.join(' | ')} |`,
    `| --- |${cols.map(() => ' ---: |').join('')}`,
    ...Object.entries(cats).map(([name, r]) => `| ${name} | ${cols.map((c) => fmt(r[c])).join(' | ')} |`),
  ].join('\n');
}

/**
 * Evaluates a model on MMLU-Pro: builds each selected test question's prompt with shots from the
 * first validation questions (of its category for `cot`), then generates and extracts the letter,
 * or scores each option's letter by log-likelihood. Throws an {@link EvalConfigError} for an
 * unknown scoring or more shots than the validation split (or category) holds.
 */
export async function evaluateMmluPro(
  model: EvalModel,
  data: { test: MmluProDoc[]; validation: MmluProDoc[] },
  options: MmluProOptions = {},
): Promise<EvalResult<MmluProSample, MmluProMetrics>> {
  const scoring = options.scoring ?? DEFAULT_SCORING;
  if (!MMLU_PRO_SCORINGS.includes(scoring)) {
    throw new EvalConfigError(`unknown MMLU-Pro scoring "${scoring}" (${MMLU_PRO_SCORINGS.join(' or ')})`);
  }
  const shots = options.shots ?? DEFAULT_SHOTS;
  const limit = validateLimit(options.limit);
  const selected =
    scoring === 'cot'
      ? limitPerGroup(
          data.test.map((d) => d.category),
          limit,
        )
      : firstN(data.test.length, limit);
  const mine = applyShard(selected, options.shard);
  const shotsFor = (category: string | null): MmluProDoc[] => {
    const pool = category === null ? data.validation : data.validation.filter((d) => d.category === category);
    if (!Number.isInteger(shots) || shots < 0 || shots > pool.length) {
      throw new EvalConfigError(
        `${shots} shots requested but the validation split has ${pool.length} questions${category === null ? '' : ` in category "${category}"`}`,
      );
    }
    return pool.slice(0, shots);
  };
  const batchSize = batchSizeOf(options);
  let samples: MmluProSample[];
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    scoring,
    shots,
  };

  if (scoring === 'cot') {
    const stop = ['Question:'];
    const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    const temperature = options.temperature ?? 0;
    const seed = options.seed ?? 0;
    Object.assign(settings, { stop, maxNewTokens, temperature, seed });
    const prompts = mine.map((i) => mmluProCotPrompt(data.test[i], shotsFor(data.test[i].category)));
    const outputs = await generateForDocs(
      model,
      'mmlu-pro',
      prompts.map((prompt, k) => ({ prompt, doc: mine[k] })),
      { stop, maxNewTokens, temperature, seed },
      options,
    );

    samples = mine.map((i, k) => {
      const doc = data.test[i];
      const output = truncateAtStop(outputs[k], stop);
      const lmEval = extractMmluProLmEval(output);
      const cascade = extractMmluProCascade(output);
      return {
        doc: i,
        category: doc.category,
        prompt: prompts[k],
        target: doc.answer,
        output,
        extracted: { 'custom-extract': lmEval, cascade: cascade.letter, rule: cascade.rule },
        verdict: { 'custom-extract': lmEval === doc.answer, cascade: cascade.letter === doc.answer },
      };
    });
  } else {
    const shotDocs = shotsFor(null);
    const prompts = mine.map((i) => mmluProMcPrompt(data.test[i], shotDocs));
    const requests = mine.flatMap((i, k) =>
      data.test[i].options.map((_, j) => ({ context: prompts[k], continuation: ` ${LETTERS[j]}` })),
    );
    const results = await batched(requests, (batch) => model.loglikelihood(batch), {
      batchSize: batchSize * 10,
      report: reporter('mmlu-pro', 'loglikelihood', options),
      what: `${model.name}.loglikelihood`,
    });
    let offset = 0;
    samples = mine.map((i, k) => {
      const doc = data.test[i];
      const scores = results.slice(offset, offset + doc.options.length).map((r) => r.logprob);
      offset += doc.options.length;
      const pred = argmax(scores);
      return {
        doc: i,
        category: doc.category,
        prompt: prompts[k],
        target: doc.answer,
        output: LETTERS[pred],
        scores,
        verdict: { acc: pred === doc.answerIndex },
      };
    });
  }
  return {
    model: model.name,
    adapter: options.adapter ?? null,
    task: 'mmlu-pro',
    settings,
    metrics: mmluProMetrics(samples, settings),
    samples,
  };
}

/** MMLU-Pro: {@link evaluateMmluPro} on `mmlu_pro/` (a test and a validation JSONL). */
export const MMLU_PRO_TASK: EvalTaskDefinition = {
  names: ['mmlu-pro'],
  summary: '5 validation shots per category; chain-of-thought generation or --mmlu-pro-scoring loglikelihood',
  order: 30,
  model: 'causal-lm',
  options: [
    { option: SHOTS, default: DEFAULT_SHOTS },
    { option: MMLU_PRO_SCORING, default: DEFAULT_SCORING },
    { option: MAX_NEW_TOKENS, default: DEFAULT_MAX_NEW_TOKENS },
    { option: TEMPERATURE, default: 0 },
    { option: SEED, default: 0 },
  ],
  sampleFields: [
    ['category', 'string'],
    ['verdict', 'object'],
  ],
  metrics: (samples, settings) => mmluProMetrics(samples as MmluProSample[], settings),
  limitPer: 'category',
  groupTables: { keys: ['categories'], render: (m) => mmluProTables(m as MmluProMetrics) },
  async run(model, spec) {
    const testFile = await fileIn(
      spec.data,
      ['mmlu_pro_test.jsonl', 'test.jsonl', /^(?!.*validation).*test.*\.jsonl(\.gz)?$/],
      'MMLU-Pro test',
    );
    const validationFile = await pick(
      (await locate(spec.data)).dir,
      ['mmlu_pro_validation.jsonl', 'validation.jsonl', /validation.*\.jsonl(\.gz)?$/],
      'MMLU-Pro validation',
    );
    if (basename(validationFile) === basename(testFile))
      throw new EvalDataError(testFile, null, 'the test and validation files must differ');
    return evaluateMmluPro(
      model,
      { test: await loadMmluPro(testFile), validation: await loadMmluPro(validationFile) },
      spec as MmluProOptions,
    );
  },
};

export default MMLU_PRO_TASK;
