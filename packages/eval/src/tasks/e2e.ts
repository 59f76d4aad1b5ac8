/**
 * E2E NLG (restaurant descriptions from meaning representations, the task of the E2E NLG
 * challenge): one output per unique MR of the test set, in order of first appearance, generated
 * with beam search (10 beams by default, as the ShareLoRA and LoRA papers' GPT-2 runs), scored
 * against all of that MR's references with the challenge's metrics: BLEU and NIST as mteval-v13a,
 * ROUGE-L and CIDEr-D as the COCO caption code, and an approximate METEOR (see nlg/meteor.ts).
 * A system's outputs can be scored from a file instead, one line per MR in that order.
 */

import { E2E_PROMPT as SHARED_E2E_PROMPT } from '@sharelora/data';
import { fileIn } from '../data-files.js';
import { EvalConfigError, EvalDataError } from '../errors.js';
import { readText } from '../io.js';
import type { EvalModel } from '../model.js';
import { ciderD, cocoTokenize, rougeL } from '../nlg/coco.js';
import { type E2eInstance, groupE2eReferences, parseE2eRows } from '../nlg/e2e-data.js';
import { meteorApprox } from '../nlg/meteor.js';
import { mtevalScores } from '../nlg/mteval.js';
import type { EvalResult, ResultSample, ResultSettings } from '../results.js';
import {
  applyShard,
  firstN,
  generateForDocs,
  type RunOptions,
  truncateAtStop,
  validateLimit,
} from '../run.js';
import type { EvalTaskDefinition } from './definition.js';
import { MAX_NEW_TOKENS } from './options.js';

/** The paper's beam width. */
const DEFAULT_NUM_BEAMS = 10;
const DEFAULT_MAX_NEW_TOKENS = 64;

/**
 * The E2E NLG prompt (the e2e task use it): a meaning representation, then its description after a
 * space. One definition, in @sharelora/data, for training and evaluation alike.
 */
export const E2E_PROMPT: string = SHARED_E2E_PROMPT;

/** {@link E2E_PROMPT} filled with an MR. */
export const e2ePrompt = (mr: string) => E2E_PROMPT.replace('{mr}', mr);

/** Generation ends at a line break (and at the model's end-of-sequence token). */
const STOP = ['\n'];

/** Options of {@link evaluateE2e}. */
export interface E2eOptions extends RunOptions {
  /** Beams of the beam search (default 10; 1 = greedy). */
  numBeams?: number;
  /** Most tokens per description (default 64). */
  maxNewTokens?: number;
}

/** One MR's evaluation: its prompt, the model's output and the references it is scored against. */
export interface E2eSample extends ResultSample {
  doc: number;
  mr: string;
  prompt: string | null;
  output: string;
  references: string[];
}

/** Corpus-level E2E metrics of a result (its samples together). */
export interface E2eMetrics {
  n: number;
  bleu: number;
  nist: number;
  /** METEOR without its paraphrase and synonym modules: an approximation (see nlg/meteor.ts). */
  meteor_approx: number;
  rouge_l: number;
  cider: number;
  headline: { metric: 'bleu'; value: number };
}

/** The MRs of an E2E file (test or dev set, `mr,ref` rows) with all their references, in order of first appearance. */
export async function loadE2e(file: string): Promise<E2eInstance[]> {
  let rows: Array<[string, string]>;
  try {
    rows = parseE2eRows(await readText(file), file);
  } catch (e) {
    if (e instanceof EvalDataError) throw e;
    throw new EvalDataError(file, null, (e as Error).message);
  }
  if (rows.length === 0) throw new EvalDataError(file, null, 'no rows');
  return groupE2eReferences(rows);
}

/** The metrics of a set of samples, each scored against all its references. */
export function e2eMetrics(samples: readonly E2eSample[]): E2eMetrics {
  if (samples.length === 0) throw new EvalConfigError('E2E metrics need at least one sample');
  const outputs = samples.map((s) => s.output);
  const references = samples.map((s) => s.references);
  const { bleu, nist } = mtevalScores(outputs, references);
  const cand = outputs.map(cocoTokenize);
  const refs = references.map((r) => r.map(cocoTokenize));
  const rouge = cand.reduce((sum, c, i) => sum + rougeL(c, refs[i]), 0) / cand.length;
  return {
    n: samples.length,
    bleu,
    nist,
    meteor_approx: meteorApprox(outputs, references),
    rouge_l: rouge,
    cider: ciderD(cand, refs).score,
    headline: { metric: 'bleu', value: bleu },
  };
}

function result(
  model: string,
  samples: E2eSample[],
  settings: ResultSettings,
  adapter: string | null,
): EvalResult<E2eSample, E2eMetrics> {
  return { model, adapter, task: 'e2e', settings, metrics: e2eMetrics(samples), samples };
}

