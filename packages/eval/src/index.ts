/**
 * @sharelora/eval is planned and not implemented yet. It will hold: GSM8K, MMLU, MMLU-Pro, HumanEval and GLUE tasks, metrics and result files.
 * See README.md in this package and docs/ for the design.
 */
export const PACKAGE_STATUS = 'planned' as const;
