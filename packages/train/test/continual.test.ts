import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { injectAdapter, presetConfig } from '@sharelora/adapters';
import { init, Rng, shutdown } from '@sharelora/core/node';
import {
  type CausalLM,
  generate,
  initPreset,
  loadModel,
  loadTokenizer,
  type Tokenizer,
} from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ContinualResult,
  type ContinualTask,
  forgettingTable,
  formatForgettingTable,
  padIdOf,
  type TaskScore,
  Trainer,
  textTokenizerOf,
  tokenizeDataset,
  trainContinual,
} from '../src/index.js';
import {
  COPY_TASK,
  type DigitTask,
  digitExample,
  digitRecords,
  randomDigits,
  SHIFT_TASK,
} from '../src/quickstart/tasks.js';

describe('forgettingTable', () => {
  const s = (valLoss: number, accuracy: number | null = null): TaskScore => ({ valLoss, accuracy });

  it('is best earlier score minus final score, positive when a task got worse', () => {
    const t = forgettingTable(
      ['a', 'b', 'c'],
      [[s(1.0, 0.5)], [s(0.8, 0.9), s(2.0)], [s(1.5, 0.6), s(1.0), s(0.3, 1)]],
    );
    expect(t.valLoss).toEqual([
      [1.0, null, null],
      [0.8, 2.0, null],
      [1.5, 1.0, 0.3],
    ]);
    expect(t.accuracy).toEqual([
      [0.5, null, null],
      [0.9, null, null],
      [0.6, null, 1],
    ]);
    // a: lowest earlier loss 0.8, final 1.5; b: improved (2.0 -> 1.0), negative forgetting; c: last task.
    expect(t.forgetting.valLoss[0]).toBeCloseTo(0.7, 12);
    expect(t.forgetting.valLoss[1]).toBeCloseTo(-1.0, 12);
    expect(t.forgetting.valLoss[2]).toBeNull();
    expect(t.forgetting.accuracy[0]).toBeCloseTo(0.3, 12);
    expect(t.forgetting.accuracy.slice(1)).toEqual([null, null]);
    expect(t.averageForgetting.valLoss).toBeCloseTo(-0.15, 12);
    expect(t.averageForgetting.accuracy).toBeCloseTo(0.3, 12);
    expect(t.final.valLoss).toBeCloseTo((1.5 + 1.0 + 0.3) / 3, 12);
    expect(t.final.accuracy).toBeCloseTo(0.8, 12);
    const text = formatForgettingTable(t);
    expect(text.split('\n')).toHaveLength(6);
    expect(text).toContain('forgetting');
    expect(text).toMatch(/\+30\.0pt/);
  });

  it('rejects rows that are not one score per task so far', () => {
    expect(() => forgettingTable(['a', 'b'], [[s(1), s(2)]])).toThrow(/stage 1 has 2 scores/);
    expect(() => forgettingTable(['a'], [])).toThrow(/0 stages/);
  });
});

