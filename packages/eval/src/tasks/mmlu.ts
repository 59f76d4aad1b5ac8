/**
 * MMLU, two conventions over the same prompts (lm-eval's `mmlu`: subject header, the first K dev
 * questions of the subject as shots, "…\nAnswer:"):
 * - `loglikelihood` (lm-eval): the log-likelihood of each continuation " A".." D"; the reported
 *   accuracy is the micro average over questions (lm-eval's groups weight subjects by size).
 * - `letter-logits` (QLoRA / ShareLoRA, what the paper reports): the log-probability of each letter
 *   as the single next token; the reported accuracy is the macro average over subjects.
 * Both averages, per-subject and per-category (lm-eval's STEM / humanities / social sciences / other)
 * tables are always computed.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { argmax } from '@sharelora/models';
import { locate } from '../data-files.js';
import { EvalConfigError, EvalDataError, EvalModelError } from '../errors.js';
import { parseCsv, readText } from '../io.js';
import type { EvalModel } from '../model.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import {
  applyShard,
  batched,
  batchSizeOf,
  limitPerGroup,
  meanWithStderr,
  type RunOptions,
  reporter,
  validateLimit,
} from '../run.js';
import { pyStrip } from '../text.js';
import type { EvalTaskDefinition } from './definition.js';
import { SHOTS, scoringOption } from './options.js';

/**
 * lm-evaluation-harness's four MMLU groups; every subject belongs to one ({@link MMLU_SUBJECTS}).
 */
export type MmluCategory = 'stem' | 'humanities' | 'social_sciences' | 'other';
/** The categories in the order lm-eval and the result tables list them. */
export const MMLU_CATEGORY_ORDER: readonly MmluCategory[] = [
  'stem',
  'humanities',
  'social_sciences',
  'other',
];

/** The 57 subjects and the lm-eval group each belongs to. */
export const MMLU_SUBJECTS: Readonly<Record<string, MmluCategory>> = {
  abstract_algebra: 'stem',
  anatomy: 'stem',
  astronomy: 'stem',
  business_ethics: 'other',
  clinical_knowledge: 'other',
  college_biology: 'stem',
  college_chemistry: 'stem',
  college_computer_science: 'stem',
  college_mathematics: 'stem',
  college_medicine: 'other',
  college_physics: 'stem',
  computer_security: 'stem',
  conceptual_physics: 'stem',
  econometrics: 'social_sciences',
  electrical_engineering: 'stem',
  elementary_mathematics: 'stem',
  formal_logic: 'humanities',
  global_facts: 'other',
  high_school_biology: 'stem',
  high_school_chemistry: 'stem',
  high_school_computer_science: 'stem',
  high_school_european_history: 'humanities',
  high_school_geography: 'social_sciences',
  high_school_government_and_politics: 'social_sciences',
  high_school_macroeconomics: 'social_sciences',
  high_school_mathematics: 'stem',
  high_school_microeconomics: 'social_sciences',
  high_school_physics: 'stem',
  high_school_psychology: 'social_sciences',
  high_school_statistics: 'stem',
  high_school_us_history: 'humanities',
  high_school_world_history: 'humanities',
  human_aging: 'other',
  human_sexuality: 'social_sciences',
  international_law: 'humanities',
  jurisprudence: 'humanities',
  logical_fallacies: 'humanities',
  machine_learning: 'stem',
  management: 'other',
  marketing: 'other',
  medical_genetics: 'other',
  miscellaneous: 'other',
  moral_disputes: 'humanities',
  moral_scenarios: 'humanities',
  nutrition: 'other',
  philosophy: 'humanities',
  prehistory: 'humanities',
  professional_accounting: 'other',
  professional_law: 'humanities',
  professional_medicine: 'other',
  professional_psychology: 'social_sciences',
  public_relations: 'social_sciences',
  security_studies: 'social_sciences',
  sociology: 'social_sciences',
  us_foreign_policy: 'social_sciences',
  virology: 'other',
  world_religions: 'humanities',
};

