/**
 * @sharelora/adapters is planned and not implemented yet. It will hold: LoRA and ShareLoRA configuration, injection into any module tree, trainable-parameter counting, merge/unmerge, and PEFT-format save/load.
 * See README.md in this package and docs/ for the design.
 */
export const PACKAGE_STATUS = 'planned' as const;
