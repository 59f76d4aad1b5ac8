/**
 * The contract between the harnesses and a language model. @sharelora/models implements it (with a
 * tokenizer, generation with a KV cache and log-likelihood scoring); this package never imports a
 * model, so any object with these methods can be evaluated, including test doubles and remote APIs.
 */

/** Called by a model as it works through one call's requests. */
export type ModelProgress = (done: number, total: number) => void;

/**
 * One text continuation a harness asks of {@link EvalModel.generate} (GSM8K, MMLU-Pro's chain of
 * thought, HumanEval).
 */
export interface GenerationRequest {
  /** Text to continue, exactly as built by the task (no chat template, no added special tokens). */
  prompt: string;
  /**
   * Stop strings: generation should end once the continuation contains any of them. The harness cuts
   * the returned text at the earliest stop string itself, so returning a little more is harmless.
   */
  stop: string[];
  /** Most tokens to generate. */
  maxNewTokens: number;
  /** 0 or absent: greedy decoding. */
  temperature?: number;
  /** Per-request seed for sampling, derived from the run seed and the document (stable under sharding). */
  seed?: number;
  /**
   * Beam search with this many beams (with temperature 0): the most likely continuation under the
   * length-normalised score instead of greedy's token-by-token choice. Absent or 1: greedy.
   */
  numBeams?: number;
}

/**
 * One scoring request of {@link EvalModel.loglikelihood}: how likely `continuation` is right after
 * `context` (an answer choice after its question, for MMLU and MMLU-Pro).
 */
export interface LoglikelihoodRequest {
  /** Text before the continuation, exactly as the task builds it. */
  context: string;
  /** Scored continuation; lm-eval's leading-space convention (" A") is part of the string. */
  continuation: string;
}

/**
 * The answer to one {@link LoglikelihoodRequest}, as lm-evaluation-harness's `loglikelihood`
 * returns it.
 */
export interface LoglikelihoodResult {
  /** Sum of log-probabilities of the continuation's tokens given the context (natural log). */
  logprob: number;
  /** Whether greedy decoding from the context would produce exactly the continuation's tokens. */
  isGreedy: boolean;
}

/**
 * What the harnesses need of a language model: text generation, continuation log-likelihoods and,
 * for MMLU's letter scoring, next-token log-probabilities. {@link CausalLmEvalModel} implements it
 * on `@sharelora/models` ({@link loadEvalModel}); any other object with these methods can be
 * evaluated too. A method must return one result per request, in order, or the harness throws an
 * {@link EvalModelError}.
 */
export interface EvalModel {
  /** Recorded as `model` in result files. */
  name: string;
  /** One continuation per request, in request order, without the prompt. */
  generate(requests: GenerationRequest[], onProgress?: ModelProgress): Promise<string[]>;
  /** Per request, the log-likelihood of its continuation given its context, in request order. */
  loglikelihood(requests: LoglikelihoodRequest[], onProgress?: ModelProgress): Promise<LoglikelihoodResult[]>;
  /**
   * For each prompt, the log-probability of each candidate as the single next token (QLoRA-style
   * letter scoring: the logits of "A".."D" at the position after the prompt). Each candidate stands
   * for one token; how a string maps to it is the model side's business (@sharelora/models takes the
   * first token of its encoding). Optional: only MMLU's letter-logit scoring needs it.
   */
  nextTokenLogprobs?(prompts: string[], candidates: string[]): Promise<number[][]>;
}
