import { readFile } from 'node:fs/promises';
import { AdapterError, adapterGradients } from '@sharelora/adapters';
import { type AdapterTask, loadAdapter, readAdapterTask } from '@sharelora/adapters/node';
import { backward, noGrad, type Tensor, type TensorInput, tensor, tidy } from '@sharelora/core';
import { init, shutdown, writeSafetensors } from '@sharelora/core/node';
import {
  type AnyModel,
  causalLmLoss,
  checkpointTensors,
  defaultTask,
  loadModel,
  type ModelConfig,
  ModelLoadError,
  maskedLmLoss,
  type ProblemType,
  readCheckpointTensor,
  readConfig,
  sequenceClassificationLoss,
  type Task,
} from '@sharelora/models';
import { parseFlags, quantizeFlag, quantizeHelp } from '../args.js';
import { UsageError } from '../cli-error.js';
import { loadProgress, progressDone } from '../progress.js';

export const forwardHelp = `Usage: sharelora forward --model DIR [--adapter DIR] --inputs FILE [--grads OUT] [--json]
                         [--quantize nf4|fp4|int8]

Runs a model on token ids (no tokenizer needed) and prints its logits and, when FILE has labels, the
loss, both as Hugging Face transformers computes them: causal LMs predict labels[t+1] from position t,
masked LMs labels[t] at t, label -100 is ignored, the loss is the mean over the rest; sequence
classification uses cross entropy (integer labels), mean squared error (num_labels 1 or
problem_type regression) or binary cross entropy (problem_type multi_label_classification).
Positions are 0..T-1 for every row, as transformers' forward uses them.

FILE is JSON:
  {"input_ids": [[...], ...],        one row of token ids per sequence, all rows the same length
   "attention_mask": [[...], ...],   optional, same shape: 1 = token, 0 = padding
   "labels": [[...], ...] | [...]}   optional: per token (causal / masked LM), or one per row
                                     (sequence classification; RoBERTa directories without a
                                     classifier get a new one, initialised with seed 0)

Options:
  --model DIR      Hugging Face model directory (config.json + safetensors)
  --adapter DIR    PEFT / sharelora adapter directory applied to the model
  --inputs FILE    the JSON above
  --grads OUT      write d(loss)/d(every trainable tensor) to OUT (safetensors): all model weights
                   under their checkpoint names, or with --adapter the adapter's tensors under PEFT's
                   names (a ShareLoRA shared matrix's gradient, the sum over its layers, under every
                   layer's key). Needs labels.
  --json           print one JSON document on stdout (all logits)
${quantizeHelp(19)}
                   (--grads then needs --adapter: a quantized base has no gradients)
  -h, --help       show this help`;

interface Inputs {
  ids: number[][];
  mask?: number[][];
  /** Per-token labels [B][T], or per-row labels: numbers [B] or rows [B][L]. */
  labels?: number[][] | number[];
}

function isNumberMatrix(v: unknown): v is number[][] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every((r) => Array.isArray(r) && r.length > 0 && r.every((x) => typeof x === 'number'))
  );
}

async function readInputs(file: string): Promise<Inputs> {
  const bad = (what: string): never => {
    throw new UsageError(`--inputs ${file}: ${what}`);
  };
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    bad((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) bad('not a JSON object');
  const unknown = Object.keys(json).filter((k) => !['input_ids', 'attention_mask', 'labels'].includes(k));
  if (unknown.length) bad(`unknown keys ${unknown.join(', ')} (expected input_ids, attention_mask, labels)`);
  const ids = json.input_ids;
  if (!isNumberMatrix(ids))
    return bad('"input_ids" must be a non-empty list of non-empty lists of token ids');
  const T = ids[0].length;
  const sameShape = (key: string, m: unknown): number[][] => {
    if (!isNumberMatrix(m) || m.length !== ids.length || m.some((r) => r.length !== T)) {
      return bad(`"${key}" must have the shape of input_ids [${ids.length}, ${T}]`);
    }
    return m;
  };
  ids.forEach((r, b) => {
    if (r.length !== T)
      bad(
        `"input_ids" row ${b} has ${r.length} ids but row 0 has ${T} (pad rows to one length and set attention_mask)`,
      );
    if (!r.every(Number.isInteger)) bad(`"input_ids" row ${b} holds a non-integer`);
  });
  const out: Inputs = { ids };
  if (json.attention_mask !== undefined) {
    out.mask = sameShape('attention_mask', json.attention_mask);
    if (!out.mask.flat().every((x) => x === 0 || x === 1)) bad('"attention_mask" values must be 0 or 1');
  }
  const labels = json.labels;
  if (labels !== undefined) {
    if (Array.isArray(labels) && labels.length === ids.length && labels.every((x) => typeof x === 'number'))
      out.labels = labels as number[];
    else if (isNumberMatrix(labels) && labels.length === ids.length) out.labels = labels;
    else bad(`"labels" must be one list per row of input_ids (${ids.length} rows) or one number per row`);
  }
  return out;
}

/**
 * The task FILE's labels (one label per row means sequence classification) or the adapter's
 * task_type (a SEQ_CLS adapter, as PEFT applies it to AutoModelForSequenceClassification) call for.
 */
function taskFor(config: ModelConfig, inputs: Inputs, file: string, adapter: AdapterTask | null): Task {
  const perRow = inputs.labels !== undefined && !Array.isArray(inputs.labels[0]);
  const seqCls = adapter?.taskType === 'SEQ_CLS';
  if (config.arch === 'roberta') {
    if (seqCls && inputs.labels !== undefined && !perRow)
      throw new UsageError(`--inputs ${file}: a SEQ_CLS adapter takes one label per row, not one per token`);
    return perRow || seqCls ? 'sequence-classification' : defaultTask(config);
  }
  if (perRow)
    throw new UsageError(
      `--inputs ${file}: "labels" has one label per row, but ${config.arch} is a causal LM (give one label per token)`,
    );
  return 'causal-lm';
}

const i32 = (rows: number[][]): Tensor =>
  tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'i32');

