/**
 * GLUE tasks as the files come: how to read each one and which format and label set apply. Label
 * ids follow the HF `glue` dataset (what GLUE-trained checkpoints use).
 */
import type { ClassifierFormatSpec } from './formats.js';
import type { ReadOptions } from './readers/read.js';

/**
 * How to read one GLUE task's files ({@link ReadOptions}) and which classifier format and label set
 * apply to them.
 */
export interface GlueTask {
  read: ReadOptions;
  format: ClassifierFormatSpec;
}

/** The original GLUE TSVs are not quote-aware: sentences contain '"' (read like csv.QUOTE_NONE). */
const GLUE_TSV: ReadOptions = { format: 'tsv', quote: null };

/**
 * The GLUE tasks training knows (SST-2, MRPC, STS-B, RTE), by name: read options and format for
 * each, with label ids as in the Hugging Face `glue` dataset.
 */
export const GLUE_TASKS = {
  /** SST-2 train/dev: `sentence<TAB>label`, labels 0/1. */
  sst2: {
    read: GLUE_TSV,
    format: {
      type: 'classification',
      fields: { text: 'sentence', label: 'label' },
      labels: ['negative', 'positive'],
    },
  },
  /** MRPC: `Quality  #1 ID  #2 ID  #1 String  #2 String`, Quality 1 = paraphrase. */
  mrpc: {
    read: GLUE_TSV,
    format: {
      type: 'sentence-pair',
      fields: { first: '#1 String', second: '#2 String', label: 'Quality' },
      labels: ['not_equivalent', 'equivalent'],
    },
  },
  /** STS-B: similarity `score` in [0, 5], a regression target. */
  stsb: {
    read: GLUE_TSV,
    format: {
      type: 'sentence-pair',
      fields: { first: 'sentence1', second: 'sentence2', label: 'score' },
      regression: { min: 0, max: 5 },
    },
  },
  /**
   * RTE: `sentence1 sentence2 label idx` as exported from HF datasets (pandas quotes fields containing
   * '"', so this TSV is read with quotes). Labels are ids (0 = entailment) or the GLUE names.
   */
  rte: {
    read: { format: 'tsv', quote: '"' },
    format: {
      type: 'sentence-pair',
      fields: { first: 'sentence1', second: 'sentence2', label: 'label' },
      labels: ['entailment', 'not_entailment'],
    },
  },
} as const satisfies Record<string, GlueTask>;

/** A key of {@link GLUE_TASKS}. */
export type GlueTaskName = keyof typeof GLUE_TASKS;
