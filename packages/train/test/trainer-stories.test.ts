/**
 * Issue 5's fine-tuning check on a real pretrained model: stories260K (llama2.c, TinyStories) with a
 * ShareA adapter on a small story set. The validation loss falls, the adapter saves, and a fresh
 * model with the saved adapter loaded gives the same validation loss.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAdapter } from '@sharelora/adapters/node';
import { init, shutdown } from '@sharelora/core/node';
import { importLlama2c, loadModel } from '@sharelora/models';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { splitValidation, Trainer } from '../src/index.js';
import { data, haveData } from './helpers.js';
import { adapted, stories, textExamples } from './trainer-fixtures.js';

const ready = haveData('stories260K/stories260K.bin', 'stories260K/tok512.bin');
let root: string;

beforeAll(async () => {
  if (!ready) return;
  await init();
  root = await mkdtemp(join(tmpdir(), 'sharelora-stories-'));
});

afterAll(async () => {
  if (!ready) return;
  shutdown();
  await rm(root, { recursive: true, force: true });
});

it.runIf(ready)(
  'fine-tunes stories260K with ShareA; the saved adapter reproduces the validation loss',
  async () => {
    const modelDir = join(root, 'stories260K');
    await importLlama2c(data('stories260K', 'stories260K.bin'), {
      tokenizerPath: data('stories260K', 'tok512.bin'),
      outDir: modelDir,
    });
    const split = splitValidation(stories(64), { validation: 16, seed: 0 });
    const train = await textExamples(modelDir, split.train);
    const { examples: validation } = await textExamples(modelDir, split.validation);
    const outDir = join(root, 'run');
    const model = await adapted(modelDir, { method: 'share-a' });
    const trainer = new Trainer({
      model,
      train: train.examples,
      validation,
      padId: train.padId,
      batchSize: 8,
      steps: 30,
      lr: 1e-2,
      warmupSteps: 3,
      schedule: 'cosine',
      maxGradNorm: 1,
      seed: 0,
      evalEvery: 10,
      outDir,
    });
    const before = await trainer.evaluate(validation);
    const r = await trainer.train();
    const after = r.evals.at(-1)?.valLoss as number;
    console.log(
      `stories260K ShareA: validation loss ${before.toFixed(4)} -> ${r.evals.map((e) => e.valLoss.toFixed(4)).join(' -> ')}, ` +
        `${r.report.msPerStep.toFixed(0)} ms/step`,
    );
    expect(r.evals.map((e) => e.step)).toEqual([10, 20, 30]);
    expect(after).toBeLessThan(before * 0.7);
    expect(r.bestValLoss).toBe(Math.min(...r.evals.map((e) => e.valLoss)));
    expect(r.outputs).toMatchObject({ adapter: outDir, best: join(outDir, 'best') });

    // One line per step and per evaluation, with the documented fields.
    const lines = (await readFile(join(outDir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(33);
    expect(Object.keys(lines[0]).sort()).toEqual(
      ['epoch', 'gradNorm', 'loss', 'lr', 'memory', 'msPerStep', 'step', 'tokensPerSec', 'type'].sort(),
    );
    expect(lines[0].lr).toBe(0);
    // AdamW keeps two f32 tensors per trainable element; gradients peak at one.
    const { params, bytes } = r.report;
    expect(bytes.optimizer).toBe(8 * params.trainable);
    expect(bytes.gradients).toBe(4 * params.trainable);
    expect(bytes.trainable).toBe(4 * params.trainable);
    model.dispose();

    const { model: fresh } = await loadModel(modelDir);
    await loadAdapter(fresh, outDir);
    const reloaded = await new Trainer({
      model: fresh,
      train: validation,
      padId: train.padId,
      batchSize: 8,
      lr: 0,
      seed: 0,
    }).evaluate(validation);
    expect(Math.abs(reloaded - after)).toBeLessThanOrEqual(1e-6);
    fresh.dispose();
  },
);
