/** fineTune(): the whole pipeline on a tiny LLaMA, its hooks, and the settings it refuses. */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, shutdown } from '@sharelora/core/node';
import { initPreset } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FineTuneError, fineTune, PROMPT_FORMAT_FILE } from '../src/index.js';

let dir = '';
const at = (...p: string[]) => join(dir, ...p);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sharelora-finetune-'));
  await init();
  await initPreset({ arch: 'llama', preset: 'tiny', outDir: at('base'), seed: 3 });
  const rows = Array.from({ length: 24 }, (_, i) => ({
    question: `What is ${i} plus 1?`,
    answer: `#### ${i + 1}`,
  }));
  await writeFile(at('qa.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
}, 120_000);

afterAll(async () => {
  shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('fineTune', () => {
  it('reads, splits, trains an adapter and saves it with its prompt format; hooks hear each stage', async () => {
    const messages: string[] = [];
    const steps: number[] = [];
    let started: { totalSteps: number; lossUnit: string } | null = null;
    const run = await fineTune(
      {
        model: at('base'),
        data: at('qa.jsonl'),
        format: { type: 'gsm8k' },
        validation: 0.25,
        method: 'share-a',
        rank: 2,
        alpha: 4,
        targets: ['q', 'v'],
        batchSize: 4,
        steps: 3,
        lr: 1e-2,
        evalEvery: 3,
        out: at('run'),
      },
      {
        onMessage: (m) => messages.push(m),
        onStart: (info) => {
          started = info;
        },
        onStep: (m) => steps.push(m.step),
      },
    );
    expect(started).toEqual({ totalSteps: 3, lossUnit: 'nats/token' });
    expect(steps).toEqual([1, 2, 3]);
    expect(run.result.steps).toBe(3);
    expect(run.reports.map(([name]) => name)).toEqual(['train', 'validation']);
    expect(run.reports[0][1].examples + run.reports[1][1].examples).toBe(24);
    expect(messages[0]).toMatch(/^train: /);
    expect(run.adapter).toEqual({
      method: 'share-a',
      r: 2,
      alpha: 4,
      targets: ['self_attn.q_proj', 'self_attn.v_proj'],
    });
    expect(run.result.bestValLoss).not.toBeNull();
    const adapterDir = run.result.outputs.adapter as string;
    expect(existsSync(join(adapterDir, 'adapter_model.safetensors'))).toBe(true);
    expect(JSON.parse(await readFile(join(adapterDir, PROMPT_FORMAT_FILE), 'utf8'))).toEqual({
      format: 'gsm8k',
    });
    expect(run.frozenBytesByPrecision?.map((f) => f.precision)).toEqual(['f32', 'bf16', 'int8', 'nf4']);
  });

  it('refuses settings that do not fit the model, naming the setting, before anything is written', async () => {
    const base = {
      model: at('base'),
      data: at('qa.jsonl'),
      method: 'lora' as const,
      batchSize: 4,
      steps: 1,
      lr: 1e-2,
    };
    const classify = fineTune({
      ...base,
      format: { type: 'classification', fields: { text: 'question', label: 'answer' } },
      out: at('x1'),
    });
    await expect(classify).rejects.toThrow(FineTuneError);
    await expect(classify).rejects.toThrow(/trains a sequence classifier, which needs a RoBERTa model/);
    const long = await fineTune({
      ...base,
      format: { type: 'gsm8k' },
      maxLength: 1_000_000,
      out: at('x2'),
    }).catch((e) => e);
    expect(long).toBeInstanceOf(FineTuneError);
    expect((long as FineTuneError).setting).toBe('maxLength');
    expect(existsSync(at('x1')) || existsSync(at('x2'))).toBe(false);
  });
});