describe('trainContinual on a tiny LLaMA', () => {
  let dir: string;
  let tok: Tokenizer;
  let model: CausalLM;
  let result: ContinualResult;
  let tasks: ContinualTask<CausalLM>[];
  const padId = () => padIdOf(textTokenizerOf(tok));
  /** What the diagonal should hold: each task re-measured independently right after its own stage. */
  const measured: TaskScore[] = [];

  const REVERSE: DigitTask = { name: 'nines', description: 'd → 9 − d', map: (d) => 9 - d };
  const prompts = randomDigits(new Rng(99), 16);
  const exactMatch = (task: DigitTask) => async (m: CausalLM) => {
    const ex = prompts.map((d) => digitExample(task, d));
    const gens = await generate(
      m,
      tok,
      ex.map((e) => e.prompt),
      { maxNewTokens: 6 },
    );
    return gens.filter((g, i) => g.text === ex[i].answer).length / ex.length;
  };

  beforeAll(async () => {
    await init();
    dir = await mkdtemp(join(tmpdir(), 'sharelora-continual-'));
    await initPreset({ arch: 'llama', preset: 'tiny', outDir: join(dir, 'base'), seed: 3 });
    tok = await loadTokenizer(join(dir, 'base'));
    model = (await loadModel(join(dir, 'base'))).model as CausalLM;
    injectAdapter(model, presetConfig('share-a', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }), {
      rng: 3,
    });
    const text = textTokenizerOf(tok);
    tasks = [COPY_TASK, SHIFT_TASK, REVERSE].map((t, i) => {
      const inputs = randomDigits(new Rng(i), 40);
      const enc = (d: number[][]) =>
        tokenizeDataset(digitRecords(t, d), { type: 'prompt-completion' }, text).examples;
      return {
        name: t.name,
        train: enc(inputs.slice(0, 32)),
        validation: enc(inputs.slice(32)),
        // The last task has no accuracy (its column shows loss only) and its own budget: one epoch
        // of 32 examples in batches of 8 instead of the shared 3 steps.
        accuracy: t === REVERSE ? undefined : exactMatch(t),
        options: t === REVERSE ? { epochs: 1 } : undefined,
      };
    });
    result = await trainContinual({
      model,
      tasks,
      padId: padId(),
      batchSize: 8,
      steps: 3,
      lr: 1e-2,
      seed: 5,
      outDir: join(dir, 'run'),
      onStage: async (s) => {
        const task = tasks[s.stage - 1];
        const trainer = new Trainer({
          model,
          train: task.train,
          padId: padId(),
          batchSize: 8,
          lr: 0,
          seed: 0,
        });
        model.eval();
        measured.push({
          valLoss: await trainer.evaluate(task.validation),
          accuracy: task.accuracy ? await task.accuracy(model) : null,
        });
      },
    });
  }, 240_000);

  afterAll(async () => {
    model?.dispose();
    shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('produces one row per stage and one column per task, nothing above the diagonal', () => {
    const t = result.table;
    expect(t.tasks).toEqual(['copy', 'shift-3', 'nines']);
    expect(t.valLoss).toHaveLength(3);
    expect(t.accuracy).toHaveLength(3);
    for (const [i, row] of t.valLoss.entries()) {
      expect(row).toHaveLength(3);
      row.forEach((v, j) => {
        if (j > i) expect(v).toBeNull();
        else expect(Number.isFinite(v)).toBe(true);
      });
      t.accuracy[i].forEach((a, j) => {
        if (j > i || j === 2) expect(a).toBeNull();
        else expect(a).toBeGreaterThanOrEqual(0);
      });
    }
    expect(result.stages.map((s) => [s.stage, s.task, s.train.steps])).toEqual([
      [1, 'copy', 3],
      [2, 'shift-3', 3],
      [3, 'nines', 4],
    ]);
  });

  it('has on its diagonal the scores measured right after each stage', () => {
    expect(measured).toHaveLength(3);
    for (const [i, s] of result.stages.entries()) {
      expect(result.table.valLoss[i][i]).toBeCloseTo(measured[i].valLoss, 6);
      expect(result.table.accuracy[i][i]).toBe(measured[i].accuracy);
      // The trainer's own validation loss after the stage's last step agrees.
      expect(result.table.valLoss[i][i]).toBeCloseTo(s.train.evals.at(-1)?.valLoss ?? Number.NaN, 6);
      expect(s.scores[i]).toEqual({
        valLoss: result.table.valLoss[i][i],
        accuracy: result.table.accuracy[i][i],
      });
    }
  });

  it('computes forgetting from its own rows', () => {
    const t = result.table;
    for (const j of [0, 1]) {
      const earlier = t.valLoss.slice(j, 2).map((row) => row[j] as number);
      expect(t.forgetting.valLoss[j]).toBeCloseTo((t.valLoss[2][j] as number) - Math.min(...earlier), 12);
      const acc = t.accuracy.slice(j, 2).map((row) => row[j] as number);
      expect(t.forgetting.accuracy[j]).toBeCloseTo(Math.max(...acc) - (t.accuracy[2][j] as number), 12);
    }
    expect(t.forgetting.valLoss[2]).toBeNull();
  });

  it("writes continual.json and each stage's adapter", async () => {
    const saved = JSON.parse(await readFile(join(dir, 'run', 'continual.json'), 'utf8'));
    expect(saved.table).toEqual(JSON.parse(JSON.stringify(result.table)));
    expect(saved.stages).toHaveLength(3);
    for (const stage of ['stage-1-copy', 'stage-2-shift-3', 'stage-3-nines'])
      expect(existsSync(join(dir, 'run', stage, 'adapter_config.json'))).toBe(true);
  });
});
