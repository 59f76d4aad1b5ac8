/**
 * @sharelora/models is planned and not implemented yet. It will hold: GPT-2, RoBERTa and LLaMA 1/2/3 on @sharelora/core, HF checkpoint loading, tokenizers, generation with a KV cache, log-likelihood scoring, GGUF and llama2.c importers, tiny presets.
 * See README.md in this package and docs/ for the design.
 */
export const PACKAGE_STATUS = 'planned' as const;