/** Generates a description of each selected MR (beam search by default) and scores them. */
export async function evaluateE2e(
  model: EvalModel,
  instances: readonly E2eInstance[],
  options: E2eOptions = {},
): Promise<EvalResult<E2eSample, E2eMetrics>> {
  const numBeams = options.numBeams ?? DEFAULT_NUM_BEAMS;
  if (!Number.isInteger(numBeams) || numBeams < 1)
    throw new EvalConfigError(`numBeams must be a positive integer, got ${numBeams}`);
  const limit = validateLimit(options.limit);
  const selected = firstN(instances.length, limit);
  const mine = applyShard(selected, options.shard);
  if (mine.length === 0) throw new EvalConfigError('no MRs selected (check --limit and --shard)');
  const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const prompts = mine.map((i) => e2ePrompt(instances[i].mr));
  const outputs = await generateForDocs(
    model,
    'e2e',
    prompts.map((prompt, k) => ({ prompt, doc: mine[k] })),
    { stop: STOP, maxNewTokens, temperature: 0, seed: 0, numBeams },
    options,
  );
  const samples = mine.map((i, k) => ({
    doc: i,
    mr: instances[i].mr,
    prompt: prompts[k],
    output: truncateAtStop(outputs[k], STOP).trim(),
    references: instances[i].references,
  }));
  const settings: ResultSettings = {
    limit,
    shard: options.shard ?? null,
    documents: selected.length,
    prompt: E2E_PROMPT,
    numBeams,
    maxNewTokens,
    stop: STOP,
  };
  return result(model.name, samples, settings, options.adapter ?? null);
}

/**
 * A system's outputs from a file, one per MR in the order of `instances`: plain text (one line
 * each), or a TSV/CSV whose first column is the MR (as the challenge's system outputs are), checked
 * against the MRs.
 */
export async function readE2ePredictions(file: string, instances: readonly E2eInstance[]): Promise<string[]> {
  const text = await readText(file);
  const tabular = /\.(tsv|csv)$/i.test(file);
  let outputs: string[];
  if (tabular) {
    let rows: Array<[string, string]>;
    try {
      rows = parseE2eRows(text, file);
    } catch (e) {
      throw new EvalDataError(file, null, (e as Error).message);
    }
    rows.forEach(([mr], i) => {
      if (i < instances.length && mr !== instances[i].mr)
        throw new EvalDataError(
          file,
          i + 2,
          `MR ${JSON.stringify(mr)} is not MR ${i + 1} of the data, ${JSON.stringify(instances[i].mr)}`,
        );
    });
    outputs = rows.map((r) => r[1]);
  } else
    outputs = text
      .replace(/\r?\n$/, '')
      .split(/\r?\n/)
      .map((l) => l.trim());
  if (outputs.length !== instances.length)
    throw new EvalDataError(
      file,
      null,
      `${outputs.length} outputs for ${instances.length} MRs (one per MR, in order of first appearance)`,
    );
  return outputs;
}

/** Scores a system's outputs (one per MR of `instances`) without a model; `limit` keeps the first N. */
export function scoreE2ePredictions(
  instances: readonly E2eInstance[],
  outputs: readonly string[],
  options: { model: string; limit?: number },
): EvalResult<E2eSample, E2eMetrics> {
  const limit = validateLimit(options.limit);
  const selected = firstN(instances.length, limit);
  const samples = selected.map((i) => ({
    doc: i,
    mr: instances[i].mr,
    prompt: null,
    output: outputs[i],
    references: instances[i].references,
  }));
  const settings: ResultSettings = {
    limit,
    shard: null,
    documents: selected.length,
    predictions: options.model,
  };
  return result(options.model, samples, settings, null);
}

/** The references file: the path itself, or the test set with references in the folder. */
const referencesFile = (data: string) => fileIn(data, ['testset_w_refs.csv'], 'E2E test set with references');

/** E2E NLG: {@link evaluateE2e} on `e2e_nlg/`, or a system's outputs scored without a model. */
export const E2E_TASK: EvalTaskDefinition = {
  names: ['e2e'],
  summary:
    "E2E NLG: a description of each unique test MR (beam search, 10 beams), scored against all its references: BLEU, NIST (mteval-v13a), ROUGE-L, CIDEr (COCO) as the challenge's scripts compute them, and an approximate METEOR",
  order: 50,
  model: 'causal-lm',
  options: [
    {
      option: {
        flag: 'num-beams',
        key: 'numBeams',
        arg: 'N',
        help: 'beams of the beam search, 1 = greedy',
        kind: 'count',
      },
      default: DEFAULT_NUM_BEAMS,
    },
    { option: MAX_NEW_TOKENS, default: DEFAULT_MAX_NEW_TOKENS },
  ],
  sampleFields: [
    ['output', 'string'],
    ['references', 'array'],
  ],
  metrics: (samples) => e2eMetrics(samples as E2eSample[]),
  async run(model, spec) {
    return evaluateE2e(model, await loadE2e(await referencesFile(spec.data)), spec as E2eOptions);
  },
  fileScoring: {
    option: {
      flag: 'predictions',
      key: 'file',
      arg: 'FILE',
      help: "score a system's outputs instead of generating (one line per unique MR in order of first appearance, or the challenge's MR<TAB>output TSV); no --model",
      kind: 'path',
    },
    keeps: [],
    async run(spec) {
      const instances = await loadE2e(await referencesFile(spec.data));
      const outputs = await readE2ePredictions(spec.file, instances);
      return scoreE2ePredictions(instances, outputs, { model: spec.file, limit: spec.limit });
    },
  },
};

export default E2E_TASK;
