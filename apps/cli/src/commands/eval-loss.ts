/**
 * `sharelora eval --task loss`: a causal LM's mean negative log-likelihood per target token and its
 * perplexity on any dataset `train` reads, with the same prompt masking and truncation, and how many
 * targets greedy decoding reproduces exactly, so a model can be measured on one's own data before
 * and after fine-tuning.
 */
import type { EvalResult, ResultSample, TaskOptionUse } from '@sharelora/eval';
import { type CausalLM, loadTokenizer, readConfig } from '@sharelora/models';
import {
  describeReport,
  evaluateExamples,
  greedyMatches,
  padIdOf,
  readDataset,
  type TokenizeReport,
  textTokenizerOf,
  tokenizeDataset,
} from '@sharelora/train';
import { asUsage, UsageError } from '../cli-error.js';
import { type CliFormat, dataSpec, dataStep, maxLengthFor } from '../data-formats.js';

/** The language-model formats (a classifier's loss is measured by the GLUE tasks' metrics). */
export const LOSS_FORMATS = ['text', 'instruction', 'prompt-completion', 'gsm8k'] as const;

/**
 * `--task loss` is the CLI's own (it reads data as `train` does), described like the registry's
 * tasks so that help and flag checks treat it the same way.
 */
export const LOSS_TASK = {
  names: ['loss'],
  summary:
    "a causal LM's mean negative log-likelihood per target token (nats), perplexity and exact match (the share of targets greedy decoding reproduces token for token) on any file `sharelora train` reads (--format), with its prompt masking and truncation: your own data, before (no --adapter) and after fine-tuning",
  options: [
    {
      option: {
        flag: 'format',
        key: 'format',
        arg: 'FORMAT',
        help: "how the file is read, as train's --format (required)",
        kind: { oneOf: LOSS_FORMATS },
      },
    },
    {
      option: {
        flag: 'max-length',
        key: 'maxLength',
        arg: 'N',
        help: "tokens per example, longer ones cut (default the model's positions)",
        kind: 'count',
      },
    },
    {
      option: {
        flag: 'train-on-source',
        key: 'trainOnSource',
        arg: '',
        help: "count the prompt's tokens too (as train's --train-on-source)",
        kind: 'switch',
      },
    },
  ] satisfies TaskOptionUse[],
};

export interface LossSample extends ResultSample {
  doc: number;
  /** Tokens the loss is computed on (prompt tokens are masked unless trainOnSource). */
  targetTokens: number;
  /** Mean negative log-likelihood of those tokens, nats/token. */
  loss: number;
  /** Whether greedy decoding from the prompt gives exactly these target tokens. */
  exactMatch: boolean;
}

export interface LossMetrics {
  headline: { metric: 'perplexity'; value: number };
  /** Mean over all target tokens of all examples (not over examples), in lossUnit. */
  loss: number;
  lossUnit: 'nats/token';
  perplexity: number;
  /**
   * Fraction of examples whose whole target is the greedy continuation of its prompt (every target
   * token the most likely one: lm-evaluation-harness's is_greedy).
   */
  exactMatch: number;
  targetTokens: number;
  examples: number;
  /** Examples cut to maxLength, as `train` reports them. */
  truncated: number;
}

export interface LossEvalSpec {
  model: string;
  adapter: string | null;
  data: string;
  format: CliFormat;
  maxLength?: number;
  trainOnSource: boolean;
  limit?: number;
}

/** Reads and tokenizes the data before any weights are loaded; bad data is a usage error. */
export async function prepareLossData(spec: LossEvalSpec) {
  const { read, spec: format } = dataSpec(spec.format);
  const ds = await dataStep(() => readDataset(spec.data, read));
  const records = spec.limit === undefined ? ds.records : ds.records.slice(0, spec.limit);
  const config = await readConfig(spec.model).catch(asUsage);
  if (config.arch === 'roberta')
    throw new UsageError(`--task loss needs a causal LM; ${spec.model} is RoBERTa (use a glue-* task)`);
  const maxLength = maxLengthFor(config, spec.maxLength);
  const tokenizer = textTokenizerOf(await loadTokenizer(spec.model).catch(asUsage));
  const tokenized = await dataStep(() =>
    tokenizeDataset({ ...ds, records }, format, tokenizer, { maxLength, trainOnSource: spec.trainOnSource }),
  );
  if (tokenized.examples.length === 0)
    throw new UsageError(
      `${spec.data}: no example is left to evaluate (${describeReport(tokenized.report)})`,
    );
  return { ...tokenized, maxLength, padId: padIdOf(tokenizer), documents: records.length };
}

/**
 * Scores each example on its own (its own loss in the samples; no padding), and the whole set as
 * the mean over every target token.
 */
export async function runLossEval(
  model: CausalLM,
  spec: LossEvalSpec,
  data: Awaited<ReturnType<typeof prepareLossData>>,
  onProgress: (done: number, total: number) => void,
): Promise<EvalResult<LossSample, LossMetrics>> {
  const samples: LossSample[] = [];
  let sum = 0;
  let tokens = 0;
  for (const [doc, example] of data.examples.entries()) {
    onProgress(doc, data.examples.length);
    const r = await evaluateExamples(model, [example], { batchSize: 1, padId: data.padId });
    const [exactMatch] = await greedyMatches(model, [example], { batchSize: 1, padId: data.padId });
    samples.push({ doc, targetTokens: r.terms, loss: r.loss, exactMatch });
    if (r.terms > 0) {
      sum += r.loss * r.terms;
      tokens += r.terms;
    }
  }
  onProgress(data.examples.length, data.examples.length);
  const loss = tokens > 0 ? sum / tokens : Number.NaN;
  const report: TokenizeReport = data.report;
  return {
    model: spec.model,
    adapter: spec.adapter,
    task: 'loss',
    settings: {
      limit: spec.limit ?? null,
      shard: null,
      documents: data.documents,
      data: spec.data,
      format: spec.format,
      maxLength: data.maxLength,
      trainOnSource: spec.trainOnSource,
    },
    metrics: {
      headline: { metric: 'perplexity', value: Math.exp(loss) },
      loss,
      lossUnit: 'nats/token',
      perplexity: Math.exp(loss),
      exactMatch: samples.filter((s) => s.exactMatch).length / Math.max(samples.length, 1),
      targetTokens: tokens,
      examples: data.examples.length,
      truncated: report.truncated,
    },
    samples,
  };
}
