/**
 * The contract between the harnesses and a language model. @sharelora/models implements it (with a
 * tokenizer, generation with a KV cache and log-likelihood scoring); this package never imports a
 * model, so any object with these methods can be evaluated, including test doubles and remote APIs.
 */

/** Called by a model as it works through one call's requests. */
export type ModelProgress = (done: number, total: number) => void;

export interface GenerationRequest {
  /** Text to continue, exactly as built by the task (no chat template, no added special tokens). */
  prompt: string;
  /**
   * Stop strings: generation should end once the continuation contains any of them. The harness cuts
   * the returned text at the earliest stop string itself, so returning a little more is harmless.
   */
  stop: string[];
  maxNewTokens: number;
  /** 0 or absent: greedy decoding. */
  temperature?: number;
  /** Per-request seed for sampling, derived from the run seed and the document (stable under sharding). */
  seed?: number;
}

export interface LoglikelihoodRequest {
  context: string;
  /** Scored continuation; lm-eval's leading-space convention (" A") is part of the string. */
  continuation: string;
}

export interface LoglikelihoodResult {
  /** Sum of log-probabilities of the continuation's tokens given the context (natural log). */
  logprob: number;
  /** Whether greedy decoding from the context would produce exactly the continuation's tokens. */
  isGreedy: boolean;
}

export interface EvalModel {
  /** Recorded as `model` in result files. */
  name: string;
  /** One continuation per request, in request order, without the prompt. */
  generate(requests: GenerationRequest[], onProgress?: ModelProgress): Promise<string[]>;
  loglikelihood(requests: LoglikelihoodRequest[], onProgress?: ModelProgress): Promise<LoglikelihoodResult[]>;
  /**
   * For each prompt, the log-probability of each candidate as the single next token (QLoRA-style
   * letter scoring: the logits of "A".."D" at the position after the prompt). Each candidate stands
   * for one token; how a string maps to it is the model side's business (@sharelora/models takes the
   * first token of its encoding). Optional: only MMLU's letter-logit scoring needs it.
   */
  nextTokenLogprobs?(prompts: string[], candidates: string[]): Promise<number[][]>;
}
