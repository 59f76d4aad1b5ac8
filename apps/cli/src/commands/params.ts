import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AdapterError,
  countParameters,
  METHODS,
  type Method,
  type ParameterCount,
  presetConfig,
  RECOMMENDED,
} from '@sharelora/adapters';
import { formatBytes, ShareloraError } from '@sharelora/core';
import { type LinearModules, linearModulesFromConfig } from '@sharelora/models';
import { estimateStepMemory, type StepMemoryEstimate } from '@sharelora/train';
import { intFlag, oneOf, parseFlags, requireFlags } from '../args.js';
import { asUsage, UsageError } from '../cli-error.js';
import { RECOMMENDED_TEXT, TARGETS_HELP, targetsFlag } from '../targets.js';

const DESCRIPTIONS: Record<Method, string> = {
  lora: 'plain LoRA: A and B per layer',
  'share-a': 'A shared across layers (one per module type), B per layer',
  'share-b': 'B shared across layers (one per module type), A per layer',
  'share-ab': 'A and B shared across layers: one LoRA per module type',
  'share-qkv': 'one A for q, k and v of all layers (other types: one A each), B per layer',
};

export const paramsHelp = `Usage: sharelora params --model DIR [--method METHOD] [--rank R] [--targets LIST]
                        [--memory [--batch-size N] [--seq-length T]] [--json]

Counts the trainable parameters of a LoRA or ShareLoRA adapter from the model's config.json alone (no
weights are read): for each targeted module type its sizes, what plain LoRA trains, what METHOD trains
(a shared matrix counted once) and the reduction. GPT-2, RoBERTa/BERT and LLaMA-family configs.
Defaults: ${RECOMMENDED_TEXT}; targets q,v.

With --memory it also estimates a training step's device memory at each precision of the frozen base
(f32, bf16, int8, nf4, as \`sharelora train --quantize\` keeps it): the blocks' linear weights, the other
weights (embeddings, heads, norms: bf16 unless f32), the adapter, its gradients, AdamW's moments and the
activations at the step's peak. Tensor bytes; the process adds the runtime and driver on top.

Options:
  --model DIR            model directory with config.json (or the config.json file itself)
  --method METHOD        ${METHODS.join(' | ')} (default ${RECOMMENDED.method})
${METHODS.map((m) => `                           ${m.padEnd(10)} ${DESCRIPTIONS[m]}`).join('\n')}
  --rank R               LoRA rank r (default ${RECOMMENDED.r})
  --targets LIST         ${TARGETS_HELP}
  --memory               estimate a training step's memory at f32 / bf16 / int8 / nf4
  --batch-size N         batch for --memory (default 1)
  --seq-length T         tokens per example for --memory (default 512)
  --json                 print one JSON document on stdout
  -h, --help             show this help`;

