import { ShareloraError } from '@sharelora/core';
import type { ModelBuildOptions } from './common.js';
import { GPT2LMHeadModel } from './gpt2.js';
import { LlamaForCausalLM } from './llama.js';
import { RobertaForMaskedLM, RobertaForSequenceClassification } from './roberta.js';
import type { AnyModel, ModelConfig, Task } from './types.js';

/** The task config.json's `architectures` names (masked LM for other or absent RoBERTa heads). */
export function defaultTask(config: ModelConfig): Task {
  if (config.arch !== 'roberta') return 'causal-lm';
  return /ForSequenceClassification$/.test(config.hfArchitecture ?? '')
    ? 'sequence-classification'
    : 'masked-lm';
}

export interface CreateModelOptions extends ModelBuildOptions {
  /** Default: defaultTask(config). */
  task?: Task;
}

/**
 * The module tree for `config`, with placeholder values: load weights into it (loadModel does) or
 * give it random ones with initWeights().
 */
export function createModel(config: ModelConfig, opts: CreateModelOptions = {}): AnyModel {
  const task = opts.task ?? defaultTask(config);
  const supported: Task[] =
    config.arch === 'roberta' ? ['masked-lm', 'sequence-classification'] : ['causal-lm'];
  if (!supported.includes(task)) {
    throw new ShareloraError(
      'UNSUPPORTED_TASK',
      `task ${task} is not available for ${config.arch} (available: ${supported.join(', ')})`,
    );
  }
  switch (config.arch) {
    case 'gpt2':
      return new GPT2LMHeadModel(config, opts);
    case 'llama':
      return new LlamaForCausalLM(config, opts);
    case 'roberta':
      return task === 'sequence-classification'
        ? new RobertaForSequenceClassification(config, opts)
        : new RobertaForMaskedLM(config, opts);
  }
}
