/**
 * Records → token examples. The whole dataset is rendered and tokenized up front, so a bad record
 * (missing field, label outside the set, wrong type) stops a run before its first step and before
 * anything is written; the trainer calls this on the full training data before it starts.
 */
import { DataError, describeSource, type RecordSource } from './errors.js';
import {
  type ClassifierFormatSpec,
  type ClassifierText,
  checkColumns,
  createFormat,
  type FormatSpec,
  type FormatType,
  type LmText,
} from './formats.js';
import type { DataRecord, Dataset } from './records.js';
import type { TextTokenizer } from './tokenizer.js';

/** Label of positions that carry no loss (prompt, padding), as PyTorch's cross-entropy ignore_index. */
export const IGNORE_INDEX = -100;

/**
 * One record tokenized for causal-LM training by {@link tokenizeDataset}: prompt and response as
 * one sequence, with the prompt masked out of the loss.
 */
export interface LmExample {
  kind: 'lm';
  inputIds: number[];
  /** All ones before padding; kept so an example is a complete model input on its own. */
  attentionMask: number[];
  /** inputIds with IGNORE_INDEX on the prompt (unless trainOnSource). Unshifted, as transformers' labels. */
  labels: number[];
  /** Leading tokens (BOS included) that belong to the prompt. */
  promptLength: number;
  source: RecordSource;
}

/**
 * One record tokenized for sequence classification by {@link tokenizeDataset}: the text (pair) with
 * the tokenizer's special tokens, and its label.
 */
export interface ClassificationExample {
  kind: 'classification';
  /** The tokenizer's own (pair) encoding with its special tokens, e.g. <s> A </s></s> B </s>. */
  inputIds: number[];
  attentionMask: number[];
  /** Class id, or the target value when `regression`. */
  label: number;
  /** Whether `label` is a real-valued regression target rather than a class id. */
  regression: boolean;
  source: RecordSource;
}

/** A tokenized example of either kind; narrow it on `kind`. */
export type Example = LmExample | ClassificationExample;
/**
 * The example type {@link tokenizeDataset} makes with a format spec of type `S`:
 * {@link ClassificationExample} for a {@link ClassifierFormatSpec}, else {@link LmExample}.
 */
export type ExampleFor<S extends FormatSpec> = S extends ClassifierFormatSpec
  ? ClassificationExample
  : LmExample;

/** Options of {@link tokenizeDataset}: length limit, loss on the prompt, and BOS/EOS. */
export interface TokenizeOptions {
  /**
   * Longest example in tokens. A longer LM example loses the tail of its response (EOS included);
   * one whose prompt leaves no room for a response token is dropped, never trained on a cut-off
   * question. Classifier inputs are cut longest segment first. Both are counted in the report.
   */
  maxLength?: number;
  /** Put the loss on the prompt tokens too (default false: prompt labels are IGNORE_INDEX). */
  trainOnSource?: boolean;
  /** Prepend tokenizer.bosId (default: when it is not null). LM formats only. */
  addBos?: boolean;
  /** Append tokenizer.eosIds[0] to the response (default true). LM formats only. */
  addEos?: boolean;
}

/**
 * Why {@link tokenizeDataset} left an LM example out: `prompt-too-long`, its prompt alone reaches
 * maxLength, leaving no room for a response token; `no-loss-tokens`, no position carries a label
 * the loss counts (e.g. an empty response without EOS).
 */
export type DropReason = 'prompt-too-long' | 'no-loss-tokens';

/** An example {@link tokenizeDataset} left out, listed in {@link TokenizeReport.dropped}. */
export interface DroppedExample {
  source: RecordSource;
  reason: DropReason;
  /** Tokens of the prompt (BOS included) for 'prompt-too-long'. */
  promptTokens: number;
}

/** What tokenization did to the data: the numbers a run reports. */
export interface TokenizeReport {
  files: string[];
  format: FormatType;
  records: number;
  examples: number;
  maxLength: number | null;
  /** Examples shortened to maxLength, and the tokens that removed. */
  truncated: number;
  tokensCut: number;
  dropped: DroppedExample[];
  /**
   * LM examples whose prompt, tokenized alone, is not a prefix of prompt + response tokenized
   * together (a token spans the boundary). They mask as many tokens as the prompt alone has, as
   * stanford_alpaca does; a high count means the template ends mid-word for this tokenizer.
   */
  boundaryMerges: number;
  /** Tokens of the kept examples, and of those the ones a causal-LM loss is computed on. */
  tokens: number;
  lossTokens: number;
}

