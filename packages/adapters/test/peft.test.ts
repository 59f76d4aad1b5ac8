import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assignTensor,
  backward,
  mul,
  noGrad,
  Rng,
  SafetensorsReader,
  sum,
  type Tensor,
  tensor,
  writeSafetensors,
} from '@sharelora/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdapterError,
  adapterGradients,
  disableAdapters,
  exportAdapter,
  type InjectedAdapter,
  injectAdapter,
  type LoraLinear,
  listAdapters,
  loadAdapter,
  type ModulesToSaveWrapper,
  presetConfig,
  saveAdapter,
} from '../src/node.js';
import { useGpu } from './gpu.js';
import { input, LlamaStack, maxAbsDiff, TinyGpt2, TinyLlama, TinyRoberta, values } from './tiny.js';

const randomArray = (n: number, rng: Rng, std = 0.3) =>
  Float32Array.from({ length: n }, () => rng.normal() * std);

function randomize(a: InjectedAdapter, seed: number): void {
  const rng = new Rng(seed);
  for (const p of a.matrices.values())
    assignTensor(p.value, { data: randomArray(p.value.size, rng), shape: p.shape });
}

type Tensors = Record<string, { dtype: 'F32' | 'F16'; shape: number[]; data: Float32Array }>;

async function writeAdapterDir(
  dir: string,
  config: object,
  tensors: Tensors,
  metadata?: Record<string, string>,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'adapter_config.json'), JSON.stringify(config));
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, metadata);
}

/** adapter_config.json as each PEFT release since 0.6 writes it (see fixtures/peft-lora-configs.py). */
const PEFT_CONFIGS = JSON.parse(
  readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'peft-lora-configs.json'), 'utf8'),
) as Record<string, Record<string, unknown>>;

/** The "sharelora" block of an adapter directory's weights metadata. */
async function shareloraMetadata(dir: string): Promise<Record<string, unknown>> {
  const r = await SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
  const text = r.metadata?.sharelora;
  await r.close();
  return JSON.parse(text ?? 'null');
}

async function readAll(dir: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const r = await SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const k of r.keys()) out.set(k, { shape: [...r.info(k).shape], data: await r.read(k) });
  await r.close();
  return out;
}

/**
 * float64 reference of a LoRA-adapted linear layer as PEFT computes it: x·W(ᵀ) + b + s·(x·Aᵀ)·Bᵀ,
 * W stored [out, in] or (GPT-2 Conv1D, fan_in_fan_out) [in, out]; A [R, in], B [out, R].
 */
function reference(
  x: Float32Array,
  n: number,
  din: number,
  dout: number,
  w: { W: Float32Array; b: Float32Array | null; inOut: boolean },
  lora: { A: Float32Array; B: Float32Array; R: number; s: number },
): Float64Array {
  const y = new Float64Array(n * dout);
  for (let i = 0; i < n; i++) {
    const xa = new Float64Array(lora.R);
    for (let k = 0; k < lora.R; k++)
      for (let j = 0; j < din; j++) xa[k] += x[i * din + j] * lora.A[k * din + j];
    for (let o = 0; o < dout; o++) {
      let acc = w.b ? w.b[o] : 0;
      for (let j = 0; j < din; j++) acc += x[i * din + j] * (w.inOut ? w.W[j * dout + o] : w.W[o * din + j]);
      let d = 0;
      for (let k = 0; k < lora.R; k++) d += xa[k] * lora.B[o * lora.R + k];
      y[i * dout + o] = acc + lora.s * d;
    }
  }
  return y;
}

/** The module's forward on a [n, in] input next to the reference for the given LoRA tensors. */
async function compareModule(
  module: LoraLinear,
  lora: { A: Float32Array; B: Float32Array; R: number; s: number },
): Promise<number> {
  const n = 5;
  const xs = randomArray(n * module.inFeatures, new Rng(3), 1);
  const x = tensor(xs, [n, module.inFeatures]);
  const y = noGrad(() => module.forward(x));
  const got = await values(y);
  const ref = reference(
    xs,
    n,
    module.inFeatures,
    module.outFeatures,
    {
      W: await values(module.weight.value),
      b: module.bias ? await values(module.bias.value) : null,
      inOut: module.layout === 'in_out',
    },
    lora,
  );
  x.dispose();
  y.dispose();
  return maxAbsDiff(got, ref);
}