interface Prepared {
  ids: Tensor;
  mask?: Tensor;
  loss?: (logits: Tensor) => Tensor;
  /** What the loss is a mean of, and in what unit (cross entropy in natural log: nats). */
  lossUnit?: string;
  problemType?: ProblemType;
}

const LOSS_UNITS: Record<ProblemType, string> = {
  single_label_classification: 'nats/example',
  multi_label_classification: 'nats/label',
  regression: 'squared error/value',
};

/** Checks ids and labels against the model and makes the tensors and the loss function. */
function prepare(model: AnyModel, inputs: Inputs, file: string): Prepared {
  const bad = (what: string): never => {
    throw new UsageError(`--inputs ${file}: ${what}`);
  };
  const V = model.config.vocabSize;
  const outside = inputs.ids.flat().find((id) => id < 0 || id >= V);
  if (outside !== undefined) bad(`token id ${outside} is outside the model's vocabulary [0, ${V})`);
  const p: Prepared = { ids: i32(inputs.ids), mask: inputs.mask && i32(inputs.mask) };
  const labels = inputs.labels;
  if (labels === undefined) return p;
  if (model.task !== 'sequence-classification') {
    const rows = labels as number[][];
    if (!Array.isArray(rows[0]) || rows.some((r) => r.length !== inputs.ids[0].length))
      bad('"labels" must have the shape of input_ids');
    if (!rows.flat().every((y) => y === -100 || (Number.isInteger(y) && y >= 0 && y < V)))
      bad(`"labels" must be -100 or token ids in [0, ${V})`);
    const lossFn = model.task === 'causal-lm' ? causalLmLoss : maskedLmLoss;
    p.loss = (logits) => lossFn(logits, i32(rows));
    p.lossUnit = 'nats/token';
    return p;
  }
  const L = model.numLabels;
  const perRow = !Array.isArray(labels[0]);
  const problem: ProblemType =
    model.config.problemType ??
    (!perRow ? 'multi_label_classification' : L === 1 ? 'regression' : 'single_label_classification');
  p.problemType = problem;
  p.lossUnit = LOSS_UNITS[problem];
  let t: Tensor;
  if (problem === 'single_label_classification') {
    const ys = labels as number[];
    if (!perRow || !ys.every((y) => Number.isInteger(y) && y >= 0 && y < L))
      bad(`"labels" must be one class index in [0, ${L}) per row`);
    t = tensor(Int32Array.from(ys), [ys.length], 'i32');
  } else if (perRow) {
    if (L !== 1) bad(`"labels": ${problem} with ${L} labels needs one list of ${L} numbers per row`);
    t = tensor(Float32Array.from(labels as number[]), [labels.length, 1]);
  } else {
    const rows = labels as number[][];
    if (rows.some((r) => r.length !== L)) bad(`"labels" rows must have num_labels = ${L} values`);
    t = tensor(Float32Array.from(rows.flat()), [rows.length, L]);
  }
  p.loss = (logits) => sequenceClassificationLoss(logits, t, problem);
  return p;
}

type GradTensors = Record<string, TensorInput>;

/** Every model weight's gradient under its checkpoint name (a tied matrix once: the sum over its uses). */
async function modelGradients(model: AnyModel): Promise<GradTensors> {
  const out: GradTensors = {};
  for (const t of checkpointTensors(model)) {
    out[t.name] = { dtype: 'F32', shape: t.shape, data: await readCheckpointTensor(t, 'grad') };
  }
  return out;
}

/** Nested arrays of a flat row-major array. */
function nest(data: Float32Array, shape: readonly number[]): unknown {
  if (shape.length === 1) return Array.from(data);
  const step = data.length / shape[0];
  return Array.from({ length: shape[0] }, (_, i) =>
    nest(data.subarray(i * step, (i + 1) * step), shape.slice(1)),
  );
}