const LETTERS = ['A', 'B', 'C', 'D'] as const;
/** Header row of the copy in ../shared/data (the original CSVs have none). */
const COPY_HEADER = ['question', 'choice0', 'choice1', 'choice2', 'choice3', 'answer'];

/** One MMLU question with its four choices, as {@link loadMmluCsv} reads it. */
export interface MmluDoc {
  /** The subject's file name stem, e.g. `college_physics`: a key of {@link MMLU_SUBJECTS}. */
  subject: string;
  question: string;
  choices: [string, string, string, string];
  /** Index of the correct choice, 0..3. */
  answer: number;
}

/**
 * The MMLU data {@link evaluateMmlu} takes, as {@link loadMmlu} reads it: the test questions of
 * every subject and each subject's dev questions, which the shots come from.
 */
export interface MmluData {
  /** Test questions ordered by subject (alphabetically), then file order: the document order. */
  test: MmluDoc[];
  /** Few-shot pool per subject, in file order. */
  dev: Record<string, MmluDoc[]>;
}

/**
 * Reads one subject's CSV in either layout: the original (no header; question, A, B, C, D, answer
 * letter) or the copy with a `question,choice0..3,answer` header and 0-based answer indices.
 */
export async function loadMmluCsv(file: string, subject: string): Promise<MmluDoc[]> {
  const records = parseCsv(await readText(file), file);
  const hasHeader = records.length > 0 && records[0].value.join(',') === COPY_HEADER.join(',');
  const rows = hasHeader ? records.slice(1) : records;
  return rows.map(({ value, line }) => {
    if (value.length !== 6) throw new EvalDataError(file, line, `expected 6 columns, found ${value.length}`);
    const raw = value[5].trim();
    const answer = hasHeader
      ? ['0', '1', '2', '3'].indexOf(raw)
      : (LETTERS as readonly string[]).indexOf(raw);
    if (answer < 0) {
      throw new EvalDataError(
        file,
        line,
        `answer must be ${hasHeader ? 'an index 0-3' : 'a letter A-D'}, got ${JSON.stringify(value[5])}`,
      );
    }
    return { subject, question: value[0], choices: [value[1], value[2], value[3], value[4]], answer };
  });
}

/**
 * Loads `<dir>/test/<subject>_test.csv` and `<dir>/dev/<subject>_dev.csv` for every subject found in
 * `test/` (or the given subset).
 */
export async function loadMmlu(dir: string, options: { subjects?: string[] } = {}): Promise<MmluData> {
  let subjects = options.subjects;
  if (!subjects) {
    let names: string[];
    try {
      names = await readdir(join(dir, 'test'));
    } catch {
      throw new EvalDataError(
        join(dir, 'test'),
        null,
        'MMLU test folder not found (expected <dir>/test/<subject>_test.csv)',
      );
    }
    subjects = names.filter((n) => n.endsWith('_test.csv')).map((n) => n.slice(0, -'_test.csv'.length));
    if (subjects.length === 0)
      throw new EvalDataError(join(dir, 'test'), null, 'no <subject>_test.csv files');
  }
  subjects = [...subjects].sort();
  for (const s of subjects) {
    if (!(s in MMLU_SUBJECTS)) {
      throw new EvalDataError(join(dir, 'test', `${s}_test.csv`), null, `unknown MMLU subject "${s}"`);
    }
  }
  const test: MmluDoc[] = [];
  const dev: Record<string, MmluDoc[]> = {};
  for (const s of subjects) {
    test.push(...(await loadMmluCsv(join(dir, 'test', `${s}_test.csv`), s)));
    dev[s] = await loadMmluCsv(join(dir, 'dev', `${s}_dev.csv`), s);
  }
  return { test, dev };
}

/** lm-eval's description: underscores of the subject become spaces. */
export function mmluDescription(subject: string): string {
  return `The following are multiple choice questions (with answers) about ${subject.replaceAll('_', ' ')}.\n\n`;
}

