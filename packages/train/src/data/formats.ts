/**
 * Formats turn records into text: a prompt and a response for causal-LM fine-tuning, or a text (pair)
 * and a label for sequence classification. The templates are the datasets' own, byte for byte.
 */

import { E2E_PROMPT as SHARED_E2E_PROMPT } from '@sharelora/data';
import { DataError } from './errors.js';
import { type DataRecord, type Dataset, typeName } from './records.js';

/** stanford_alpaca train.py PROMPT_DICT["prompt_input"], used when the record's input is not "". */
export const ALPACA_PROMPT_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:';

/** stanford_alpaca train.py PROMPT_DICT["prompt_no_input"]. */
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:';

/**
 * GSM8K: lm-evaluation-harness's gsm8k prompt, so a model fine-tuned here is evaluated on the prompt it
 * was trained on. The response is " " + the whole worked answer (the harness's target delimiter is a
 * space), ending in "#### N", the line the harness's strict-match regex looks for.
 */
export const GSM8K_PROMPT = 'Question: {question}\nAnswer:';
/**
 * The E2E NLG prompt (training formats use it): a meaning representation, then its description after a
 * space. One definition, in @sharelora/data, for training and evaluation alike.
 */
export const E2E_PROMPT: string = SHARED_E2E_PROMPT;

type Fields<K extends string> = Partial<Record<K, string>>;

/** Alpaca-style records; `input` may be absent or "" (then the no-input template is used). */
export interface InstructionFormat {
  type: 'instruction';
  fields?: Fields<'instruction' | 'input' | 'output'>;
}
/** Prompt and completion joined verbatim (put any separating space in the data, as OpenAI's format does). */
export interface PromptCompletionFormat {
  type: 'prompt-completion';
  fields?: Fields<'prompt' | 'completion'>;
}
/** Plain text; the loss is on every token. */
export interface TextFormat {
  type: 'text';
  fields?: Fields<'text'>;
}
/**
 * GSM8K records (`question`, `answer`), rendered with {@link GSM8K_PROMPT} so that fine-tuning
 * matches lm-evaluation-harness's gsm8k prompt; the loss is on the answer. `fields` renames the
 * columns.
 */
export interface Gsm8kFormat {
  type: 'gsm8k';
  fields?: Fields<'question' | 'answer'>;
}
/**
 * E2E NLG records (`mr`, `ref`: the challenge's CSV columns), rendered with {@link E2E_PROMPT}; the
 * loss is on the description. `fields` renames the columns.
 */
export interface E2eFormat {
  type: 'e2e';
  fields?: Fields<'mr' | 'ref'>;
}
/**
 * The target of a classification: `labels` names the classes in id order (a record's label is one of
 * the names, or an integer id), or `regression` makes it a real number, optionally range-checked.
 */
export interface LabelTarget {
  labels?: readonly string[];
  regression?: { min?: number; max?: number };
}
export interface ClassificationFormat extends LabelTarget {
  type: 'classification';
  fields?: Fields<'text' | 'label'>;
}
export interface SentencePairFormat extends LabelTarget {
  type: 'sentence-pair';
  fields?: Fields<'first' | 'second' | 'label'>;
}

/**
 * How records become training text: the format `type` and, where the file's column names differ
 * from the defaults, `fields` mapping each role to a column. {@link createFormat} checks it;
 * {@link tokenizeDataset} applies it.
 */
export type FormatSpec =
  | InstructionFormat
  | PromptCompletionFormat
  | TextFormat
  | Gsm8kFormat
  | E2eFormat
  | ClassificationFormat
  | SentencePairFormat;
/**
 * The `type` of a {@link FormatSpec}: instruction, prompt-completion, text, gsm8k, e2e (causal LM);
 * classification, sentence-pair (classifier).
 */
export type FormatType = FormatSpec['type'];
/** The format specs that produce causal-LM examples (prompt and response). */
export type LmFormatSpec = InstructionFormat | PromptCompletionFormat | TextFormat | Gsm8kFormat | E2eFormat;
/**
 * The format specs that produce sequence-classification examples (a text or text pair, and a
 * label).
 */
export type ClassifierFormatSpec = ClassificationFormat | SentencePairFormat;

const DEFAULT_FIELDS: {
  [T in FormatType]: Required<NonNullable<Extract<FormatSpec, { type: T }>['fields']>>;
} = {
  instruction: { instruction: 'instruction', input: 'input', output: 'output' },
  'prompt-completion': { prompt: 'prompt', completion: 'completion' },
  text: { text: 'text' },
  gsm8k: { question: 'question', answer: 'answer' },
  e2e: { mr: 'mr', ref: 'ref' },
  classification: { text: 'text', label: 'label' },
  'sentence-pair': { first: 'sentence1', second: 'sentence2', label: 'label' },
};
/** Every {@link FormatType}, e.g. for a command line's choices. */
export const FORMAT_TYPES = Object.keys(DEFAULT_FIELDS) as FormatType[];

