/**
 * EvalModel and GlueClassifier on top of @sharelora/models: a causal LM and its tokenizer answer the
 * harnesses' generation, log-likelihood and letter-logit requests; a RoBERTa sequence classifier
 * answers GLUE. Adapters are applied by the caller through `prepare` (this package never imports
 * @sharelora/adapters).
 */
import { noGrad, type QuantFormat, type Tensor, tensor, tidy } from '@sharelora/core';
import {
  type AnyModel,
  argmax,
  type CausalLM,
  candidateLogprobs,
  generate,
  type LoadProgress,
  loadModel,
  loadTokenizer,
  loglikelihood,
  readConfig,
  readGenerationConfig,
  type SequenceClassifier,
  type Tokenizer,
} from '@sharelora/models';
import { EvalConfigError } from './errors.js';
import type {
  EvalModel,
  GenerationRequest,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  ModelProgress,
} from './model.js';
import type { GlueClassifier, GlueExample } from './tasks/glue.js';

/**
 * Options of {@link CausalLmEvalModel} and {@link SequenceEvalClassifier}, and of the loaders
 * {@link loadEvalModel} and {@link loadGlueClassifier}.
 */
export interface BridgeOptions {
  /** Recorded as `model` in results (default: the model directory). */
  name?: string;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /**
   * Causal LMs: encode prompts and contexts with the tokenizer's special tokens (BOS). Default false,
   * lm-evaluation-harness's default for Hugging Face models (its `add_bos_token`).
   */
  addSpecialTokens?: boolean;
}

/**
 * Options of {@link loadEvalModel} and {@link loadGlueClassifier}: those of {@link BridgeOptions},
 * plus a hook to apply an adapter and loading progress.
 */
export interface LoadForEvalOptions extends BridgeOptions {
  /**
   * Called with the loaded model before evaluation, e.g. `(m) => loadAdapter(m, dir)` from
   * @sharelora/adapters/node. The model is switched to eval mode afterwards (injected LoRA layers
   * start in training mode, with dropout on).
   */
  prepare?: (model: AnyModel) => Promise<unknown>;
  /** Called as weights are read ({@link loadModel}'s progress). */
  onProgress?: (p: LoadProgress) => void;
  /** Keep the base model's block weights quantized ({@link loadModel}'s `quantize`). */
  quantize?: QuantFormat;
}

const positive = (name: string, v: number): number => {
  if (!Number.isInteger(v) || v < 1)
    throw new EvalConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
};

/** Runs `fn` on consecutive slices of at most `size` items, reporting progress after each. */
async function inChunks<I, R>(
  items: readonly I[],
  size: number,
  fn: (chunk: I[]) => Promise<R[]>,
  onProgress?: ModelProgress,
): Promise<R[]> {
  const out: R[] = [];
  for (let s = 0; s < items.length; s += size) {
    out.push(...(await fn(items.slice(s, s + size))));
    onProgress?.(out.length, items.length);
  }
  return out;
}

/** Requests that can share one batched generate() call: same stops, length limit, temperature and beams. */
const generationKey = (r: GenerationRequest) =>
  JSON.stringify([r.stop, r.maxNewTokens, r.temperature ?? 0, r.numBeams ?? 1]);

/** A causal LM (GPT-2, LLaMA) with its tokenizer as an EvalModel. */
export class CausalLmEvalModel implements EvalModel {
  readonly name: string;
  private readonly batchSize: number;
  private readonly addSpecialTokens: boolean;
  private readonly eosIds?: readonly number[];
  private readonly padId?: number;
  /** Prompts longer than the model's context so far; generation kept their last tokens. */
  promptsCut = 0;

  constructor(
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer,
    opts: BridgeOptions & { eosIds?: readonly number[]; padId?: number } = {},
  ) {
    this.name = opts.name ?? model.hfClass;
    this.batchSize = positive('batchSize', opts.batchSize ?? 8);
    this.addSpecialTokens = opts.addSpecialTokens ?? false;
    this.eosIds = opts.eosIds;
    this.padId = opts.padId;
  }

