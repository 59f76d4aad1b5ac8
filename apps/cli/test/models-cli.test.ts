/** `sharelora init` and `sharelora forward`, run as a user runs them (the built binary). */
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adapterParameters, injectAdapter, presetConfig } from '@sharelora/adapters';
import { saveAdapter } from '@sharelora/adapters/node';
import { assignTensor } from '@sharelora/core';
import { init, Rng, SafetensorsReader, shutdown, writeSafetensors } from '@sharelora/core/node';
import { loadModel } from '@sharelora/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-models-cli-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const model = (arch: string) => join(tmp, arch);
async function inputs(name: string, value: unknown): Promise<string> {
  const file = join(tmp, `${name}.json`);
  await writeFile(file, JSON.stringify(value));
  return file;
}

// biome-ignore lint/suspicious/noExplicitAny: JSON documents printed by the CLI
function json(stdout: string): any {
  return JSON.parse(stdout);
}

/** Mean next-token cross entropy in float64, -100 ignored: transformers' causal LM loss. */
function causalLoss(logits: number[][][], labels: number[][]): number {
  let sum = 0;
  let n = 0;
  for (const [b, row] of logits.entries()) {
    for (const [t, l] of row.slice(0, -1).entries()) {
      const y = labels[b][t + 1];
      if (y === -100) continue;
      const m = Math.max(...l);
      sum += m + Math.log(l.reduce((s, x) => s + Math.exp(x - m), 0)) - l[y];
      n++;
    }
  }
  return sum / n;
}