/**
 * What {@link tokenizeDataset} returns: the examples, in record order, and the report of what was
 * truncated and dropped.
 */
export interface TokenizedDataset<E extends Example = Example> {
  examples: E[];
  report: TokenizeReport;
}

function startsWith(a: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > a.length) return false;
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}

/** Labels a causal LM learns from: transformers shifts them, so position 0 never counts. */
function lossTokensOf(labels: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}

interface Tally {
  report: TokenizeReport;
  drop(source: RecordSource, reason: DropReason, promptTokens: number): null;
}

function encodeLm(
  t: LmText,
  source: RecordSource,
  tok: TextTokenizer,
  o: Required<Omit<TokenizeOptions, 'maxLength'>> & { maxLength: number | null },
  tally: Tally,
): LmExample | null {
  // Prompt + response are tokenized together, as the model will see the text; the prompt alone tells
  // how many leading tokens to mask.
  const joint = tok.encode(t.prompt + t.response, { addSpecialTokens: false });
  let promptTokens = 0;
  if (t.prompt !== '') {
    const prompt = tok.encode(t.prompt, { addSpecialTokens: false });
    if (!startsWith(joint, prompt)) tally.report.boundaryMerges++;
    promptTokens = Math.min(prompt.length, joint.length);
  }
  const bos = o.addBos && tok.bosId !== null ? [tok.bosId] : [];
  const ids = [...bos, ...joint, ...(o.addEos ? [tok.eosIds[0]] : [])];
  const promptLength = bos.length + promptTokens;
  if (o.maxLength !== null && ids.length > o.maxLength) {
    if (promptLength >= o.maxLength) return tally.drop(source, 'prompt-too-long', promptLength);
    tally.report.truncated++;
    tally.report.tokensCut += ids.length - o.maxLength;
    ids.length = o.maxLength;
  }
  const labels = ids.map((id, i) => (i < promptLength && !o.trainOnSource ? IGNORE_INDEX : id));
  const lossTokens = lossTokensOf(labels);
  if (lossTokens === 0) return tally.drop(source, 'no-loss-tokens', promptLength);
  tally.report.tokens += ids.length;
  tally.report.lossTokens += lossTokens;
  return { kind: 'lm', inputIds: ids, attentionMask: ids.map(() => 1), labels, promptLength, source };
}

/**
 * Cuts a classifier input to maxLength, longest segment first (ties from the second), as
 * transformers' longest_first truncation. The special tokens are found by locating each segment's own
 * encoding inside the full one, so any template works (RoBERTa's, BERT's, a LLaMA BOS).
 */
function truncateClassifier(
  ids: number[],
  t: ClassifierText,
  tok: TextTokenizer,
  max: number,
  source: RecordSource,
) {
  const a = tok.encode(t.text, { addSpecialTokens: false });
  const b = t.pair === undefined ? [] : tok.encode(t.pair, { addSpecialTokens: false });
  const at = (seg: number[], from: number) =>
    ids.slice(from, from + seg.length).every((x, k) => x === seg[k]);
  let layout: [number, number] | null = null;
  for (let p = 0; p + a.length <= ids.length && layout === null; p++) {
    if (!at(a, p)) continue;
    for (let q = ids.length - b.length; q >= p + a.length; q--) {
      if (at(b, q)) {
        layout = [p, q];
        break;
      }
    }
  }
  if (layout === null) {
    throw DataError.at(
      'UNSUPPORTED',
      source,
      'cannot truncate: the tokenizer does not encode a text pair as the two texts’ own tokens joined by special tokens',
    );
  }
  const [p, q] = layout;
  const [aEnd, bEnd] = [p + a.length, q + b.length];
  const specials = ids.length - a.length - b.length;
  if (specials + (t.pair === undefined ? 1 : 2) > max) {
    throw new DataError(
      'BAD_OPTION',
      `a max length of ${max} leaves no room for text beside ${specials} special tokens`,
    );
  }
  while (a.length + b.length > max - specials) {
    if (a.length > b.length) a.pop();
    else b.pop();
  }
  return [...ids.slice(0, p), ...a, ...ids.slice(aEnd, q), ...b, ...ids.slice(bEnd)];
}

function encodeClassifier(
  t: ClassifierText,
  source: RecordSource,
  tok: TextTokenizer,
  maxLength: number | null,
  tally: Tally,
): ClassificationExample {
  let ids = tok.encode(
    t.text,
    t.pair === undefined ? { addSpecialTokens: true } : { addSpecialTokens: true, pair: t.pair },
  );
  if (maxLength !== null && ids.length > maxLength) {
    tally.report.truncated++;
    tally.report.tokensCut += ids.length - maxLength;
    ids = truncateClassifier(ids, t, tok, maxLength, source);
  }
  tally.report.tokens += ids.length;
  return {
    kind: 'classification',
    inputIds: ids,
    attentionMask: ids.map(() => 1),
    label: t.label,
    regression: t.regression,
    source,
  };
}