  /**
   * Greedy requests with equal settings are batched (a left-padded batch generates what each prompt
   * generates alone). Sampled requests run one at a time with their own seed: generate() draws row i
   * of a batch from a stream forked by its position, so batching would make a document's text depend
   * on its neighbours, and with them on --shard and --batch-size.
   */
  async generate(requests: GenerationRequest[], onProgress?: ModelProgress): Promise<string[]> {
    const groups = new Map<string, number[]>();
    requests.forEach((r, i) => {
      const key = (r.temperature ?? 0) > 0 ? `sampled ${i}` : generationKey(r);
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    const out = new Array<string>(requests.length);
    let done = 0;
    for (const members of groups.values()) {
      const first = requests[members[0]];
      for (let s = 0; s < members.length; s += this.batchSize) {
        const chunk = members.slice(s, s + this.batchSize);
        const gens = await generate(
          this.model,
          this.tokenizer,
          chunk.map((i) => requests[i].prompt),
          {
            stop: first.stop,
            maxNewTokens: first.maxNewTokens,
            temperature: first.temperature ?? 0,
            seed: first.seed ?? 0,
            numBeams: first.numBeams ?? 1,
            eosIds: this.eosIds,
            padId: this.padId,
            addSpecialTokens: this.addSpecialTokens,
            onWarning: (_message, cut) => {
              this.promptsCut += cut ?? 0;
            },
          },
        );
        chunk.forEach((i, k) => {
          out[i] = gens[k].text;
        });
        done += chunk.length;
        onProgress?.(done, requests.length);
      }
    }
    return out;
  }

  async loglikelihood(
    requests: LoglikelihoodRequest[],
    onProgress?: ModelProgress,
  ): Promise<LoglikelihoodResult[]> {
    const opts = { batchSize: this.batchSize, addSpecialTokens: this.addSpecialTokens };
    return inChunks(
      requests,
      this.batchSize,
      async (chunk) =>
        (await loglikelihood(this.model, this.tokenizer, chunk, opts)).map(({ logprob, isGreedy }) => ({
          logprob,
          isGreedy,
        })),
      onProgress,
    );
  }

  nextTokenLogprobs(prompts: string[], candidates: string[]): Promise<number[][]> {
    return candidateLogprobs(this.model, this.tokenizer, prompts, candidates, {
      batchSize: this.batchSize,
      addSpecialTokens: this.addSpecialTokens,
    });
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * RoBERTa input ids of one example as its tokenizer builds them, `<s> a </s>` or `<s> a </s></s> b
 * </s>`, truncated to `maxTokens` in all the way transformers' default `longest_first` does: one
 * token at a time from the end of the longer text (the second on a tie).
 */
export function classifierInput(
  tokenizer: Tokenizer,
  example: Pick<GlueExample, 'text' | 'textPair'>,
  maxTokens: number,
): number[] {
  const id = (key: 'cls_token' | 'sep_token', fallback: number | null | undefined): number => {
    const token = tokenizer.specialTokens[key];
    const v = token === undefined ? fallback : tokenizer.tokenToId(token);
    if (v === null || v === undefined) throw new EvalConfigError(`the tokenizer has no ${key}`);
    return v;
  };
  const cls = id('cls_token', tokenizer.bosId);
  const sep = id('sep_token', tokenizer.eosIds[0]);
  const a = tokenizer.encode(example.text, { addSpecialTokens: false });
  if (example.textPair === undefined) return [cls, ...a.slice(0, Math.max(0, maxTokens - 2)), sep];
  const b = tokenizer.encode(example.textPair, { addSpecialTokens: false });
  const budget = Math.max(0, maxTokens - 4);
  let na = a.length;
  let nb = b.length;
  while (na + nb > budget) {
    if (na > nb) na--;
    else nb--;
  }
  return [cls, ...a.slice(0, na), sep, sep, ...b.slice(0, nb), sep];
}

const i32 = (rows: number[][], width: number, fill: number): Tensor =>
  tensor(
    Int32Array.from(rows.flatMap((r) => [...r, ...new Array<number>(width - r.length).fill(fill)])),
    [rows.length, width],
    'i32',
  );

/**
 * A sequence classifier as a GlueClassifier: class ids (argmax of the logits), or the single output
 * for regression heads (STS-B, num_labels 1). Rows are right-padded with an attention mask.
 */
export class SequenceEvalClassifier implements GlueClassifier {
  readonly name: string;
  private readonly batchSize: number;
  /** Longest input: RoBERTa's position table starts after the padding index. */
  private readonly maxTokens: number;

  constructor(
    readonly model: SequenceClassifier,
    readonly tokenizer: Tokenizer,
    opts: Omit<BridgeOptions, 'addSpecialTokens'> = {},
  ) {
    this.name = opts.name ?? model.hfClass;
    this.batchSize = positive('batchSize', opts.batchSize ?? 8);
    this.maxTokens = model.config.maxPositions - model.config.padTokenId - 1;
  }

  get numLabels(): number {
    return this.model.numLabels;
  }

  predict(examples: GlueExample[]): Promise<number[]> {
    return inChunks(examples, this.batchSize, async (chunk) => {
      const rows = chunk.map((ex) => classifierInput(this.tokenizer, ex, this.maxTokens));
      const T = Math.max(...rows.map((r) => r.length));
      const logits = noGrad(() =>
        tidy(() =>
          this.model.forward(i32(rows, T, this.model.config.padTokenId), {
            attentionMask: i32(
              rows.map((r) => r.map(() => 1)),
              T,
              0,
            ),
          }),
        ),
      );
      let data: Float32Array;
      try {
        data = (await logits.data()) as Float32Array;
      } finally {
        logits.dispose();
      }
      const L = this.numLabels;
      return rows.map((_, b) => (L === 1 ? data[b] : argmax(data.subarray(b * L, (b + 1) * L))));
    });
  }

  dispose(): void {
    this.model.dispose();
  }
}

async function load(dir: string, task: 'causal-lm' | 'sequence-classification', opts: LoadForEvalOptions) {
  // config.json, then the tokenizer: a file given as the directory, or a directory without either,
  // fails before any weights are read.
  await readConfig(dir);
  const tokenizer = await loadTokenizer(dir);
  const loaded = await loadModel(dir, { task, onProgress: opts.onProgress, quantize: opts.quantize });
  try {
    if (opts.prepare) {
      await opts.prepare(loaded.model);
      loaded.model.eval();
    }
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
  return { tokenizer, loaded };
}

/**
 * Loads a causal LM directory (weights, tokenizer, generation_config.json's EOS and padding ids) as
 * an EvalModel. Call dispose() when done.
 */
export async function loadEvalModel(dir: string, opts: LoadForEvalOptions = {}): Promise<CausalLmEvalModel> {
  if ((await readConfig(dir)).arch === 'roberta') {
    throw new EvalConfigError(`${dir}: a RoBERTa model cannot generate or score text (GLUE tasks use it)`);
  }
  const defaults = await readGenerationConfig(dir);
  const { tokenizer, loaded } = await load(dir, 'causal-lm', opts);
  const model = loaded.model as CausalLM;
  return new CausalLmEvalModel(model, tokenizer, {
    name: opts.name ?? dir,
    batchSize: opts.batchSize,
    addSpecialTokens: opts.addSpecialTokens,
    eosIds: [...new Set([...model.config.eosTokenIds, ...tokenizer.eosIds, ...defaults.eosIds])],
    padId: tokenizer.padId ?? defaults.padId ?? undefined,
  });
}

/**
 * Loads a RoBERTa directory as a sequence classifier (num_labels from config.json). `initialised`
 * lists head tensors the checkpoint lacked and that were given random values (after `prepare`, an
 * adapter saving the head in modules_to_save replaces them).
 */
export async function loadGlueClassifier(
  dir: string,
  opts: Omit<LoadForEvalOptions, 'addSpecialTokens'> = {},
): Promise<{ classifier: SequenceEvalClassifier; initialised: string[] }> {
  const { arch } = await readConfig(dir);
  if (arch !== 'roberta') {
    throw new EvalConfigError(`${dir}: GLUE needs a RoBERTa sequence classifier, this is a ${arch} model`);
  }
  const { tokenizer, loaded } = await load(dir, 'sequence-classification', opts);
  return {
    classifier: new SequenceEvalClassifier(loaded.model as SequenceClassifier, tokenizer, {
      name: opts.name ?? dir,
      batchSize: opts.batchSize,
    }),
    initialised: loaded.initialised,
  };
}