/** Causal-LM text: the loss goes on the response (and on the prompt only with trainOnSource). */
export interface LmText {
  kind: 'lm';
  prompt: string;
  response: string;
}
/** Classifier input: one text or a pair, and a class id (or a real number for regression). */
export interface ClassifierText {
  kind: 'classification';
  text: string;
  pair?: string;
  label: number;
  regression: boolean;
}

/** A checked format spec that renders records. */
export interface Format {
  spec: FormatSpec;
  /** Record fields the format reads and cannot do without. */
  required: string[];
  render(record: DataRecord): LmText | ClassifierText;
}

const bad = (detail: string): never => {
  throw new DataError('BAD_OPTION', `format: ${detail}`);
};

/** Fills {name} placeholders in one pass, so text containing "{input}" is never substituted again. */
function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (Object.hasOwn(values, k) ? values[k] : m));
}

function text(record: DataRecord, field: string, optional = false): string {
  const v = Object.hasOwn(record.values, field) ? record.values[field] : undefined;
  if (v === undefined || v === null) {
    if (optional) return '';
    const has = Object.keys(record.values).join(', ') || 'none';
    throw DataError.at(
      'MISSING_FIELD',
      record.source,
      v === null ? `field "${field}" is null` : `missing field "${field}" (the record has: ${has})`,
    );
  }
  if (typeof v !== 'string') {
    throw DataError.at('BAD_TYPE', record.source, `field "${field}" must be text, got ${typeName(v)}`);
  }
  return v;
}

const INTEGER = /^-?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function rawLabel(record: DataRecord, field: string): string | number {
  const v = Object.hasOwn(record.values, field) ? record.values[field] : undefined;
  if (v === undefined || v === null) {
    throw DataError.at(
      'MISSING_FIELD',
      record.source,
      v === null ? `label field "${field}" is null` : `missing label field "${field}"`,
    );
  }
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'string' && typeof v !== 'number') {
    throw DataError.at(
      'BAD_TYPE',
      record.source,
      `label field "${field}" must be text or a number, got ${typeName(v)}`,
    );
  }
  return v;
}

function classId(record: DataRecord, field: string, labels: readonly string[]): number {
  const v = rawLabel(record, field);
  const byName = labels.indexOf(String(v));
  if (byName >= 0) return byName;
  const id = typeof v === 'number' ? v : INTEGER.test(v) ? Number(v) : Number.NaN;
  if (Number.isInteger(id) && id >= 0 && id < labels.length) return id;
  throw DataError.at(
    'BAD_LABEL',
    record.source,
    `label ${JSON.stringify(v)} in "${field}" is not in the label set ` +
      `[${labels.map((l) => JSON.stringify(l)).join(', ')}] (nor an id 0..${labels.length - 1})`,
  );
}

function realTarget(record: DataRecord, field: string, range: LabelTarget['regression']): number {
  const v = rawLabel(record, field);
  const x = typeof v === 'number' ? v : NUMBER.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isFinite(x)) {
    throw DataError.at(
      'BAD_TYPE',
      record.source,
      `regression target ${JSON.stringify(v)} in "${field}" is not a number`,
    );
  }
  const min = range?.min ?? Number.NEGATIVE_INFINITY;
  const max = range?.max ?? Number.POSITIVE_INFINITY;
  if (x < min || x > max) {
    throw DataError.at(
      'BAD_LABEL',
      record.source,
      `regression target ${x} in "${field}" is outside [${min}, ${max}]`,
    );
  }
  return x;
}

/** The record field of each role of a spec (its defaults overridden by spec.fields), checked. */
function fieldsOf(spec: FormatSpec): Record<string, string> {
  if (!Object.hasOwn(DEFAULT_FIELDS, spec.type)) {
    bad(`unknown type "${String(spec.type)}" (one of ${FORMAT_TYPES.join(', ')})`);
  }
  const d: Record<string, string> = DEFAULT_FIELDS[spec.type];
  for (const k of Object.keys(spec.fields ?? {})) {
    if (!Object.hasOwn(d, k))
      bad(`${spec.type} has no field role "${k}" (roles: ${Object.keys(d).join(', ')})`);
  }
  return { ...d, ...spec.fields };
}

/**
 * The fields (table columns) a spec's records must have. Needs no label set, so a table's header can
 * be checked before the labels are derived from the training split.
 */
