/**
 * The paper's grids in examples/experiments/paper dry-run from their config.json files alone (no
 * weights, no data): every cell gets an estimate whose memory is what `params --memory` says for
 * the same settings and whose time is the step's FLOPs at the measured matmul rate.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveTargets } from '@sharelora/adapters';
import { linearModulesFromConfig } from '@sharelora/models';
import { estimateStepFlops } from '@sharelora/train';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const paper = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples/experiments/paper');

interface Row {
  name: string;
  basis: string;
  seconds: number;
  peakBytes: number;
  stepFlops: number;
  steps: number;
  gflops: number;
  error?: string;
}

function dryRun(file: string): Row[] {
  const r = runCli(['experiment', 'run', join(paper, file), '--dry-run', '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).cells;
}

function paramsMemory(model: string, args: string[]): number {
  const r = runCli(['params', '--model', join(paper, 'models', model), '--memory', '--json', ...args]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).memory.estimates.find((e: { precision: string }) => e.precision === 'f32')
    .total;
}

const config = (model: string) =>
  JSON.parse(readFileSync(join(paper, 'models', model, 'config.json'), 'utf8'));

describe('the paper grids dry-run from config.json alone', () => {
  it('RoBERTa-base GLUE: 4 tasks × 4 methods × 5 seeds, each task with its own steps', () => {
    const rows = dryRun('roberta-glue.yaml');
    expect(rows).toHaveLength(80);
    for (const r of rows) {
      expect(r.error).toBeUndefined();
      expect(r.basis).toBe('config');
      expect(r.seconds).toBeCloseTo((r.steps * r.stepFlops) / (r.gflops * 1e9), 3);
    }
    const steps = (task: string) => rows.find((r) => r.name.startsWith(`roberta-base/${task}/`))?.steps;
    expect([steps('sst2'), steps('mrpc'), steps('rte'), steps('stsb')]).toEqual([252559, 6878, 12450, 14373]);
    const lora = rows.find((r) => r.name === 'roberta-base/sst2/lora/seed-0') as Row;
    expect(lora.peakBytes).toBe(
      paramsMemory('roberta-base', [
        ...[
          '--method',
          'lora',
          '--rank',
          '8',
          '--targets',
          'q,v',
          '--batch-size',
          '16',
          '--seq-length',
          '512',
        ],
      ]),
    );
  });

  it('GPT-2 medium E2E and Llama-3-8B (gradient accumulation counts every micro-batch)', () => {
    const gpt2 = dryRun('gpt2-e2e.yaml');
    expect(gpt2).toHaveLength(12);
    const g = gpt2[0];
    expect(g.peakBytes).toBe(
      paramsMemory('gpt2-medium', [
        ...[
          '--method',
          'lora',
          '--rank',
          '4',
          '--targets',
          'q,v',
          '--batch-size',
          '8',
          '--seq-length',
          '512',
        ],
      ]),
    );
    expect(g.stepFlops).toBe(
      estimateStepFlops({
        config: config('gpt2-medium'),
        method: 'lora',
        rank: 4,
        targets: ['attn.c_attn[q,v]'],
        batchSize: 8,
        seqLength: 512,
      }).total,
    );

    const llama = dryRun('llama3-8b.yaml');
    expect(llama.map((r) => r.name.split('/')[1])).toEqual([
      ...Array(4).fill('alpaca'),
      ...Array(4).fill('gsm8k'),
      ...Array(4).fill('codealpaca'),
    ]);
    const l = llama[0];
    const micro = estimateStepFlops({
      config: config('meta-llama-3-8b'),
      method: 'lora',
      rank: 64,
      targets: resolveTargets(linearModulesFromConfig(config('meta-llama-3-8b')).modules, ['all']),
      batchSize: 4,
      seqLength: 512,
    }).total;
    expect(l.stepFlops).toBe(4 * micro);
    // An 8B model's step is about 4 × 8e9 FLOPs per token (forward and input gradients): within 2×.
    const perToken = l.stepFlops / (16 * 512);
    expect(perToken).toBeGreaterThan(2 * 8e9);
    expect(perToken).toBeLessThan(8 * 8e9);
  });
});