/**
 * Renders and tokenizes every record. Give a Dataset to have a column missing from a table's header
 * reported once at the header; records (e.g. one side of a split) work too.
 */
export function tokenizeDataset<S extends FormatSpec>(
  data: Dataset | readonly DataRecord[],
  spec: S,
  tok: TextTokenizer,
  opts: TokenizeOptions = {},
): TokenizedDataset<ExampleFor<S>> {
  const format = createFormat(spec);
  const records = 'records' in data ? data.records : data;
  if ('records' in data) checkColumns(data, spec);
  const maxLength = opts.maxLength ?? null;
  if (maxLength !== null && !(Number.isInteger(maxLength) && maxLength >= 2)) {
    throw new DataError('BAD_OPTION', `maxLength must be an integer >= 2, got ${maxLength}`);
  }
  const o = {
    maxLength,
    trainOnSource: opts.trainOnSource ?? false,
    addBos: opts.addBos ?? tok.bosId !== null,
    addEos: opts.addEos ?? true,
  };
  if (
    o.addEos &&
    tok.eosIds.length === 0 &&
    spec.type !== 'classification' &&
    spec.type !== 'sentence-pair'
  ) {
    throw new DataError(
      'UNSUPPORTED',
      'the tokenizer has no EOS id to append to responses (pass addEos: false)',
    );
  }
  if (opts.addBos === true && tok.bosId === null) {
    throw new DataError('UNSUPPORTED', 'addBos is set but the tokenizer has no BOS id');
  }
  const report: TokenizeReport = {
    files: [...new Set(records.map((r) => r.source.file))],
    format: spec.type,
    records: records.length,
    examples: 0,
    maxLength,
    truncated: 0,
    tokensCut: 0,
    dropped: [],
    boundaryMerges: 0,
    tokens: 0,
    lossTokens: 0,
  };
  const tally: Tally = {
    report,
    drop(source, reason, promptTokens) {
      report.dropped.push({ source, reason, promptTokens });
      return null;
    },
  };
  const examples: Example[] = [];
  for (const r of records) {
    const t = format.render(r);
    const ex =
      t.kind === 'lm'
        ? encodeLm(t, r.source, tok, o, tally)
        : encodeClassifier(t, r.source, tok, maxLength, tally);
    if (ex !== null) examples.push(ex);
  }
  report.examples = examples.length;
  return { examples: examples as ExampleFor<S>[], report };
}

const n = (x: number) => x.toLocaleString('en-US');
/** A count with its noun, singular for one: "1 record", "2 records". */
const count = (x: number, noun: string) => `${n(x)} ${noun}${x === 1 ? '' : 's'}`;

/** The report as a few lines for a terminal or a log: what was kept, cut and dropped, and where. */
export function describeReport(r: TokenizeReport, maxListed = 5): string {
  const lines = [
    `${r.files.join(', ')} (${r.format}): ${count(r.records, 'record')} -> ${count(r.examples, 'example')}, ` +
      `${count(r.tokens, 'token')}${r.lossTokens > 0 ? ` (${n(r.lossTokens)} with loss)` : ''}`,
  ];
  if (r.maxLength !== null) {
    lines.push(
      `  max length ${r.maxLength}: ${n(r.truncated)} truncated (${count(r.tokensCut, 'token')} cut)`,
    );
  }
  for (const reason of ['prompt-too-long', 'no-loss-tokens'] as const) {
    const d = r.dropped.filter((x) => x.reason === reason);
    if (d.length === 0) continue;
    const why =
      reason === 'prompt-too-long'
        ? `the prompt alone fills the max length ${r.maxLength}`
        : 'no token to learn';
    const where = d.slice(0, maxListed).map((x) => describeSource(x.source));
    const more = d.length > maxListed ? `, and ${d.length - maxListed} more` : '';
    lines.push(`  ${n(d.length)} dropped, ${why}: ${where.join('; ')}${more}`);
  }
  if (r.boundaryMerges > 0) {
    lines.push(
      `  ${count(r.boundaryMerges, 'example')} ${r.boundaryMerges === 1 ? 'has' : 'have'} a token spanning the prompt/response boundary`,
    );
  }
  return lines.join('\n');
}