function preview(data: Float32Array, shape: readonly number[]): string[] {
  const V = shape[shape.length - 1];
  const rows = data.length / V;
  const lines: string[] = [];
  for (let r = 0; r < Math.min(rows, 12); r++) {
    const idx = shape.length === 3 ? `[${Math.floor(r / shape[1])}, ${r % shape[1]}]` : `[${r}]`;
    const vals = Array.from(data.subarray(r * V, r * V + Math.min(V, 6)), (x) => x.toFixed(4).padStart(9));
    let arg = 0;
    for (let v = 1; v < V; v++) if (data[r * V + v] > data[r * V + arg]) arg = v;
    lines.push(`  ${idx.padEnd(9)} argmax ${String(arg).padEnd(6)} ${vals.join(' ')}${V > 6 ? ' ...' : ''}`);
  }
  if (rows > 12) lines.push(`  ... ${rows - 12} more rows (--json prints all)`);
  return lines;
}

export async function forward(argv: string[]): Promise<number> {
  const { values } = parseFlags('forward', argv, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    inputs: { type: 'string' },
    grads: { type: 'string' },
    json: { type: 'boolean' },
    quantize: { type: 'string' },
  });
  if (values.help) {
    console.log(forwardHelp);
    return 0;
  }
  if (!values.model) throw new UsageError('sharelora forward: --model DIR is required');
  if (!values.inputs) throw new UsageError('sharelora forward: --inputs FILE is required');
  const file = values.inputs;
  const quantize = quantizeFlag(values.quantize);
  if (quantize && values.grads && !values.adapter)
    throw new UsageError(
      `--grads with --quantize ${quantize} needs --adapter: the quantized base weights are frozen and have no gradients`,
    );
  const inputs = await readInputs(file);
  if (values.grads && inputs.labels === undefined)
    throw new UsageError(`--grads needs labels in --inputs ${file}`);

  await init();
  try {
    let loaded: Awaited<ReturnType<typeof loadModel>>;
    let adapter: AdapterTask | null = null;
    try {
      const config = await readConfig(values.model);
      adapter = values.adapter ? await readAdapterTask(values.adapter) : null;
      loaded = await loadModel(values.model, {
        task: taskFor(config, inputs, file, adapter),
        numLabels: adapter?.numLabels ?? undefined,
        trainable: Boolean(values.grads) && !values.adapter,
        quantize,
        onProgress: loadProgress(values.model),
      });
      progressDone();
      if (values.adapter) await loadAdapter(loaded.model, values.adapter);
    } catch (e) {
      if (e instanceof ModelLoadError || e instanceof AdapterError) throw new UsageError(e.message);
      throw e;
    }
    const { model } = loaded;
    // A head the adapter saves (modules_to_save) replaced the initialised one.
    if (loaded.initialised.length && !adapter?.numLabels) {
      console.error(
        `sharelora forward: ${loaded.initialised.join(', ')} not in ${values.model}; initialised with seed 0`,
      );
    }
    const p = prepare(model, inputs, file);
    const step = () =>
      tidy(() => {
        const out = model.forward(p.ids, { attentionMask: p.mask });
        const l = p.loss?.(out);
        if (l && values.grads) backward(l);
        return { logits: out, loss: l };
      });
    const { logits, loss } = values.grads ? step() : noGrad(step);
    const data = (await logits.data()) as Float32Array;
    const lossValue = loss ? await loss.item() : null;
    let gradCount = 0;
    if (values.grads) {
      const grads = values.adapter ? await adapterGradients(model) : await modelGradients(model);
      gradCount = Object.keys(grads).length;
      await writeSafetensors(values.grads, grads, { format: 'pt' });
    }
    if (values.json) {
      console.log(
        JSON.stringify({
          model: values.model,
          adapter: values.adapter ?? null,
          architecture: model.hfClass,
          task: model.task,
          ...(p.problemType ? { problem_type: p.problemType } : {}),
          shape: logits.shape,
          logits: nest(data, logits.shape),
          loss: lossValue,
          ...(values.grads ? { grads: { file: values.grads, tensors: gradCount } } : {}),
        }),
      );
    } else {
      console.log(
        `model    ${values.model} (${model.hfClass}, ${model.task}${values.adapter ? `, adapter ${values.adapter}` : ''})`,
      );
      console.log(`logits   [${logits.shape.join(', ')}]`);
      for (const line of preview(data, logits.shape)) console.log(line);
      console.log(`loss     ${lossValue === null ? '(no labels)' : `${lossValue} ${p.lossUnit}`}`);
      if (values.grads) console.log(`grads    ${gradCount} tensors written to ${values.grads}`);
    }
    return 0;
  } finally {
    shutdown();
  }
}
