import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { countParameters, type Method, presetConfig, resolveTargets } from '@sharelora/adapters';
import { linearModulesFromConfig } from '@sharelora/models';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const ALL7 = 'q,k,v,o,gate,up,down';

/** The ShareLoRA paper's published counts: [model, rank, targets, method → trainable]. */
const CASES: Array<[string, number, string, Partial<Record<Method, number>>]> = [
  ['roberta-base', 8, 'q,v', { lora: 294_912, 'share-a': 159_744, 'share-b': 159_744, 'share-ab': 24_576 }],
  [
    'meta-llama-3-8b',
    64,
    'q,v',
    { lora: 27_262_976, 'share-a': 11_010_048, 'share-b': 17_104_896, 'share-ab': 851_968 },
  ],
  [
    'llama-7b',
    64,
    ALL7,
    { lora: 159_907_840, 'share-a': 89_309_184, 'share-b': 75_595_776, 'share-ab': 4_997_120 },
  ],
  // GPT-2 medium, the paper's E2E setting: r=4 on the q and v parts of the fused c_attn.
  ['gpt2-medium', 4, 'q,v', { lora: 393_216, 'share-a': 204_800, 'share-qkv': 200_704 }],
];

describe('parameter counts from config.json', () => {
  it.each(CASES)('library: %s r=%i targets %s', (model, rank, targets, expected) => {
    const info = linearModulesFromConfig(JSON.parse(readFileSync(fixture(`${model}/config.json`), 'utf8')));
    const targetModules = resolveTargets(info.modules, targets.split(','));
    for (const [method, n] of Object.entries(expected)) {
      const count = countParameters(info.modules, presetConfig(method as Method, { r: rank, targetModules }));
      expect(count.total.trainable, method).toBe(n);
      expect(count.total.lora).toBe(expected.lora);
    }
  });

  it.each(CASES)(
    'CLI: sharelora params --model %s --rank %i --targets %s --json',
    (model, rank, targets, expected) => {
      for (const [method, n] of Object.entries(expected)) {
        const r = runCli([
          'params',
          '--model',
          fixture(model),
          '--method',
          method,
          '--rank',
          String(rank),
          '--targets',
          targets,
          '--json',
        ]);
        expect(r.status, r.stderr).toBe(0);
        const doc = JSON.parse(r.stdout);
        expect(doc.total.trainable, method).toBe(n);
        expect(doc.total.lora).toBe(expected.lora);
        expect(doc.method).toBe(method);
      }
    },
  );

  it('the JSON document: per module type dims, LoRA and method counts, reduction; targets default to q,v', () => {
    const r = runCli([
      'params',
      '--model',
      fixture('meta-llama-3-8b/config.json'),
      '--method',
      'share-a',
      '--rank',
      '64',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      arch: 'llama',
      layers: 32,
      rank: 64,
      targets: ['self_attn.q_proj', 'self_attn.v_proj'],
    });
    expect(doc.modules).toEqual([
      expect.objectContaining({
        moduleType: 'self_attn.q_proj',
        modules: 32,
        inFeatures: 4096,
        outFeatures: 4096,
        lora: 16_777_216,
        trainable: 8_650_752,
      }),
      expect.objectContaining({
        moduleType: 'self_attn.v_proj',
        modules: 32,
        inFeatures: 4096,
        outFeatures: 1024,
        lora: 10_485_760,
        trainable: 2_359_296,
      }),
    ]);
    expect(doc.total.reduction).toBeCloseTo(1 - 11_010_048 / 27_262_976, 12);
  });

  it('the table for people', () => {
    const r = runCli([
      'params',
      '--model',
      fixture('llama-7b'),
      '--method',
      'share-a',
      '--rank',
      '64',
      '--targets',
      'all',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/method\s+share-a, r=64: A shared across layers/);
    expect(r.stdout).toMatch(/self_attn\.q_proj\s+32\s+4096\s+4096\s+16,777,216\s+8,650,752\s+48\.44%/);
    expect(r.stdout).toMatch(/mlp\.down_proj\s+32\s+11008\s+4096/);
    expect(r.stdout).toMatch(/total\s+159,907,840\s+89,309,184\s+44\.15%/);
    const qkv = runCli([
      'params',
      '--model',
      fixture('meta-llama-3-8b'),
      '--method',
      'share-qkv',
      '--rank',
      '64',
    ]);
    expect(qkv.stdout).toMatch(/A \[64×4096\] shared over self_attn\.\{q_proj,k_proj,v_proj\}\s+262,144/);
  });

  it.each([
    [
      ['--model', fixture('roberta-base'), '--method', 'share-x', '--rank', '8'],
      /--method must be one of lora, share-a/,
    ],
    [
      ['--model', fixture('roberta-base'), '--method', 'lora', '--rank', '0'],
      /--rank must be a positive integer/,
    ],
    [['--method', 'lora'], /sharelora params: --model is required/],
    [['--model', fixture('roberta-base'), '--method', 'lora', '--rank', '8', '--layers', '3'], /'--layers'/],
    [
      ['--model', fixture('roberta-base'), '--method', 'lora', '--rank', '8', '--targets', 'q,gate'],
      /--targets q,gate: target "gate" matched no linear module/,
    ],
    [['--model', fixture('roberta-base'), '--seq-length', '128'], /--seq-length apply to --memory/],
    [['--model', fixture('nowhere'), '--method', 'lora', '--rank', '8'], /--model .*nowhere: no such file/],
    [['--model', fixture('SOURCE.md'), '--method', 'lora', '--rank', '8'], /--model .*SOURCE\.md: .*JSON/],
  ])('bad usage exits 2 with one line naming the flag: %j', (args, message) => {
    const r = runCli(['params', ...args]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('--memory: Llama-3-8B weights at each precision by hand, the rest of the step shared', () => {
    const r = runCli([
      'params',
      '--model',
      fixture('meta-llama-3-8b'),
      '--method',
      'share-a',
      '--rank',
      '64',
      '--targets',
      ALL7,
      '--memory',
      '--seq-length',
      '512',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const { memory } = JSON.parse(r.stdout);
    expect(memory.batchSize).toBe(1);
    expect(memory.seqLength).toBe(512);
    const byPrecision = Object.fromEntries(
      memory.estimates.map((e: { precision: string }) => [e.precision, e]),
    );
    expect(Object.keys(byPrecision)).toEqual(['f32', 'bf16', 'int8', 'nf4']);
    // 32 layers of q, o [4096²], k, v [1024×4096] and gate, up, down [14336×4096].
    const values = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 14336 * 4096);
    expect(byPrecision.bf16.blockWeights).toBe(2 * values);
    expect(byPrecision.f32.blockWeights).toBe(4 * values);
    expect(byPrecision.nf4.blockWeights / values).toBeCloseTo(0.5 + 1 / 64, 3);
    // Untied embedding and lm_head [128256×4096], 65 RMSNorms; bf16 beside a quantized base.
    expect(byPrecision.nf4.otherWeights).toBe(2 * (2 * 128256 * 4096 + 65 * 4096));
    const trainable = 4 * JSON.parse(r.stdout).total.trainable;
    for (const e of memory.estimates) {
      expect(e.adapter).toBe(trainable);
      expect(e.optimizer).toBe(2 * trainable);
      expect(e.activations).toBe(byPrecision.f32.activations);
    }
    const text = runCli(['params', '--model', fixture('meta-llama-3-8b'), '--memory']);
    expect(text.stdout).toMatch(/estimated memory of one training step, batch 1×512/);
    expect(text.stdout).toMatch(/^nf4 +\d/m);
  });

  it('--help lists the methods and the target aliases', () => {
    const r = runCli(['params', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--method METHOD\s+lora \| share-a \| share-b \| share-ab \| share-qkv/);
    expect(r.stdout).toMatch(/share-qkv\s+one A for q, k and v of all layers/);
    expect(runCli(['--help']).stdout).toMatch(/params\s+trainable parameters/);
  });
});