const CAUSAL = {
  input_ids: [
    [0, 0, 45, 120, 3, 99],
    [17, 104, 250, 33, 71, 9],
  ],
  attention_mask: [
    [0, 0, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
  ],
  labels: [
    [-100, -100, 45, 120, 3, 99],
    [17, 104, 250, -100, 71, 9],
  ],
};

describe('sharelora init', () => {
  it('writes each architecture as an HF directory; --json reports it', () => {
    for (const arch of ['gpt2', 'roberta', 'llama']) {
      const r = runCli([
        'init',
        '--arch',
        arch,
        '--preset',
        'tiny',
        '--out',
        model(arch),
        '--seed',
        '1',
        '--json',
      ]);
      expect(r.status, r.stderr).toBe(0);
      const doc = json(r.stdout);
      expect(doc).toMatchObject({ arch, preset: 'tiny', seed: 1 });
      expect(doc.parameters).toBeGreaterThan(50_000);
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
        expect(existsSync(join(model(arch), f))).toBe(true);
      }
    }
  });

  it('rejects bad flags with exit code 2 naming the flag', () => {
    const r = runCli(['init', '--arch', 'llama', '--preset', 'huge', '--out', join(tmp, 'x')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--preset must be one of tiny, small, got "huge"');
    expect(runCli(['init', '--arch', 'gpt2', '--preset', 'tiny']).stderr).toContain('--out DIR is required');
    expect(runCli(['init', '--arch', 'gpt2', '--preset', 'tiny', '--out', 'x', '--seed', '-1']).status).toBe(
      2,
    );
  });
});

describe('sharelora forward', () => {
  it('prints logits in HF shapes and the causal loss with HF semantics', async () => {
    const file = await inputs('causal', CAUSAL);
    for (const arch of ['gpt2', 'llama']) {
      const r = runCli(['forward', '--model', model(arch), '--inputs', file, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const doc = json(r.stdout);
      expect(doc).toMatchObject({ task: 'causal-lm', shape: [2, 6, expect.any(Number)] });
      expect(doc.logits).toHaveLength(2);
      expect(doc.logits[0]).toHaveLength(6);
      expect(Math.abs(doc.loss - causalLoss(doc.logits, CAUSAL.labels))).toBeLessThan(1e-5 * doc.loss);
    }
    const text = runCli(['forward', '--model', model('gpt2'), '--inputs', file]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^model +.*GPT2LMHeadModel, causal-lm\)\nlogits +\[2, 6, 281\]\n/);
    expect(text.stdout).toMatch(/\nloss +\d+\.\d+/);
  });

  it('--grads writes every weight gradient under its checkpoint name; one entry checks out by finite differences', async () => {
    const file = await inputs('causal-grads', CAUSAL);
    const out = join(tmp, 'llama-grads.safetensors');
    const r = runCli(['forward', '--model', model('llama'), '--inputs', file, '--grads', out, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const grads = await SafetensorsReader.open(out);
    const weights = await SafetensorsReader.open(join(model('llama'), 'model.safetensors'));
    expect(grads.keys().sort()).toEqual(weights.keys().sort());
    for (const k of grads.keys()) expect(grads.info(k).shape).toEqual(weights.info(k).shape);

    // d(loss)/d(model.norm.weight[i]) at its largest entry, against a central difference.
    const name = 'model.norm.weight';
    const g = await grads.read(name);
    const i = g.reduce((best, v, j) => (Math.abs(v) > Math.abs(g[best]) ? j : best), 0);
    const eps = 1e-2;
    const lossWith = async (delta: number) => {
      const dir = join(tmp, `llama-fd-${delta > 0 ? 'plus' : 'minus'}`);
      const tensors = Object.fromEntries(
        await Promise.all(
          weights.keys().map(async (k) => {
            const data = await weights.read(k);
            if (k === name) data[i] += delta;
            return [k, { dtype: 'F32' as const, shape: weights.info(k).shape, data }];
          }),
        ),
      );
      await mkdir(dir, { recursive: true });
      await copyFile(join(model('llama'), 'config.json'), join(dir, 'config.json'));
      await writeSafetensors(join(dir, 'model.safetensors'), tensors);
      const res = runCli(['forward', '--model', dir, '--inputs', file, '--json']);
      expect(res.status, res.stderr).toBe(0);
      return json(res.stdout).loss as number;
    };
    const fd = ((await lossWith(eps)) - (await lossWith(-eps))) / (2 * eps);
    expect(Math.abs(fd - g[i])).toBeLessThan(0.02 * Math.abs(g[i]));
    await grads.close();
    await weights.close();
  });

  it('RoBERTa: one label per row classifies with a new head (warned on stderr); per-token labels are masked LM', async () => {
    const ids = [
      [0, 45, 120, 33, 2],
      [0, 88, 2, 1, 1],
    ];
    const attention_mask = ids.map((r) => r.map((id) => (id === 1 ? 0 : 1)));
    const cls = runCli([
      'forward',
      '--model',
      model('roberta'),
      '--inputs',
      await inputs('cls', { input_ids: ids, attention_mask, labels: [1, 0] }),
      '--json',
    ]);
    expect(cls.status, cls.stderr).toBe(0);
    expect(cls.stderr).toContain('classifier.dense.weight');
    const doc = json(cls.stdout);
    expect(doc).toMatchObject({
      task: 'sequence-classification',
      problem_type: 'single_label_classification',
      shape: [2, 2],
    });
    const ce = (l: number[], y: number) => Math.log(l.reduce((s, x) => s + Math.exp(x), 0)) - l[y];
    expect(doc.loss).toBeCloseTo((ce(doc.logits[0], 1) + ce(doc.logits[1], 0)) / 2, 5);

    const labels = ids.map((r, b) => r.map((id, t) => (t === 1 || (b === 1 && t === 2) ? id : -100)));
    const mlm = runCli([
      'forward',
      '--model',
      model('roberta'),
      '--inputs',
      await inputs('mlm', { input_ids: ids, attention_mask, labels }),
      '--json',
    ]);
    expect(mlm.status, mlm.stderr).toBe(0);
    const m = json(mlm.stdout);
    expect(m).toMatchObject({ task: 'masked-lm', shape: [2, 5, 285] });
    const expected =
      (ce(m.logits[0][1], labels[0][1]) +
        ce(m.logits[1][1], labels[1][1]) +
        ce(m.logits[1][2], labels[1][2])) /
      3;
    expect(m.loss).toBeCloseTo(expected, 5);
  });

  it('--adapter applies a ShareLoRA adapter; --grads writes its tensors under PEFT names', async () => {
    const adapterDir = join(tmp, 'adapter-share-a');
    await init();
    try {
      const { model: m } = await loadModel(model('llama'));
      injectAdapter(m, presetConfig('share-a', { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] }));
      // B starts at zero; random values make the adapter change the logits and give A a gradient.
      const rng = new Rng(5);
      for (const p of adapterParameters(m, 'default')) {
        assignTensor(p.value, {
          data: Float32Array.from({ length: p.value.size }, () => rng.normal() * 0.1),
          shape: p.shape,
        });
      }
      await saveAdapter(m, adapterDir);
      m.dispose();
    } finally {
      shutdown();
    }
    const file = await inputs('adapter', CAUSAL);
    const out = join(tmp, 'adapter-grads.safetensors');
    const r = runCli([
      'forward',
      '--model',
      model('llama'),
      '--adapter',
      adapterDir,
      '--inputs',
      file,
      '--grads',
      out,
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const base = json(runCli(['forward', '--model', model('llama'), '--inputs', file, '--json']).stdout);
    expect(json(r.stdout).loss).not.toBeCloseTo(base.loss, 3);
    const grads = await SafetensorsReader.open(out);
    const key = (l: number, proj: string, ab: string) =>
      `base_model.model.model.layers.${l}.self_attn.${proj}.lora_${ab}.weight`;
    expect(grads.keys().sort()).toEqual(
      [0, 1]
        .flatMap((l) => ['q_proj', 'v_proj'].flatMap((p) => ['A', 'B'].map((ab) => key(l, p, ab))))
        .sort(),
    );
    expect(grads.info(key(0, 'q_proj', 'A')).shape).toEqual([2, 64]);
    expect(grads.info(key(1, 'v_proj', 'B')).shape).toEqual([32, 2]);
    // ShareA: one A per module type, so every layer's key holds the same (summed) gradient.
    expect(await grads.read(key(1, 'q_proj', 'A'))).toEqual(await grads.read(key(0, 'q_proj', 'A')));
    expect((await grads.read(key(0, 'q_proj', 'B'))).some((v) => v !== 0)).toBe(true);
    await grads.close();
  });

  it('bad input exits 2 with a message naming the file or flag', async () => {
    const run = (args: string[]) => runCli(['forward', ...args]);
    const ragged = await inputs('ragged', {
      input_ids: [
        [1, 2, 3],
        [1, 2],
      ],
    });
    let r = run(['--model', model('gpt2'), '--inputs', ragged]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--inputs ${ragged}: "input_ids" row 1 has 2 ids but row 0 has 3`);

    const oov = await inputs('oov', { input_ids: [[1, 99999]] });
    r = run(['--model', model('gpt2'), '--inputs', oov]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--inputs ${oov}: token id 99999 is outside the model's vocabulary [0, 281)`);

    const nolabels = await inputs('nolabels', { input_ids: [[1, 2]] });
    r = run(['--model', model('gpt2'), '--inputs', nolabels, '--grads', join(tmp, 'g.safetensors')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--grads needs labels in --inputs ${nolabels}`);

    r = run([
      '--model',
      model('gpt2'),
      '--inputs',
      await inputs('rowlabels', { input_ids: [[1, 2]], labels: [1] }),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('one label per row, but gpt2 is a causal LM');

    r = run(['--model', join(tmp, 'missing-model'), '--inputs', nolabels]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${join(tmp, 'missing-model', 'config.json')}: not found`);

    const broken = join(tmp, 'broken');
    await cp(model('gpt2'), broken, { recursive: true });
    await truncate(join(broken, 'model.safetensors'), 5000);
    r = run(['--model', broken, '--inputs', nolabels]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${join(broken, 'model.safetensors')}: not a readable safetensors file`);
    expect(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('sharelora:')),
    ).toHaveLength(1);

    expect(run(['--model', model('gpt2'), '--inputs', nolabels, '--bogus']).status).toBe(2);
  });
});