async function forward(model: { forward(x: Tensor): Tensor }, x: Tensor): Promise<Float32Array> {
  const y = noGrad(() => model.forward(x));
  const out = await values(y);
  y.dispose();
  return out;
}

const ATTN = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

describe('PEFT format: save and load', () => {
  useGpu();
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sharelora-adapters-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('ShareA round trip: PEFT keys and shapes, the shared A in every layer, identical outputs, re-tied on load', async () => {
    const dir = join(tmp, 'share-a');
    const x = input([2, 3, 8]);
    const model = new TinyLlama();
    const cfg = presetConfig('share-a', {
      r: 2,
      alpha: 4,
      dropout: 0.1,
      targetModules: ATTN,
      taskType: 'CAUSAL_LM',
    });
    randomize(injectAdapter(model, cfg, { rng: 1 }), 2);
    model.eval();
    const y = await forward(model, x);
    await saveAdapter(model, dir, { baseModelNameOrPath: 'tiny-llama' });

    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'tiny-llama',
      r: 2,
      lora_alpha: 4,
      lora_dropout: 0.1,
      target_modules: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'],
      fan_in_fan_out: false,
      bias: 'none',
      modules_to_save: null,
      use_rslora: false,
      init_lora_weights: true,
    });
    // PEFT 0.13 and older refuse keys they do not know: the sharing lives in the weights' metadata.
    expect(Object.keys(json).filter((k) => !(k in PEFT_CONFIGS['0.13.2']))).toEqual([]);
    expect(await shareloraMetadata(dir)).toMatchObject({
      version: 1,
      shareA: true,
      shareB: false,
      group: 'module',
      layers: null,
    });
    const file = await readAll(dir);
    expect(file.size).toBe(3 * 4 * 2);
    for (let i = 0; i < 3; i++) {
      for (const p of ATTN) {
        const key = `base_model.model.model.layers.${i}.self_attn.${p}`;
        expect(file.get(`${key}.lora_A.weight`)?.shape).toEqual([2, 8]);
        expect(file.get(`${key}.lora_B.weight`)?.shape).toEqual([8, 2]);
        expect(file.get(`${key}.lora_A.weight`)?.data).toEqual(
          file.get(`base_model.model.model.layers.0.self_attn.${p}.lora_A.weight`)?.data,
        );
      }
    }

    const fresh = new TinyLlama();
    const loaded = await loadAdapter(fresh, dir);
    fresh.eval();
    expect(maxAbsDiff(await forward(fresh, x), y)).toBe(0);
    expect(loaded.config).toEqual({ ...cfg, baseModelNameOrPath: 'tiny-llama' });
    const q = (i: number) => fresh.getSubmodule(`model.layers.${i}.self_attn.q_proj`) as LoraLinear;
    expect(q(0).lora_A.get('default')).toBe(q(2).lora_A.get('default'));
    expect(loaded.matrices.size).toBe(4 + 12);
    model.dispose();
    fresh.dispose();
    x.dispose();
  });

  it('refuses a file whose shared copies differ, naming the keys, and leaves the model unchanged', async () => {
    const dir = join(tmp, 'share-a');
    const file = await readAll(dir);
    const key = 'base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight';
    const tampered = Float32Array.from(file.get(key)?.data ?? []);
    tampered[3] += 1e-3;
    const tensors: Tensors = {};
    for (const [k, t] of file)
      tensors[k] = { dtype: 'F32', shape: t.shape, data: k === key ? tampered : t.data };
    const bad = join(tmp, 'tampered');
    await writeAdapterDir(
      bad,
      JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')),
      tensors,
      {
        sharelora: JSON.stringify(await shareloraMetadata(dir)),
      },
    );
    const model = new TinyLlama();
    const err = await loadAdapter(model, bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe('SHARED_COPIES_DIFFER');
    expect((err as Error).message).toContain(
      'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight',
    );
    expect((err as Error).message).toContain(key);
    expect((err as Error).message).toContain('element 3');
    expect(listAdapters(model)).toEqual([]);
    expect(model.getSubmodule('model.layers.0.self_attn.v_proj').constructor.name).toBe('Linear');
    model.dispose();
  });

  it('GPT-2 c_attn q,v parts (share-qkv): saved as one rank-2r PEFT LoRA that computes the same; loads back', async () => {
    const dir = join(tmp, 'gpt2-parts');
    const x = input([2, 3, 8]);
    const model = new TinyGpt2();
    const cfg = presetConfig('share-qkv', { r: 2, alpha: 8, targetModules: ['c_attn[q,v]'] });
    const original = injectAdapter(model, cfg, { rng: 1 });
    randomize(original, 3);
    const y = await forward(model, x);
    await saveAdapter(model, dir);
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      r: 2,
      lora_alpha: 8,
      target_modules: ['attn.c_attn'],
      fan_in_fan_out: true,
      rank_pattern: { 'attn\\.c_attn': 4 },
      alpha_pattern: { 'attn\\.c_attn': 16 },
    });
    expect(await shareloraMetadata(dir)).toMatchObject({
      shareA: true,
      group: 'qkv',
      targetModules: ['c_attn[q,v]'],
      fused: { c_attn: ['q', 'k', 'v'] },
    });
    const file = await readAll(dir);
    const B = file.get('base_model.model.transformer.h.1.attn.c_attn.lora_B.weight');
    expect(file.get('base_model.model.transformer.h.1.attn.c_attn.lora_A.weight')?.shape).toEqual([4, 8]);
    expect(B?.shape).toEqual([24, 4]);
    // k rows (8..15) are zero; q rows use columns 0-1, v rows columns 2-3.
    const at = (r: number, c: number) => B?.data[r * 4 + c] ?? Number.NaN;
    for (let r = 0; r < 24; r++) {
      for (let c = 0; c < 4; c++) {
        const own = (r < 8 && c < 2) || (r >= 16 && c >= 2);
        if (!own) expect(at(r, c)).toBe(0);
      }
    }
    // What stock PEFT computes from these tensors (scaling alpha_pattern / rank_pattern = 16/4) is our forward.
    for (let i = 0; i < 2; i++) {
      const key = `base_model.model.transformer.h.${i}.attn.c_attn`;
      const lora = {
        A: file.get(`${key}.lora_A.weight`)?.data as Float32Array,
        B: file.get(`${key}.lora_B.weight`)?.data as Float32Array,
        R: 4,
        s: 16 / 4,
      };
      expect(
        await compareModule(model.getSubmodule(`transformer.h.${i}.attn.c_attn`) as LoraLinear, lora),
      ).toBeLessThan(1e-5);
    }
    const fresh = new TinyGpt2();
    const loaded = await loadAdapter(fresh, dir);
    expect(loaded.config.targetModules).toEqual(['c_attn[q,v]']);
    expect([...loaded.matrices.keys()]).toEqual([...original.matrices.keys()]);
    expect(maxAbsDiff(await forward(fresh, x), y)).toBe(0);
    model.dispose();
    fresh.dispose();
    x.dispose();
  });

  it('adapterGradients: the gradients in the layout the adapter file has (parts stacked, k rows zero)', async () => {
    const model = new TinyGpt2();
    const a = injectAdapter(
      model,
      presetConfig('share-qkv', { r: 2, alpha: 8, targetModules: ['c_attn[q,v]'] }),
      {
        rng: 1,
      },
    );
    randomize(a, 4);
    const x = input([2, 3, 8]);
    const y = model.forward(x);
    backward(sum(mul(y, tensor(randomArray(y.size, new Rng(6)), y.shape))));
    const grads = await adapterGradients(model);
    // The same layout as exportAdapter, checked above against what PEFT computes: write each
    // matrix's gradient as its value and export.
    for (const p of a.matrices.values()) {
      expect(p.grad, 'every matrix has a gradient').toBeTruthy();
      assignTensor(p.value, { data: await values(p.grad as Tensor), shape: p.shape });
    }
    const exported = (await exportAdapter(model)).tensors;
    expect(Object.keys(grads).sort()).toEqual(Object.keys(exported).sort());
    for (const [k, t] of Object.entries(grads)) {
      expect(t.shape, k).toEqual(exported[k].shape);
      expect(t.data, k).toEqual(exported[k].data);
    }
    const B = grads['base_model.model.transformer.h.0.attn.c_attn.lora_B.weight'].data as Float32Array;
    expect(B.slice(8 * 4, 16 * 4).every((v) => v === 0)).toBe(true); // k rows
    expect(B.some((v) => v !== 0)).toBe(true);
    model.dispose();
  });

  it('loads a Python PEFT GPT-2 adapter (fan_in_fan_out, c_attn lora_B [3·d, r], float16)', async () => {
    const dir = join(tmp, 'peft-gpt2');
    const rng = new Rng(21);
    const tensors: Tensors = {};
    for (let i = 0; i < 2; i++) {
      tensors[`base_model.model.transformer.h.${i}.attn.c_attn.lora_A.weight`] = {
        dtype: 'F16',
        shape: [4, 8],
        data: randomArray(32, rng),
      };
      tensors[`base_model.model.transformer.h.${i}.attn.c_attn.lora_B.weight`] = {
        dtype: 'F16',
        shape: [24, 4],
        data: randomArray(96, rng),
      };
    }
    await writeAdapterDir(
      dir,
      {
        alpha_pattern: {},
        auto_mapping: null,
        base_model_name_or_path: 'gpt2',
        bias: 'none',
        fan_in_fan_out: true,
        inference_mode: true,
        init_lora_weights: true,
        layer_replication: null,
        layers_pattern: null,
        layers_to_transform: null,
        loftq_config: {},
        lora_alpha: 32,
        lora_dropout: 0.1,
        megatron_config: null,
        megatron_core: 'megatron.core',
        modules_to_save: null,
        peft_type: 'LORA',
        r: 4,
        rank_pattern: {},
        revision: null,
        target_modules: ['c_attn'],
        task_type: 'CAUSAL_LM',
        use_dora: false,
        use_rslora: false,
      },
      tensors,
    );
    const model = new TinyGpt2();
    const a = await loadAdapter(model, dir);
    model.eval();
    expect(a.config).toMatchObject({
      r: 4,
      alpha: 32,
      dropout: 0.1,
      taskType: 'CAUSAL_LM',
      sharing: { shareA: false, shareB: false },
    });
    const file = await readAll(dir);
    for (let i = 0; i < 2; i++) {
      const key = `base_model.model.transformer.h.${i}.attn.c_attn`;
      const lora = {
        A: file.get(`${key}.lora_A.weight`)?.data as Float32Array,
        B: file.get(`${key}.lora_B.weight`)?.data as Float32Array,
        R: 4,
        s: 32 / 4,
      };
      expect(
        await compareModule(model.getSubmodule(`transformer.h.${i}.attn.c_attn`) as LoraLinear, lora),
      ).toBeLessThan(1e-4);
    }
    model.dispose();
  });

  it.each([
    ['as PEFT saves it', 'classifier.'],
    ['with the modules_to_save.default infix', 'classifier.modules_to_save.default.'],
  ])('loads a Python PEFT RoBERTa adapter with a modules_to_save classifier (%s)', async (_, head) => {
    const dir = join(tmp, `peft-roberta-${head.length}`);
    const rng = new Rng(31);
    const tensors: Tensors = {};
    for (let i = 0; i < 2; i++) {
      for (const m of ['query', 'value']) {
        const key = `base_model.model.roberta.encoder.layer.${i}.attention.self.${m}`;
        tensors[`${key}.lora_A.weight`] = { dtype: 'F32', shape: [2, 8], data: randomArray(16, rng) };
        tensors[`${key}.lora_B.weight`] = { dtype: 'F32', shape: [8, 2], data: randomArray(16, rng) };
      }
    }
    const headShapes: Record<string, number[]> = {
      'dense.weight': [8, 8],
      'dense.bias': [8],
      'out_proj.weight': [3, 8],
      'out_proj.bias': [3],
    };
    for (const [k, shape] of Object.entries(headShapes)) {
      tensors[`base_model.model.${head}${k}`] = {
        dtype: 'F32',
        shape,
        data: randomArray(
          shape.reduce((p, q) => p * q),
          rng,
        ),
      };
    }
    await writeAdapterDir(
      dir,
      {
        peft_type: 'LORA',
        task_type: 'SEQ_CLS',
        r: 2,
        lora_alpha: 16,
        lora_dropout: 0.1,
        target_modules: ['query', 'value'],
        fan_in_fan_out: false,
        bias: 'none',
        // PEFT lists both for every SEQ_CLS adapter; "score" matches nothing here and is ignored.
        modules_to_save: ['classifier', 'score'],
        init_lora_weights: true,
        use_rslora: false,
        base_model_name_or_path: 'roberta-base',
      },
      tensors,
    );
    const model = new TinyRoberta();
    const original = await values(model.classifier.dense.weight.value);
    await loadAdapter(model, dir);
    model.eval();
    const wrapper = model.getSubmodule('classifier') as ModulesToSaveWrapper;
    const copy = wrapper.modules_to_save.get('default');
    if (!copy) throw new Error('no classifier copy');
    for (const [k, t] of Object.entries(copy.stateDict())) {
      expect(await values(t)).toEqual(tensors[`base_model.model.${head}${k}`].data);
      expect(copy.namedParameters().find(([n]) => n === k)?.[1].trainable).toBe(true);
    }
    expect(await values(wrapper.original_module.stateDict()['dense.weight'])).toEqual(original);
    // The model's own code reaches the head through the wrapper: `model.classifier.dense` is the copy.
    expect(model.classifier.dense).toBe((copy as typeof model.classifier).dense);
    const q = model.getSubmodule('roberta.encoder.layer.1.attention.self.query') as LoraLinear;
    const key = 'base_model.model.roberta.encoder.layer.1.attention.self.query';
    const lora = {
      A: tensors[`${key}.lora_A.weight`].data,
      B: tensors[`${key}.lora_B.weight`].data,
      R: 2,
      s: 8,
    };
    expect(await compareModule(q, lora)).toBeLessThan(1e-5);
    const x = input([2, 8]);
    const adapted = await forward(model, x);
    const base = await disableAdapters(model, () => forward(model, x));
    expect(maxAbsDiff(adapted, base)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(base, await forward(new TinyRoberta(), x))).toBe(0);
    model.dispose();
    x.dispose();
  });

  it('loads a Python PEFT LLaMA adapter (rsLoRA) into a model without the "model." prefix', async () => {
    const dir = join(tmp, 'peft-llama');
    const rng = new Rng(41);
    const tensors: Tensors = {};
    for (let i = 0; i < 3; i++) {
      for (const m of ['q_proj', 'v_proj']) {
        const key = `base_model.model.model.layers.${i}.self_attn.${m}`;
        tensors[`${key}.lora_A.weight`] = { dtype: 'F32', shape: [2, 8], data: randomArray(16, rng) };
        const out = m === 'q_proj' ? 8 : 4;
        tensors[`${key}.lora_B.weight`] = { dtype: 'F32', shape: [out, 2], data: randomArray(out * 2, rng) };
      }
    }
    const config = {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 2,
      lora_alpha: 16,
      lora_dropout: 0,
      target_modules: ['q_proj', 'v_proj'],
      use_rslora: true,
    };
    await writeAdapterDir(dir, config, tensors);
    const stack = new LlamaStack(8, 4, 3, new Rng(5));
    await loadAdapter(stack, dir);
    const v = stack.getSubmodule('layers.2.self_attn.v_proj') as LoraLinear;
    const key = 'base_model.model.model.layers.2.self_attn.v_proj';
    const lora = {
      A: tensors[`${key}.lora_A.weight`].data,
      B: tensors[`${key}.lora_B.weight`].data,
      R: 2,
      s: 16 / Math.sqrt(2),
    };
    expect(await compareModule(v, lora)).toBeLessThan(1e-5);
    stack.dispose();

    // Missing and unexpected keys, bad shapes and unsupported PEFT features are clear errors.
    const partial = join(tmp, 'peft-llama-partial');
    const { 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': _dropped, ...rest } = tensors;
    await writeAdapterDir(partial, config, {
      ...rest,
      'base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight': tensors[`${key}.lora_A.weight`],
    });
    const s2 = new LlamaStack(8, 4, 3, new Rng(5));
    await expect(loadAdapter(s2, partial)).rejects.toThrow(
      /missing keys: base_model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight\. unexpected keys .*layers\.9\.self_attn\.q_proj\.lora_A\.weight/,
    );
    await writeAdapterDir(partial, { ...config, use_dora: true }, tensors);
    await expect(loadAdapter(s2, partial)).rejects.toThrow(/use_dora = true: DoRA is not supported/);
    await writeAdapterDir(partial, { ...config, r: 4 }, tensors);
    await expect(loadAdapter(s2, partial)).rejects.toThrow(
      /lora_A\.weight is \[2, 8\], the model needs \[4, 8\]/,
    );
    expect(listAdapters(s2)).toEqual([]);
    s2.dispose();
  });

  /** Plain LoRA tensors for TinyLlama's q_proj and v_proj at rank 8, as PEFT names them. */
  const llamaTensors = (rng: Rng): Tensors => {
    const out: Tensors = {};
    for (let i = 0; i < 3; i++)
      for (const m of ['q_proj', 'v_proj']) {
        const key = `base_model.model.model.layers.${i}.self_attn.${m}`;
        out[`${key}.lora_A.weight`] = { dtype: 'F32', shape: [8, 8], data: randomArray(64, rng) };
        out[`${key}.lora_B.weight`] = { dtype: 'F32', shape: [8, 8], data: randomArray(64, rng) };
      }
    return out;
  };

  it('reads adapter_config.json as every PEFT release since 0.6 writes it, without a warning', async () => {
    const versions = Object.keys(PEFT_CONFIGS);
    expect(versions).toContain('0.6.0');
    expect(versions).toContain('0.13.2');
    const tensors = llamaTensors(new Rng(41));
    for (const v of versions) {
      const dir = join(tmp, `peft-${v}`);
      await writeAdapterDir(dir, PEFT_CONFIGS[v], tensors);
      const model = new TinyLlama();
      const warnings: string[] = [];
      const a = await loadAdapter(model, dir, { onWarning: (m) => warnings.push(m) });
      expect(warnings, v).toEqual([]);
      expect([a.config.r, a.config.alpha, a.config.targetModules], v).toEqual([8, 16, ['q_proj', 'v_proj']]);
      model.dispose();
    }
  });

  it('warns about keys no PEFT version writes, refuses options it cannot honour, re-ties old adapters', async () => {
    const tensors = llamaTensors(new Rng(43));
    const dir = join(tmp, 'peft-unknown-key');
    await writeAdapterDir(dir, { ...PEFT_CONFIGS['0.20.0'], lora_fancy: 3 }, tensors);
    const warnings: string[] = [];
    const model = new TinyLlama();
    await loadAdapter(model, dir, { onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([expect.stringContaining('"lora_fancy"')]);
    model.dispose();
    await writeAdapterDir(dir, { ...PEFT_CONFIGS['0.20.0'], alora_invocation_tokens: [5, 6] }, tensors);
    const other = new TinyLlama();
    await expect(loadAdapter(other, dir)).rejects.toThrow(/alora_invocation_tokens .*activated LoRA/);
    expect(listAdapters(other)).toEqual([]);
    other.dispose();

    // Adapters saved before the block moved to the weights' metadata keep it in adapter_config.json.
    const shared = join(tmp, 'share-a');
    const config = JSON.parse(await readFile(join(shared, 'adapter_config.json'), 'utf8'));
    const old = join(tmp, 'share-a-old');
    const file = await readAll(shared);
    await writeAdapterDir(
      old,
      { ...config, sharelora: await shareloraMetadata(shared) },
      Object.fromEntries([...file].map(([k, t]) => [k, { dtype: 'F32' as const, ...t }])),
    );
    expect(await shareloraMetadata(old)).toBe(null);
    const fresh = new TinyLlama();
    await loadAdapter(fresh, old);
    const q = (i: number) => fresh.getSubmodule(`model.layers.${i}.self_attn.q_proj`) as LoraLinear;
    expect(q(0).lora_A.get('default')).toBe(q(2).lora_A.get('default'));
    fresh.dispose();
  });
});