/** lm-eval's doc_to_text: the stripped question, the four lettered choices, "Answer:". */
export function mmluQuestion(doc: MmluDoc): string {
  const c = doc.choices;
  return `${pyStrip(doc.question)}\nA. ${c[0]}\nB. ${c[1]}\nC. ${c[2]}\nD. ${c[3]}\nAnswer:`;
}

/** Full few-shot prompt: description, each shot answered with " <letter>\n\n", then the question. */
export function mmluPrompt(doc: MmluDoc, shots: readonly MmluDoc[]): string {
  let out = mmluDescription(doc.subject);
  for (const s of shots) out += `${mmluQuestion(s)} ${LETTERS[s.answer]}\n\n`;
  return out + mmluQuestion(doc);
}

/**
 * How an MMLU answer is chosen (see the module description): `loglikelihood`, lm-eval's
 * log-likelihood of " A".." D" after the prompt, headline the micro average; `letter-logits`,
 * QLoRA's and ShareLoRA's next-token log-probability of each letter
 * ({@link EvalModel.nextTokenLogprobs}), headline the macro average over subjects.
 */
export type MmluScoring = 'loglikelihood' | 'letter-logits';
const MMLU_SCORINGS: readonly MmluScoring[] = ['loglikelihood', 'letter-logits'];
const DEFAULT_SCORING: MmluScoring = 'loglikelihood';
const DEFAULT_SHOTS = 5;

/** `--mmlu-scoring`: lm-eval's loglikelihood of each answer or the QLoRA / ShareLoRA letter logits. */
const MMLU_SCORING = scoringOption('mmlu-scoring', MMLU_SCORINGS);

export interface MmluSample extends ResultSample {
  subject: string;
  prompt: string;
  /** Correct letter. */
  target: string;
  /** Score of A..D: continuation log-likelihoods or next-token log-probabilities. */
  scores: number[];
  /** Predicted letter (first maximum). */
  output: string;
  verdict: boolean;
}

/**
 * One subject's row of {@link MmluMetrics.subjects}: its category, questions scored and accuracy.
 */
export interface MmluSubjectRow {
  category: MmluCategory;
  n: number;
  acc: number;
}

/**
 * One category's row of {@link MmluMetrics.categories}: subjects and questions scored, and both
 * averages.
 */
export interface MmluCategoryRow {
  subjects: number;
  n: number;
  /** Micro average (lm-eval's size-weighted group score). */
  acc: number;
  /** Mean of the category's subject accuracies. */
  acc_macro: number;
}

/**
 * The metrics of an MMLU result: both averages over all questions scored (`n`), the headline the
 * scoring picks, and per-subject and per-category tables ({@link mmluTables} prints them).
 */
export interface MmluMetrics {
  n: number;
  /** Micro average over questions (lm-eval). */
  acc: number;
  /** Standard error of the micro average, as lm-eval reports it. */
  acc_stderr: number;
  /** Macro average over subjects (QLoRA / ShareLoRA). */
  acc_macro: number;
  headline: { metric: string; value: number };
  subjects: Record<string, MmluSubjectRow>;
  /** Only the categories that have scored subjects. */
  categories: Partial<Record<MmluCategory, MmluCategoryRow>>;
}

/**
 * Options of {@link evaluateMmlu}: scoring, shots and letter candidates, with those of
 * {@link RunOptions}. `limit` applies per subject, as in lm-eval; `batchSize` counts questions:
 * under loglikelihood scoring a model call takes 4 × batchSize requests.
 */
export interface MmluOptions extends RunOptions {
  /** Default `loglikelihood`. */
  scoring?: MmluScoring;
  /** Dev shots per prompt (default 5). */
  shots?: number;
  /**
   * Next-token candidates for letter-logit scoring, in A..D order. Default " A".." D": the letter as
   * it follows "Answer:" (SentencePiece's "▁A", GPT-2's "ĠA"). QLoRA takes tokenizer("A")'s token,
   * which is "▁A" for LLaMA-1/2 but "A" for tiktoken-style vocabularies such as Llama-3's; pass
   * ["A","B","C","D"] to reproduce it there.
   */
  letterCandidates?: string[];
}

