export {
  type Batch,
  BatchLoader,
  type BatchOf,
  type ClassificationBatch,
  type CollateOptions,
  collate,
  type DataPosition,
  type LmBatch,
  type LoaderBatch,
  type LoaderOptions,
  type Padding,
  sequentialBatches,
} from './batch.js';
export { DataError, type DataErrorCode, describeSource, type RecordSource } from './errors.js';
export {
  ALPACA_PROMPT_INPUT,
  ALPACA_PROMPT_NO_INPUT,
  type ClassificationFormat,
  type ClassifierFormatSpec,
  type ClassifierText,
  checkColumns,
  createFormat,
  E2E_PROMPT,
  type E2eFormat,
  FORMAT_TYPES,
  type Format,
  type FormatSpec,
  type FormatType,
  GSM8K_PROMPT,
  type Gsm8kFormat,
  type InstructionFormat,
  type LabelTarget,
  type LmFormatSpec,
  type LmText,
  labelSetOf,
  type PromptCompletionFormat,
  requiredFields,
  type SentencePairFormat,
  type TextFormat,
} from './formats.js';
export { GLUE_TASKS, type GlueTask, type GlueTaskName } from './glue.js';
export {
  applyPromptFormat,
  PROMPT_FORMAT_FILE,
  PROMPT_FORMATS,
  type PromptFormat,
  readPromptFormat,
  writePromptFormat,
} from './prompt-format.js';
export { type DelimitedOptions, parseDelimited } from './readers/delimited.js';
export { type JsonReadOptions, parseJson, parseJsonl } from './readers/json.js';
export { type ParquetReadOptions, parseParquet } from './readers/parquet.js';
export {
  DEFAULT_MAX_RECORD_BYTES,
  fileFormatOf,
  parseDataset,
  type ReadOptions,
  readDataset,
} from './readers/read.js';
export type { DataRecord, Dataset, FileFormat } from './records.js';
export { type SplitOptions, splitValidation } from './split.js';
export {
  type ClassificationExample,
  type DroppedExample,
  type DropReason,
  describeReport,
  type Example,
  type ExampleFor,
  IGNORE_INDEX,
  type LmExample,
  type TokenizedDataset,
  type TokenizeOptions,
  type TokenizeReport,
  tokenizeDataset,
} from './tokenize.js';
export { padIdOf, type TextTokenizer } from './tokenizer.js';
