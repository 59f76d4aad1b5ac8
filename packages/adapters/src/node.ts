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
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new AdapterError('BAD_ADAPTER_FILE', `${configPath}: ${(e as Error).message}`);
  }
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
