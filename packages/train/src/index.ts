/**
 * @sharelora/train: fine-tuning data today (readers, prompt formats, tokenization with loss masks,
 * validation splits, batching with a resumable order); the Trainer builds on it.
 */
export * from './data/index.js';
