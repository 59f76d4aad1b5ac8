/**
 * GLUE tasks as the files come: how to read each one and which format and label set apply. Label
 * ids follow the HF `glue` dataset (what GLUE-trained checkpoints use).
 */
import { GLUE_FILES } from '@sharelora/data';
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

/** The file layout's read options and classifier format (a pair task's texts are first/second). */
function glueTask(name: keyof typeof GLUE_FILES): GlueTask {
  const f = GLUE_FILES[name];
  const target = f.labels ? { labels: f.labels } : { regression: { min: 0, max: 5 } };
  return {
    read: { format: 'tsv', quote: f.quote },
    format:
      f.pair === undefined
        ? { type: 'classification', fields: { text: f.text, label: f.label }, ...target }
        : { type: 'sentence-pair', fields: { first: f.text, second: f.pair, label: f.label }, ...target },
  };
}

/**
 * The GLUE tasks training knows (SST-2, MRPC, STS-B, RTE), by name: read options and format for
 * each, from the layouts in @sharelora/data that evaluation reads too (label ids as in the Hugging
 * Face `glue` dataset; RTE labels may also be the GLUE names).
 */
export const GLUE_TASKS = {
  sst2: glueTask('sst2'),
  mrpc: glueTask('mrpc'),
  stsb: glueTask('stsb'),
  rte: glueTask('rte'),
} as const satisfies Record<string, GlueTask>;

/** A key of {@link GLUE_TASKS}. */
export type GlueTaskName = keyof typeof GLUE_TASKS;