export function requiredFields(spec: FormatSpec): string[] {
  const f = fieldsOf(spec);
  switch (spec.type) {
    case 'instruction':
      return [f.instruction, f.output];
    case 'prompt-completion':
      return [f.prompt, f.completion];
    case 'text':
      return [f.text];
    case 'gsm8k':
      return [f.question, f.answer];
    case 'e2e':
      return [f.mr, f.ref];
    case 'classification':
      return [f.text, f.label];
    case 'sentence-pair':
      return [f.first, f.second, f.label];
  }
}

/** Checks a spec (unknown type or field role, a bad label set) and returns its renderer. */
export function createFormat(spec: FormatSpec): Format {
  const f = fieldsOf(spec);
  const required = requiredFields(spec);
  switch (spec.type) {
    case 'instruction':
      return {
        spec,
        required,
        render(r) {
          const instruction = text(r, f.instruction);
          const input = text(r, f.input, true);
          // stanford_alpaca picks the template by `input != ""`; whitespace-only input keeps the input template.
          const prompt =
            input === ''
              ? fill(ALPACA_PROMPT_NO_INPUT, { instruction })
              : fill(ALPACA_PROMPT_INPUT, { instruction, input });
          return { kind: 'lm', prompt, response: text(r, f.output) };
        },
      };
    case 'prompt-completion':
      return {
        spec,
        required,
        render: (r) => ({ kind: 'lm', prompt: text(r, f.prompt), response: text(r, f.completion) }),
      };
    case 'text':
      return {
        spec,
        required,
        render: (r) => ({ kind: 'lm', prompt: '', response: text(r, f.text) }),
      };
    case 'gsm8k':
      return {
        spec,
        required,
        render: (r) => ({
          kind: 'lm',
          prompt: fill(GSM8K_PROMPT, { question: text(r, f.question) }),
          response: ` ${text(r, f.answer)}`,
        }),
      };
    case 'e2e':
      return {
        spec,
        required,
        render: (r) => ({
          kind: 'lm',
          prompt: fill(E2E_PROMPT, { mr: text(r, f.mr) }),
          response: ` ${text(r, f.ref)}`,
        }),
      };
    case 'classification':
    case 'sentence-pair': {
      const target = labelTarget(spec);
      const pair = spec.type === 'sentence-pair';
      return {
        spec,
        required,
        render(r) {
          const label =
            target.regression !== undefined
              ? realTarget(r, f.label, target.regression)
              : classId(r, f.label, target.labels);
          const regression = target.regression !== undefined;
          return pair
            ? { kind: 'classification', text: text(r, f.first), pair: text(r, f.second), label, regression }
            : { kind: 'classification', text: text(r, f.text), label, regression };
        },
      };
    }
  }
}

function labelTarget(spec: ClassifierFormatSpec): {
  labels: readonly string[];
  regression?: LabelTarget['regression'];
} {
  const { labels, regression } = spec;
  if ((labels === undefined) === (regression === undefined)) {
    bad(`${spec.type} needs exactly one of labels (the class names in id order) and regression`);
  }
  if (regression !== undefined) {
    if (regression.min !== undefined && regression.max !== undefined && !(regression.min <= regression.max)) {
      bad(`regression range [${regression.min}, ${regression.max}] is empty`);
    }
    return { labels: [], regression };
  }
  const set = labels as readonly string[];
  if (set.length < 2) bad(`labels needs at least two classes, got ${set.length}`);
  if (new Set(set).size !== set.length) bad(`labels has a duplicate: ${JSON.stringify(set)}`);
  return { labels: set };
}

/**
 * For tables (CSV/TSV/Parquet), a column the format needs but the header lacks is reported once,
 * at the header, instead of at every row.
 */
export function checkColumns(dataset: Dataset, spec: FormatSpec): void {
  if (dataset.format === 'json' || dataset.format === 'jsonl') return;
  const missing = requiredFields(spec).filter((c) => !dataset.columns.includes(c));
  if (missing.length === 0) return;
  const cols = dataset.columns.map((c) => JSON.stringify(c)).join(', ');
  throw DataError.atLine(
    'MISSING_FIELD',
    dataset.file,
    dataset.format === 'parquet' ? null : 1,
    `missing column${missing.length > 1 ? 's' : ''} ${missing.map((c) => JSON.stringify(c)).join(', ')} ` +
      `needed by the ${spec.type} format (columns: ${cols})`,
  );
}

/**
 * The distinct labels of a column, sorted (numerically when all are integers): a label set for
 * `labels` when the data does not document one. Derive it from the training split only.
 */
export function labelSetOf(records: readonly DataRecord[], field: string): string[] {
  const seen = new Set<string>();
  for (const r of records) seen.add(String(rawLabel(r, field)));
  const all = [...seen];
  return all.every((l) => INTEGER.test(l)) ? all.sort((a, b) => Number(a) - Number(b)) : all.sort();
}
