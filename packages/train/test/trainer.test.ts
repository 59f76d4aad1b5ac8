/**
 * Trainer mechanics on a tiny random LLaMA (no real data needed): gradient accumulation, NaN
 * handling, atomic checkpoints and bit-identical resume.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveAdapter } from '@sharelora/adapters/node';
import { assignTensor } from '@sharelora/core';
import { init, shutdown } from '@sharelora/core/node';
import { initPreset } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Example,
  LOCK_FILE,
  lockOutputDir,
  OutputLockedError,
  Trainer,
  type TrainerOptions,
  TrainingError,
} from '../src/index.js';
import { cleanStale } from '../src/trainer/checkpoint.js';
import { adapted, stories, textExamples } from './trainer-fixtures.js';

let root: string;
let modelDir: string;
let data: { examples: Example[]; padId: number };

beforeAll(async () => {
  await init();
  root = await mkdtemp(join(tmpdir(), 'sharelora-trainer-'));
  modelDir = join(root, 'llama');
  await initPreset({ arch: 'llama', preset: 'tiny', outDir: modelDir });
  data = await textExamples(modelDir, stories(24));
});

afterAll(async () => {
  shutdown();
  await rm(root, { recursive: true, force: true });
});

const base = (over: Partial<TrainerOptions>): Omit<TrainerOptions, 'model'> => ({
  train: data.examples,
  padId: data.padId,
  batchSize: 4,
  lr: 1e-2,
  schedule: 'constant',
  seed: 0,
  ...over,
});

async function trainableValues(model: Awaited<ReturnType<typeof adapted>>): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const p of model.parameters({ trainableOnly: true })) out.push((await p.value.data()) as Float32Array);
  return out;
}

describe('Trainer', () => {
  it('gradient accumulation gives the update of one large batch', async () => {
    const runs = [];
    for (const [batchSize, gradAccum] of [
      [4, 1],
      [2, 2],
    ]) {
      const model = await adapted(modelDir);
      const r = await new Trainer({ model, ...base({ batchSize, gradAccum, steps: 3 }) }).train();
      runs.push({ r, values: await trainableValues(model) });
      model.dispose();
    }
    const [big, acc] = runs;
    for (const [i, h] of big.r.history.entries()) {
      // Micro-batches are padded to their own lengths, so only summation order differs.
      expect(acc.r.history[i].loss).toBeCloseTo(h.loss, 5);
      expect(acc.r.history[i].gradNorm / h.gradNorm).toBeCloseTo(1, 4);
    }
    for (const [i, v] of big.values.entries()) {
      let worst = 0;
      for (let k = 0; k < v.length; k++) worst = Math.max(worst, Math.abs(v[k] - acc.values[i][k]));
      expect(worst).toBeLessThan(1e-6);
    }
  });

  it('stops on a NaN loss naming the step, before updating, keeping the last good checkpoint', async () => {
    const model = await adapted(modelDir);
    const outDir = join(root, 'nan');
    const B = model.namedParameters({ trainableOnly: true }).find(([n]) => n.includes('v_proj.lora_B'));
    if (!B) throw new Error('no lora_B parameter');
    const trainer = new Trainer({
      model,
      ...base({ steps: 6, saveEvery: 2, outDir }),
      // Poisons the adapter after step 3, so step 4's loss is NaN.
      onStep: (m) => {
        if (m.step === 3)
          assignTensor(B[1].value, {
            data: new Float32Array(B[1].value.size).fill(Number.NaN),
            shape: B[1].shape,
          });
      },
    });
    const err = await trainer.train().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect((err as TrainingError).code).toBe('NON_FINITE');
    expect((err as TrainingError).step).toBe(4);
    expect((err as Error).message).toMatch(/loss is NaN at step 4 .*checkpoint-2/);
    expect(await readdir(outDir)).toEqual(['checkpoint-2', 'metrics.jsonl']);
    const lines = (await readFile(join(outDir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ type: 'step', step: 4, loss: null });
    model.dispose();
  });

  it('writes checkpoints atomically; a resumed run ends bit-identical to an uninterrupted one', async () => {
    // LoRA dropout, accumulation and two epochs: the resume must restore dropout offsets and the data position.
    const opts = base({
      steps: 6,
      gradAccum: 2,
      saveEvery: 2,
      validation: data.examples.slice(0, 4),
      evalEvery: 3,
    });
    const whole = join(root, 'whole');
    const modelA = await adapted(modelDir, { dropout: 0.1 });
    const a = await new Trainer({ model: modelA, ...opts, outDir: whole }).train();
    expect(a.steps).toBe(6);
    expect(a.history.map((h) => h.epoch.toFixed(3))).toEqual([
      '0.333',
      '0.667',
      '1.000',
      '1.333',
      '1.667',
      '2.000',
    ]);
    modelA.dispose();

    // A crash while checkpoint-4 is being written (after its tensors, before it is renamed into place).
    const crashed = join(root, 'crashed');
    const modelB = await adapted(modelDir, { dropout: 0.1 });
    const crash = new Trainer({
      model: modelB,
      ...opts,
      outDir: crashed,
      save: async (dir) => {
        if (dir.includes('checkpoint-4')) throw new Error('simulated crash');
        await saveAdapter(modelB, dir);
      },
    });
    await expect(crash.train()).rejects.toThrow('simulated crash');
    modelB.dispose();
    expect((await readdir(crashed)).sort()).toEqual(['best', 'checkpoint-2', 'metrics.jsonl']);
    // What a kill -9 in the middle of a write leaves behind: a partial temporary directory.
    await mkdir(join(crashed, 'checkpoint-4.tmp-0badf00d'));
    await writeFile(join(crashed, 'checkpoint-4.tmp-0badf00d', 'trainable.safetensors'), 'partial');

    const modelC = await adapted(modelDir, { dropout: 0.1 });
    const c = await new Trainer({ model: modelC, ...opts, outDir: crashed, resume: true }).train();
    modelC.dispose();
    expect(c.resumedFrom).toBe(2);
    expect(c.history.map((h) => h.step)).toEqual([3, 4, 5, 6]);
    expect(c.history.map((h) => h.loss)).toEqual(a.history.slice(2).map((h) => h.loss));
    expect(c.evals).toEqual(a.evals);
    expect(existsSync(join(crashed, 'checkpoint-4.tmp-0badf00d'))).toBe(false);
    for (const f of ['adapter_model.safetensors', 'best/adapter_model.safetensors']) {
      expect(Buffer.compare(await readFile(join(crashed, f)), await readFile(join(whole, f))), f).toBe(0);
    }
    // The killed run had logged steps 3 and 4 already; the resumed log has every step once.
    const logged = (await readFile(join(crashed, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.type === 'step')
      .map((l) => l.step);
    expect(logged).toEqual([1, 2, 3, 4, 5, 6]);

    const modelD = await adapted(modelDir, { dropout: 0.1 });
    await expect(new Trainer({ model: modelD, ...opts, outDir: whole }).train()).rejects.toMatchObject({
      code: 'OUT_DIR_IN_USE',
    });
    await expect(
      new Trainer({ model: modelD, ...opts, lr: 2e-2, outDir: whole, resume: true }).train(),
    ).rejects.toThrow(/other settings: lr 0\.01 \(now 0\.02\)/);
    modelD.dispose();
  });

  it('holds a lock on outDir while training: a second run is refused, the caller may pass its own', async () => {
    const outDir = join(root, 'locked');
    const model = await adapted(modelDir);
    const held = await lockOutputDir(outDir);
    try {
      await expect(new Trainer({ model, ...base({ steps: 1, outDir }) }).train()).rejects.toThrow(
        OutputLockedError,
      );
      expect(await readdir(outDir)).toEqual([LOCK_FILE]);
      const events: string[] = [];
      const r = await new Trainer({
        model,
        ...base({ steps: 2, saveEvery: 2, outDir, outDirLock: held }),
        onCheckpoint: (e) => events.push(`${e.step} ${e.written}`),
      }).train();
      expect(r.outputs.checkpoint).toBe(join(outDir, 'checkpoint-2'));
      expect(events).toEqual(['2 false', '2 true']);
    } finally {
      held.release();
      model.dispose();
    }
    expect(await readdir(outDir)).not.toContain(LOCK_FILE);
  });

  it('clears what interrupted writes left, restoring a directory moved aside before its replacement landed', async () => {
    const dir = join(root, 'stale');
    for (const d of [
      'best.old-12345678',
      'checkpoint-3',
      'checkpoint-3.old-aaaaaaaa',
      'checkpoint-5.tmp-abcdef01',
    ]) {
      await mkdir(join(dir, d), { recursive: true });
      await writeFile(join(dir, d, 'f'), d);
    }
    await writeFile(join(dir, 'notes.tmp-1'), 'not ours');
    await cleanStale(dir);
    expect((await readdir(dir)).sort()).toEqual(['best', 'checkpoint-3', 'notes.tmp-1']);
    expect(await readFile(join(dir, 'best', 'f'), 'utf8')).toBe('best.old-12345678');
    expect(await readFile(join(dir, 'checkpoint-3', 'f'), 'utf8')).toBe('checkpoint-3');
  });
});
