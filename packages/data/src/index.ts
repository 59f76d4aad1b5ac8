/**
 * @sharelora/data: what training and evaluation read alike, so they read it identically: delimited
 * files (CSV/TSV with explicit quoting) and the GLUE tasks' file layouts and labels.
 */
export { type DelimitedOptions, DelimitedParseError, type DelimitedRow, parseRows } from './delimited.js';
export { GLUE_FILES, type GlueFileLayout, type GlueTaskName } from './glue.js';
export { E2E_PROMPT } from './prompts.js';
