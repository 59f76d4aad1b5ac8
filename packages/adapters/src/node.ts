/** Node entry: everything in the platform-neutral entry plus reading and writing adapter directories. */
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Module } from '@sharelora/core';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from '@sharelora/core/node';
import { AdapterError } from './errors.js';
import type { InjectedAdapter, InjectOptions } from './model.js';
import { exportAdapter, importAdapter } from './peft.js';

export * from './index.js';

/** The adapter config's file name in a PEFT adapter directory. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** The adapter weights' file name in a PEFT adapter directory. */
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/**
 * Writes an adapter (default: the active one) as a PEFT adapter directory: adapter_config.json and
 * adapter_model.safetensors (see exportAdapter). Creates `dir` if needed.
 */
export async function saveAdapter(
  model: Module,
  dir: string,
  opts: { name?: string; baseModelNameOrPath?: string } = {},
): Promise<void> {
  const files = await exportAdapter(model, opts);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(files.config, null, 2)}\n`);
  // format: "pt" as PEFT writes it (transformers' loaders check it), and the sharing.
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), files.tensors, files.metadata);
}

/**
 * Loads a PEFT adapter directory (written by PEFT or by saveAdapter) into `model` as a new adapter
 * named `opts.name` (default "default"); see importAdapter for key matching and re-tying.
 */
export async function loadAdapter(
  model: Module,
  dir: string,
  opts: InjectOptions & { onWarning?: (message: string) => void } = {},
): Promise<InjectedAdapter> {
  const json = await readAdapterConfig(dir);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  try {
    await access(weightsPath);
  } catch {
    throw new AdapterError(
      'BAD_ADAPTER_FILE',
      `${weightsPath} not found (PyTorch adapter_model.bin files are not read: re-save the adapter with safetensors)`,
    );
  }
  // A truncated or foreign weights file is a bad adapter file, named as such, not a library failure.
  const unreadable = (e: unknown): never => {
    if (e instanceof SafetensorsError)
      throw new AdapterError(
        'BAD_ADAPTER_FILE',
        `${weightsPath}: not a readable safetensors file: ${e.detail}`,
      );
    throw e;
  };
  const reader = await SafetensorsReader.open(weightsPath).catch(unreadable);
  try {
    return await importAdapter(
      model,
      json,
      {
        keys: () => reader.keys(),
        shape: (k) => reader.info(k).shape,
        read: (k) => reader.read(k).catch(unreadable),
        metadata: reader.metadata,
      },
      { ...opts, file: weightsPath },
    );
  } finally {
    await reader.close();
  }
}

async function readAdapterConfig(dir: string): Promise<unknown> {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  try {
    return JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new AdapterError('BAD_ADAPTER_FILE', `${configPath}: ${(e as Error).message}`);
  }
}

/** What an adapter directory asks of the model it is loaded into. */
export interface AdapterTask {
  /** PEFT's task_type (CAUSAL_LM, SEQ_CLS, ...); null where the config names none. */
  taskType: string | null;
  /** Labels of the classification head the adapter saves (modules_to_save), null without one. */
  numLabels: number | null;
}

/**
 * Reads an adapter directory's task: a SEQ_CLS adapter is applied to a sequence classifier with
 * as many labels as its saved head has (what PEFT users load with AutoModelForSequenceClassification).
 */
export async function readAdapterTask(dir: string): Promise<AdapterTask> {
  const json = await readAdapterConfig(dir);
  const task = json && typeof json === 'object' ? (json as Record<string, unknown>).task_type : null;
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  let numLabels: number | null = null;
  const reader = await SafetensorsReader.open(weightsPath).catch(() => null);
  if (reader) {
    try {
      // RoBERTa's head ends in classifier.out_proj, the decoders' in score; rows = labels.
      const head = reader
        .keys()
        .find((k) =>
          /(^|\.)(classifier\.out_proj|score)\.weight$/.test(k.replace(/\.modules_to_save\.[^.]+/, '')),
        );
      if (head) numLabels = reader.info(head).shape[0];
    } finally {
      await reader.close();
    }
  }
  return { taskType: typeof task === 'string' ? task : null, numLabels };
}