async function readModelConfig(
  model: string,
): Promise<{ file: string; config: Record<string, unknown>; modules: LinearModules }> {
  let file = model;
  try {
    if ((await stat(model)).isDirectory()) file = join(model, 'config.json');
  } catch {
    throw new UsageError(`--model ${model}: no such file or directory`);
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--model ${file}: ${(e as Error).message}`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new UsageError(`${file}: not a JSON object`);
  try {
    const config = json as Record<string, unknown>;
    return { file, config, modules: linearModulesFromConfig(config) };
  } catch (e) {
    if (e instanceof ShareloraError && e.code === 'BAD_MODEL_CONFIG') {
      throw new UsageError(`${file}: ${e.message.replace(/^config\.json: /, '')}`);
    }
    throw e;
  }
}

const num = (n: number): string => n.toLocaleString('en-US');
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

function table(count: ParameterCount, method: Method): string {
  const rows: string[][] = [['module type', 'modules', 'd_in', 'd_out', 'LoRA', method, 'reduction']];
  for (const t of count.byModuleType) {
    rows.push([
      t.moduleType,
      String(t.modules),
      String(t.inFeatures),
      String(t.outFeatures),
      num(t.lora),
      num(t.trainable),
      pct(t.reduction),
    ]);
  }
  for (const m of count.crossType) {
    rows.push([
      `${m.matrix} [${m.shape.join('×')}] shared over ${m.sharedOver}`,
      '',
      '',
      '',
      '',
      num(m.params),
      '',
    ]);
  }
  rows.push([
    'total',
    '',
    '',
    '',
    num(count.total.lora),
    num(count.total.trainable),
    pct(count.total.reduction),
  ]);
  return alignRows(rows);
}

export async function params(argv: string[]): Promise<number> {
  const { values } = parseFlags('params', argv, {
    model: { type: 'string' },
    method: { type: 'string' },
    rank: { type: 'string' },
    targets: { type: 'string' },
    json: { type: 'boolean' },
    memory: { type: 'boolean' },
    'batch-size': { type: 'string' },
    'seq-length': { type: 'string' },
  });
  if (values.help) {
    console.log(paramsHelp);
    return 0;
  }
  requireFlags('params', values, ['model']);
  const method = oneOf('method', values.method, METHODS) ?? RECOMMENDED.method;
  const rank = intFlag('rank', values.rank, RECOMMENDED.r);
  if (!values.memory && (values['batch-size'] !== undefined || values['seq-length'] !== undefined))
    throw new UsageError('--batch-size and --seq-length apply to --memory; add --memory');
  const batchSize = intFlag('batch-size', values['batch-size'], 1);
  const seqLength = intFlag('seq-length', values['seq-length'], 512);
  const { file, config, modules } = await readModelConfig(values.model as string);
  const requested = values.targets?.split(',').map((t) => t.trim());
  if (requested?.some((t) => !t)) throw new UsageError(`--targets "${values.targets}": empty entry`);
  const targets = targetsFlag(modules.modules, requested);
  let count: ParameterCount;
  try {
    count = countParameters(modules.modules, presetConfig(method, { r: rank, targetModules: targets }));
  } catch (e) {
    if (e instanceof AdapterError) throw new UsageError(`--targets ${targets.join(',')}: ${e.message}`);
    throw e;
  }
  let memory: StepMemoryEstimate[] | undefined;
  try {
    if (values.memory) memory = estimateStepMemory({ config, method, rank, targets, batchSize, seqLength });
  } catch (e) {
    if (e instanceof ShareloraError && e.code === 'BAD_MODEL_CONFIG')
      throw new UsageError(`${file}: ${e.message.replace(/^config\.json: /, '')}`);
    asUsage(e);
  }
  if (values.json) {
    const report = {
      config: file,
      arch: modules.arch,
      layers: modules.layers,
      method,
      rank,
      targets,
      modules: count.byModuleType,
      crossType: count.crossType,
      total: count.total,
      ...(memory ? { memory: { batchSize, seqLength, estimates: memory } } : {}),
    };
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  console.log(`config   ${file} (${modules.arch}, ${modules.layers} layers)`);
  console.log(`method   ${method}, r=${rank}: ${DESCRIPTIONS[method]}`);
  console.log(`targets  ${targets.join(', ')}`);
  console.log('');
  console.log(table(count, method));
  if (memory) {
    console.log('');
    console.log(`estimated memory of one training step, batch ${batchSize}×${seqLength} (tensor bytes)`);
    console.log(memoryTable(memory));
  }
  return 0;
}

function memoryTable(estimates: StepMemoryEstimate[]): string {
  const header = [
    'base',
    'block weights',
    'other weights',
    'adapter',
    'gradients',
    'AdamW',
    'activations',
    'total',
  ];
  const rows = estimates.map((e) =>
    [e.blockWeights, e.otherWeights, e.adapter, e.gradients, e.optimizer, e.activations, e.total].map(
      formatBytes,
    ),
  );
  return alignRows([header, ...estimates.map((e, i) => [e.precision, ...rows[i]])]);
}

/** Rows as columns: the first left-aligned, the rest right-aligned. */
function alignRows(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
