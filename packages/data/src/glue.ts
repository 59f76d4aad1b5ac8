/**
 * The GLUE tasks' files as they come, for training and evaluation alike: the folder, the columns,
 * how the file quotes, and the labels (ids as in the Hugging Face `glue` dataset, which
 * GLUE-trained checkpoints use).
 */

/** The GLUE tasks sharelora reads. */
export type GlueTaskName = 'sst2' | 'mrpc' | 'stsb' | 'rte' | 'cola';

/** How one GLUE task's TSVs are laid out. */
export interface GlueFileLayout {
  /** The task's folder in the GLUE download (SST-2, MRPC, ...). */
  folder: string;
  /** Header names of the text, the second text of a pair task, and the label. */
  text: string;
  pair?: string;
  label: string;
  /**
   * The files' quote character: null for the original GLUE TSVs, whose sentences hold bare '"'
   * (read as Python's csv.QUOTE_NONE); '"' for RTE as Hugging Face exports it (pandas quotes every
   * field holding '"' and doubles the quotes inside).
   */
  quote: string | null;
  /** Label names in id order, or null for a regression score (STS-B's similarity in [0, 5]). */
  labels: readonly string[] | null;
  /** Column names of the task's header-less files (CoLA's train and dev), if it has them. */
  headerless?: readonly string[];
}

/** Every GLUE task's file layout, by name. */
export const GLUE_FILES: Readonly<Record<GlueTaskName, GlueFileLayout>> = {
  sst2: { folder: 'SST-2', text: 'sentence', label: 'label', quote: null, labels: ['negative', 'positive'] },
  mrpc: {
    folder: 'MRPC',
    text: '#1 String',
    pair: '#2 String',
    label: 'Quality',
    quote: null,
    labels: ['not_equivalent', 'equivalent'],
  },
  stsb: { folder: 'STS-B', text: 'sentence1', pair: 'sentence2', label: 'score', quote: null, labels: null },
  rte: {
    folder: 'RTE',
    text: 'sentence1',
    pair: 'sentence2',
    label: 'label',
    quote: '"',
    labels: ['entailment', 'not_entailment'],
  },
  cola: {
    folder: 'CoLA',
    text: 'sentence',
    label: 'label',
    quote: null,
    labels: ['unacceptable', 'acceptable'],
    headerless: ['source', 'label', 'original_label', 'sentence'],
  },
};