/** Micro/macro averages and the per-subject and per-category tables. */
export function mmluMetrics(samples: MmluSample[], settings: ResultSettings): MmluMetrics {
  const bySubject = new Map<string, number[]>();
  for (const s of samples) {
    const list = bySubject.get(s.subject) ?? [];
    list.push(s.verdict ? 1 : 0);
    bySubject.set(s.subject, list);
  }
  const subjects: Record<string, MmluSubjectRow> = {};
  for (const name of [...bySubject.keys()].sort()) {
    const v = bySubject.get(name) as number[];
    subjects[name] = { category: MMLU_SUBJECTS[name], n: v.length, acc: meanWithStderr(v).mean };
  }
  const categories: Partial<Record<MmluCategory, MmluCategoryRow>> = {};
  for (const cat of MMLU_CATEGORY_ORDER) {
    const names = Object.keys(subjects).filter((s) => subjects[s].category === cat);
    if (names.length === 0) continue;
    const all = names.flatMap((s) => bySubject.get(s) as number[]);
    categories[cat] = {
      subjects: names.length,
      n: all.length,
      acc: meanWithStderr(all).mean,
      acc_macro: meanWithStderr(names.map((s) => subjects[s].acc)).mean,
    };
  }
  const micro = meanWithStderr(samples.map((s) => (s.verdict ? 1 : 0)));
  const macro = meanWithStderr(Object.values(subjects).map((r) => r.acc)).mean;
  const headline =
    settings.scoring === 'letter-logits'
      ? { metric: 'acc_macro', value: macro }
      : { metric: 'acc', value: micro.mean };
  return {
    n: samples.length,
    acc: micro.mean,
    acc_stderr: micro.stderr,
    acc_macro: macro,
    headline,
    subjects,
    categories,
  };
}

/** Per-category then per-subject accuracy as Markdown tables. */
export function mmluTables(metrics: MmluMetrics): string {
  const pct = (x: number) => (100 * x).toFixed(2);
  const lines = [
    '| category | subjects | n | acc (micro) | acc (macro) |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const cat of MMLU_CATEGORY_ORDER) {
    const r = metrics.categories[cat];
    if (r)
      lines.push(
        `| ${cat.replace('_', ' ')} | ${r.subjects} | ${r.n} | ${pct(r.acc)} | ${pct(r.acc_macro)} |`,
      );
  }
  lines.push(
    `| **all** | ${Object.keys(metrics.subjects).length} | ${metrics.n} | ${pct(metrics.acc)} | ${pct(metrics.acc_macro)} |`,
    '',
    '| subject | category | n | acc |',
    '| --- | --- | ---: | ---: |',
  );
  for (const [name, r] of Object.entries(metrics.subjects)) {
    lines.push(`| ${name} | ${r.category.replace('_', ' ')} | ${r.n} | ${pct(r.acc)} |`);
  }
  return lines.join('\n');
}

/**
 * Evaluates a model on MMLU: builds each selected question's few-shot prompt from its subject's
 * first dev questions, scores the four answers the chosen way, and picks the best (the first on
 * ties). Throws an {@link EvalConfigError} for an unknown scoring, a subject with fewer dev
 * questions than `shots`, or letter-logit scoring on a model without `nextTokenLogprobs`; an
 * {@link EvalModelError} when that method does not return four scores per prompt.
 */
