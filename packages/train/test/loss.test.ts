/**
 * The trainer's causal-LM loss projects only target positions onto the vocabulary; it must equal
 * transformers' shifted mean (causalLmLoss over the full logits, itself checked against a float64
 * reference in @sharelora/models) with prompt masking and right padding.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, noGrad, shutdown, type Tensor, tensor, tidy } from '@sharelora/core/node';
import { type CausalLM, causalLmLoss, generateTokens, initPreset, loadModel } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collate, greedyMatches, IGNORE_INDEX, type LmExample } from '../src/index.js';
import { attentionMaskTensor, forwardLoss } from '../src/trainer/loss.js';

let root: string;

beforeAll(async () => {
  await init();
  root = await mkdtemp(join(tmpdir(), 'sharelora-loss-'));
});

afterAll(async () => {
  shutdown();
  await rm(root, { recursive: true, force: true });
});

/** A tiny random LLaMA written under `name` and loaded back. */
async function tinyLlama(name: string, seed: number): Promise<CausalLM> {
  const dir = join(root, name);
  await initPreset({ arch: 'llama', preset: 'tiny', outDir: dir, seed });
  const { model } = await loadModel(dir);
  if (model.task !== 'causal-lm') throw new Error('expected a causal LM');
  return model;
}

/** Two scalar losses, finite and equal within `tol` relative; both are disposed. */
async function expectSameLoss(got: Tensor, want: Tensor, tol: number): Promise<void> {
  const [a] = (await got.data()) as Float32Array;
  const [b] = (await want.data()) as Float32Array;
  got.dispose();
  want.dispose();
  expect(Number.isFinite(a)).toBe(true);
  expect(Math.abs(a - b) / Math.abs(b)).toBeLessThan(tol);
}

const example = (ids: number[], promptLength: number): LmExample => ({
  kind: 'lm',
  inputIds: ids,
  attentionMask: ids.map(() => 1),
  labels: ids.map((id, t) => (t < promptLength ? IGNORE_INDEX : id)),
  promptLength,
  source: { file: 'test', line: 1, row: 1 },
});

describe('forwardLoss for causal LMs', () => {
  it('equals causalLmLoss on the full logits, with prompt masking and padding', async () => {
    const model = await tinyLlama('llama', 3);
    const batch = collate(
      [example([1, 40, 81, 7, 220, 13, 99], 3), example([1, 5, 6, 250], 1), example([1, 60, 61, 62, 63], 4)],
      { padId: 0 },
    );
    const [sparse, full] = noGrad(() =>
      tidy((): [Tensor, Tensor] => {
        const r = forwardLoss(model, batch);
        const shape = [batch.batchSize, batch.seqLength];
        const logits = model.forward(tensor(batch.inputIds, shape, 'i32'), {
          attentionMask: tensor(batch.attentionMask, shape, 'i32'),
        });
        return [r.loss, causalLmLoss(logits, tensor(batch.labels, shape, 'i32'))];
      }),
    );
    await expectSameLoss(sparse, full, 1e-5);

    // No targets at all: NaN, as causalLmLoss (and PyTorch's mean over nothing).
    const none = collate([example([1, 40, 81], 3)], { padId: 0 });
    const loss = noGrad(() => tidy(() => forwardLoss(model, none).loss));
    expect(Number.isNaN(((await loss.data()) as Float32Array)[0])).toBe(true);
    loss.dispose();
    model.dispose();
  });
});

describe('attentionMaskTensor', () => {
  it('drops a mask that hides nothing, with the same loss as passing it', async () => {
    const model = await tinyLlama('llama-full', 4);
    const full = collate([example([1, 40, 81, 7], 1), example([1, 5, 6, 250], 2)], { padId: 0 });
    const padded = collate([example([1, 40, 81, 7], 1), example([1, 5], 1)], { padId: 0 });
    expect(attentionMaskTensor(full)).toBeUndefined();
    const mask = attentionMaskTensor(padded);
    expect(mask?.shape).toEqual([2, 4]);
    expect(Array.from((await mask?.data()) ?? [])).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    mask?.dispose();
    // Without the mask, the full batch's loss is the one its explicit all-ones mask gives.
    const [dropped, explicit] = noGrad(() =>
      tidy((): [Tensor, Tensor] => {
        const shape = [full.batchSize, full.seqLength];
        const ids = tensor(full.inputIds, shape, 'i32');
        const logits = model.forward(ids, { attentionMask: tensor(full.attentionMask, shape, 'i32') });
        return [forwardLoss(model, full).loss, causalLmLoss(logits, tensor(full.labels, shape, 'i32'))];
      }),
    );
    await expectSameLoss(dropped, explicit, 1e-6);
    model.dispose();
  });
});

describe('greedyMatches', () => {
  it('is true exactly where greedy generation from the prompt gives the target', async () => {
    const model = await tinyLlama('llama-greedy', 5);
    const prompts = [
      [1, 40, 81],
      [1, 5],
      [1, 60, 61, 62, 63],
      [1, 7, 7, 7],
    ];
    // Targets from the decoder's own greedy output (an independent path: KV cache, one token a step)...
    const generated = await generateTokens(model, prompts, { maxNewTokens: 4, eosIds: [] });
    const examples = prompts.map((p, i) => example([...p, ...generated[i].tokens], p.length));
    // ...and the same with one target token changed: no longer greedy.
    const changed = examples.map((e, i) => {
      const ids = [...e.inputIds];
      const at = ids.length - 1 - (i % 3);
      ids[at] = (ids[at] + 1) % 200;
      return example(ids, e.promptLength);
    });
    const got = await greedyMatches(model, [...examples, ...changed], { batchSize: 3, padId: 0 });
    expect(got).toEqual([true, true, true, true, false, false, false, false]);
  });
});
