/**
 * @sharelora/train is planned and not implemented yet. It will hold: datasets, prompt templates, batching and masking, the Trainer, checkpoints and resume, continual fine-tuning.
 * See README.md in this package and docs/ for the design.
 */
export const PACKAGE_STATUS = 'planned' as const;
