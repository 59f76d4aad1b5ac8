/** @sharelora/models: model architectures, checkpoint import and tokenizers. */
export {
  type HfLlamaConfig,
  ImportError,
  type ImportErrorCode,
  type ImportOptions,
  type ImportProgress,
  type ImportSummary,
  importGguf,
  importLlama2c,
  type Llama2cImportOptions,
} from './import/index.js';
