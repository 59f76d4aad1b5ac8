import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '@sharelora/core';
import { init, shutdown } from '@sharelora/core/node';
import { CHECKPOINT_TARGETS, type CheckpointTarget, quantizeCheckpoint, readConfig } from '@sharelora/models';
import { checkOutputPath, withOutputDirLock } from '@sharelora/train';
import { oneOf, parseFlags, requireFlags } from '../args.js';
import { asUsage } from '../cli-error.js';
import { progress, progressDone } from '../progress.js';

export const quantizeHelp = `Usage: sharelora quantize --model DIR --to nf4|fp4|int8|bf16|f16|f32 --out DIR [--overwrite] [--json]

Writes a copy of a model directory with its transformer blocks' linear weights quantized, in the
layout transformers saves bitsandbytes models in (config.json's quantization_config; 4-bit weights
as packed codes with their double-quantized absmax and quant state, int8 weights with their row
scales SCB). The copy loads quantized in train, generate, eval and forward without --quantize, and
takes about a quarter (4-bit) or half (int8) of a BF16 checkpoint's bytes. Embeddings, norms, the
output layer and task heads keep their dtype. --to bf16|f16|f32 writes a float copy instead
(a quantized directory dequantized, e.g. to merge an adapter into it). One tensor is held in memory
at a time. Tokenizer and generation files are copied.

Options:
  --model DIR      Hugging Face model directory (config.json + safetensors), float or quantized
  --to FORMAT      nf4 or fp4 (4-bit, blocks of 64, QLoRA's double quantization), int8 (absmax per
                   row), or bf16, f16, f32
  --out DIR        output directory (created if missing); refused if it is or contains --model, or
                   already holds a model, unless --overwrite
  --overwrite      replace a model already in --out
  --json           print {model, to, out, files, bytes} as one JSON document
  -h, --help       show this help

Exit status: 0 done, 1 runtime failure, 2 bad usage or bad input (the message names the flag or file).`;

export async function quantize(argv: string[]): Promise<number> {
  const { values } = parseFlags('quantize', argv, {
    model: { type: 'string' },
    to: { type: 'string' },
    out: { type: 'string' },
    overwrite: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(quantizeHelp);
    return 0;
  }
  requireFlags('quantize', values, ['model', 'to', 'out']);
  const model = values.model as string;
  const out = values.out as string;
  const to = oneOf('to', values.to, CHECKPOINT_TARGETS) as CheckpointTarget;
  await readConfig(model).catch(asUsage);
  await checkOutputPath(out, {
    kind: 'directory',
    inputs: [{ flag: '--model', path: model, wholeTree: true }],
    overwriteModel: values.overwrite === true,
  }).catch(asUsage);
  await init();
  try {
    const files = await withOutputDirLock(out, () =>
      quantizeCheckpoint(model, out, to, {
        onProgress: (p) => progress(`write ${out}`, p.done, p.total, { unit: 'tensors', detail: p.tensor }),
      }),
    )
      .catch(asUsage)
      .finally(progressDone);
    let total = 0;
    for (const f of files) total += (await stat(join(out, f))).size;
    if (values.json) console.log(JSON.stringify({ model, to, out, files, bytes: total }, null, 2));
    else console.log(`wrote ${out} (${to}): ${files.length} files, ${formatBytes(total)}`);
    return 0;
  } finally {
    shutdown();
  }
}
