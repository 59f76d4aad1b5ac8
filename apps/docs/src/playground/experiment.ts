/**
 * The playground's experiment, the quickstart's in miniature and in memory: a tiny LLaMA is
 * pretrained from scratch on "copy", then fine-tuned on "shift-3" with each chosen method at the
 * same rank, seed and step budget. Everything here composes the packages' own code (the preset,
 * the Trainer, the adapters, greedy generation); nothing touches a file system.
 */
import { cloneModule, injectAdapter, type Method, presetConfig } from '@sharelora/adapters';
import {
  type AnyModel,
  type CausalLM,
  createPreset,
  generate,
  LLAMA_LORA_TARGETS,
  type Tokenizer,
} from '@sharelora/models';
import {
  COPY_TASK,
  DIGITS,
  exactMatch,
  heldOutDigits,
  medianStepMs,
  padIdOf,
  SHIFT_TASK,
  type TaskData,
  Trainer,
  taskData,
  textTokenizerOf,
} from '@sharelora/train';

/** Fixed parts of the set-up: the quickstart's, with smaller batches and test set so a browser keeps up. */
const SETUP = {
  layers: 4,
  batchSize: 32,
  pretrainLr: 3e-3,
  finetuneLr: 1e-2,
  alpha: 16,
  heldOut: 50,
  /** taskData always splits off validation examples; the playground reports training loss, so these go unused. */
  validation: 16,
  seed: 0,
} as const;

export interface ExperimentOptions {
  rank: number;
  /** Fine-tuning steps per method; pretraining gets half as many again. */
  steps: number;
  methods: readonly Method[];
}

export type Phase = 'pretrain' | Method;

export type ExperimentEvent =
  | { type: 'phase'; phase: Phase; steps: number }
  | { type: 'step'; phase: Phase; step: number; loss: number };

/** One method's measured outcome. */
export interface MethodResult {
  method: Method;
  trainable: number;
  optimizerBytes: number;
  /** Exact match of greedy answers on held-out prompts, in [0, 1]. */
  exactMatch: number;
  losses: number[];
  /** Median time of a fine-tuning step in ms (the first step, which compiles shaders, left out). */
  msPerStep: number;
}

export interface ExperimentResult {
  rank: number;
  steps: number;
  pretrain: { steps: number; losses: number[]; copyExactMatch: number };
  heldOut: number;
  methods: MethodResult[];
}

/** A finished experiment: its numbers, and the fine-tuned models to ask (dispose when done). */
export interface Experiment {
  result: ExperimentResult;
  answer(prompt: string): Promise<Array<{ method: Method; text: string }>>;
  dispose(): void;
}

function causalLm(model: AnyModel): CausalLM {
  if (model.task !== 'causal-lm') throw new Error(`the playground needs a causal LM, got ${model.task}`);
  return model;
}

async function train(
  model: CausalLM,
  data: TaskData,
  padId: number,
  steps: number,
  lr: number,
  onLoss: (step: number, loss: number) => void,
) {
  const trainer = new Trainer({
    model,
    train: data.train,
    padId,
    batchSize: SETUP.batchSize,
    steps,
    lr,
    schedule: 'cosine',
    warmupRatio: 0.05,
    maxGradNorm: 1,
    seed: SETUP.seed,
    onStep: (m) => onLoss(m.step, m.loss),
  });
  return trainer.train();
}

/** Greedy answers of each model to one prompt (the answer's digits and end of sequence at most). */
async function answers(models: Map<Method, CausalLM>, tok: Tokenizer, prompt: string) {
  const out: Array<{ method: Method; text: string }> = [];
  for (const [method, model] of models) {
    const [g] = await generate(model, tok, [prompt], { maxNewTokens: DIGITS + 1 });
    out.push({ method, text: g.text });
  }
  return out;
}

/** Runs the experiment on the current device (initBrowser() first), reporting every step. */
export async function runExperiment(
  opts: ExperimentOptions,
  onEvent: (e: ExperimentEvent) => void,
): Promise<Experiment> {
  const pretrainSteps = Math.round(opts.steps * 1.5);
  const { model, tokenizer } = createPreset({
    arch: 'llama',
    preset: 'tiny',
    seed: SETUP.seed,
    overrides: { num_hidden_layers: SETUP.layers },
  });
  const base = causalLm(model);
  const models = new Map<Method, CausalLM>();
  try {
    const padId = padIdOf(textTokenizerOf(tokenizer));
    const copy = taskData(
      COPY_TASK,
      tokenizer,
      SETUP.seed,
      pretrainSteps * SETUP.batchSize,
      SETUP.validation,
    );
    const shift = taskData(SHIFT_TASK, tokenizer, SETUP.seed, opts.steps * SETUP.batchSize, SETUP.validation);
    const heldOut = heldOutDigits(SETUP.seed, SETUP.heldOut, [...copy.inputs, ...shift.inputs]);

    const pretrainLosses: number[] = [];
    base.unfreeze();
    onEvent({ type: 'phase', phase: 'pretrain', steps: pretrainSteps });
    await train(base, copy, padId, pretrainSteps, SETUP.pretrainLr, (step, loss) => {
      pretrainLosses.push(loss);
      onEvent({ type: 'step', phase: 'pretrain', step, loss });
    });
    base.freeze();
    const copyExactMatch = await exactMatch(base, tokenizer, COPY_TASK, heldOut);

    const methods: MethodResult[] = [];
    for (const method of opts.methods) {
      const tuned = cloneModule(base);
      models.set(method, tuned);
      const cfg = presetConfig(method, {
        r: opts.rank,
        alpha: SETUP.alpha,
        targetModules: [...LLAMA_LORA_TARGETS],
        taskType: 'CAUSAL_LM',
      });
      injectAdapter(tuned, cfg, { rng: SETUP.seed });
      const losses: number[] = [];
      onEvent({ type: 'phase', phase: method, steps: opts.steps });
      const run = await train(tuned, shift, padId, opts.steps, SETUP.finetuneLr, (step, loss) => {
        losses.push(loss);
        onEvent({ type: 'step', phase: method, step, loss });
      });
      methods.push({
        method,
        trainable: run.report.params.trainable,
        optimizerBytes: run.report.bytes.optimizer,
        exactMatch: await exactMatch(tuned, tokenizer, SHIFT_TASK, heldOut),
        losses,
        msPerStep: medianStepMs(run.history),
      });
    }
    return {
      result: {
        rank: opts.rank,
        steps: opts.steps,
        pretrain: { steps: pretrainSteps, losses: pretrainLosses, copyExactMatch },
        heldOut: heldOut.length,
        methods,
      },
      answer: (prompt) => answers(models, tokenizer, prompt),
      dispose: () => {
        for (const m of models.values()) m.dispose();
        base.dispose();
      },
    };
  } catch (e) {
    for (const m of models.values()) m.dispose();
    base.dispose();
    throw e;
  }
}