export async function evaluateMmlu(
  model: EvalModel,
  data: MmluData,
  options: MmluOptions = {},
): Promise<EvalResult<MmluSample, MmluMetrics>> {
  const scoring = options.scoring ?? DEFAULT_SCORING;
  if (!MMLU_SCORINGS.includes(scoring)) {
    throw new EvalConfigError(`unknown MMLU scoring "${scoring}" (${MMLU_SCORINGS.join(' or ')})`);
  }
  const shots = options.shots ?? DEFAULT_SHOTS;
  const candidates = options.letterCandidates ?? LETTERS.map((l) => ` ${l}`);
  if (candidates.length !== 4) throw new EvalConfigError('letterCandidates must hold 4 strings (A..D)');
  if (scoring === 'letter-logits' && !model.nextTokenLogprobs) {
    throw new EvalConfigError(
      `letter-logit scoring needs nextTokenLogprobs(), which model ${model.name} lacks`,
    );
  }
  const limit = validateLimit(options.limit);
  const selected = limitPerGroup(
    data.test.map((d) => d.subject),
    limit,
  );
  const mine = applyShard(selected, options.shard);
  const prompts = mine.map((i) => {
    const doc = data.test[i];
    const pool = data.dev[doc.subject] ?? [];
    if (!Number.isInteger(shots) || shots < 0 || shots > pool.length) {
      throw new EvalConfigError(
        `${shots} shots requested but subject ${doc.subject} has ${pool.length} dev questions`,
      );
    }
    return mmluPrompt(doc, pool.slice(0, shots));
  });
  const batchSize = batchSizeOf(options);
  let scores: number[][];
  if (scoring === 'loglikelihood') {
    const requests = prompts.flatMap((context) => LETTERS.map((l) => ({ context, continuation: ` ${l}` })));
    const results = await batched(requests, (batch) => model.loglikelihood(batch), {
      batchSize: batchSize * 4,
      report: reporter('mmlu', 'loglikelihood', options),
      what: `${model.name}.loglikelihood`,
    });
    scores = prompts.map((_, k) => results.slice(4 * k, 4 * k + 4).map((r) => r.logprob));
  } else {
    const next = model.nextTokenLogprobs?.bind(model) as NonNullable<EvalModel['nextTokenLogprobs']>;
    scores = await batched(prompts, (batch) => next(batch, candidates), {
      batchSize,
      report: reporter('mmlu', 'next-token', options),
      what: `${model.name}.nextTokenLogprobs`,
    });
    for (const row of scores) {
      if (!Array.isArray(row) || row.length !== 4) {
        throw new EvalModelError(`${model.name}.nextTokenLogprobs must return 4 scores per prompt`);
      }
    }
  }
  const samples: MmluSample[] = mine.map((i, k) => {
    const doc = data.test[i];
    const pred = argmax(scores[k]);
    return {
      doc: i,
      subject: doc.subject,
      prompt: prompts[k],
      target: LETTERS[doc.answer],
      scores: scores[k],
      output: LETTERS[pred],
      verdict: pred === doc.answer,
    };
  });
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    scoring,
    shots,
    letterCandidates: scoring === 'letter-logits' ? candidates : null,
  };
  return {
    model: model.name,
    adapter: options.adapter ?? null,
    task: 'mmlu',
    settings,
    metrics: mmluMetrics(samples, settings),
    samples,
  };
}

/** MMLU: {@link evaluateMmlu} on `mmlu/` (test/ and dev/). */
export const MMLU_TASK: EvalTaskDefinition = {
  names: ['mmlu'],
  summary:
    '57 subjects, 5 dev shots each; --mmlu-scoring loglikelihood (lm-eval, micro average) or letter-logits (QLoRA / ShareLoRA, macro average over subjects)',
  order: 20,
  model: 'causal-lm',
  options: [
    { option: SHOTS, default: DEFAULT_SHOTS },
    { option: MMLU_SCORING, default: DEFAULT_SCORING },
  ],
  sampleFields: [
    ['subject', 'string'],
    ['verdict', 'boolean'],
  ],
  metrics: (samples, settings) => mmluMetrics(samples as MmluSample[], settings),
  limitPer: 'subject',
  groupTables: { keys: ['subjects', 'categories'], render: (m) => mmluTables(m as MmluMetrics) },
  async run(model, spec) {
    const { dir, file } = await locate(spec.data);
    if (file) throw new EvalDataError(file, null, 'MMLU data must be a folder holding test/ and dev/');
    return evaluateMmlu(model, await loadMmlu(dir), spec as MmluOptions);
  },
};

export default MMLU_TASK;
