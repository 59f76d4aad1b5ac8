import {
  add,
  assignTensor,
  backward,
  Linear,
  Module,
  ModuleList,
  mean,
  mul,
  Rng,
  randn,
  sliceAxis,
  type Tensor,
  tanh,
  tensor,
  tidy,
} from '@sharelora/core/node';
import { type InjectedAdapter, injectAdapter, presetConfig } from '../src/index.js';

/** Attention-shaped mixing of q/k/v (enough to make every projection matter, no softmax needed). */
const mix = (q: Tensor, k: Tensor, v: Tensor): Tensor => add(mul(tanh(q), k), v);

class LlamaAttn extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  constructor(d: number, kv: number, rng: Rng) {
    super();
    this.q_proj = new Linear(d, d, { bias: false, rng });
    this.k_proj = new Linear(d, kv, { bias: false, rng });
    this.v_proj = new Linear(d, kv, { bias: false, rng });
    this.o_proj = new Linear(d, d, { bias: false, rng });
  }
  forward(x: Tensor): Tensor {
    return this.o_proj.forward(mix(this.q_proj.forward(x), this.k_proj.forward(x), this.v_proj.forward(x)));
  }
}

class LlamaBlock extends Module {
  self_attn: LlamaAttn;
  constructor(d: number, kv: number, rng: Rng) {
    super();
    this.self_attn = new LlamaAttn(d, kv, rng);
  }
  forward(x: Tensor): Tensor {
    return add(x, this.self_attn.forward(x));
  }
}

/** The decoder stack alone (HF LlamaModel: paths "layers.{i}.self_attn.q_proj"). */
export class LlamaStack extends Module {
  layers: ModuleList<LlamaBlock>;
  constructor(d: number, kv: number, n: number, rng: Rng) {
    super();
    this.layers = new ModuleList(Array.from({ length: n }, () => new LlamaBlock(d, kv, rng)));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const b of this.layers) h = b.forward(h);
    return h;
  }
}

/** A LLaMA-named model: "model.layers.{i}.self_attn.{q,k,v,o}_proj" and an lm_head. */
export class TinyLlama extends Module {
  model: LlamaStack;
  lm_head: Linear;
  constructor(opts: { d?: number; kv?: number; layers?: number; seed?: number } = {}) {
    super();
    const d = opts.d ?? 8;
    const rng = new Rng(opts.seed ?? 1);
    this.model = new LlamaStack(d, opts.kv ?? d, opts.layers ?? 3, rng);
    this.lm_head = new Linear(d, 4, { rng });
  }
  forward(x: Tensor): Tensor {
    return this.lm_head.forward(this.model.forward(x));
  }
}

class Gpt2Attn extends Module {
  c_attn: Linear;
  c_proj: Linear;
  constructor(
    readonly d: number,
    rng: Rng,
  ) {
    super();
    this.c_attn = new Linear(d, 3 * d, { layout: 'in_out', rng });
    this.c_proj = new Linear(d, d, { layout: 'in_out', rng });
  }
  forward(x: Tensor): Tensor {
    const qkv = this.c_attn.forward(x);
    const [q, k, v] = [0, 1, 2].map((i) => sliceAxis(qkv, -1, i * this.d, (i + 1) * this.d));
    return this.c_proj.forward(mix(q, k, v));
  }
}

class Gpt2Block extends Module {
  attn: Gpt2Attn;
  constructor(d: number, rng: Rng) {
    super();
    this.attn = new Gpt2Attn(d, rng);
  }
  forward(x: Tensor): Tensor {
    return add(x, this.attn.forward(x));
  }
}

class Gpt2Body extends Module {
  h: ModuleList<Gpt2Block>;
  constructor(d: number, n: number, rng: Rng) {
    super();
    this.h = new ModuleList(Array.from({ length: n }, () => new Gpt2Block(d, rng)));
  }
}

/** GPT-2-named: "transformer.h.{i}.attn.c_attn" is a Conv1D (weight [in, 3·out]) packing q|k|v. */
export class TinyGpt2 extends Module {
  transformer: Gpt2Body;
  constructor(opts: { d?: number; layers?: number; seed?: number } = {}) {
    super();
    this.transformer = new Gpt2Body(opts.d ?? 8, opts.layers ?? 2, new Rng(opts.seed ?? 2));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const b of this.transformer.h) h = b.forward(h);
    return h;
  }
}

class RobertaSelf extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  constructor(d: number, rng: Rng) {
    super();
    this.query = new Linear(d, d, { rng });
    this.key = new Linear(d, d, { rng });
    this.value = new Linear(d, d, { rng });
  }
}

class RobertaLayer extends Module {
  attention: Module & { self: RobertaSelf };
  constructor(d: number, rng: Rng) {
    super();
    const attention = new (class extends Module {
      self = new RobertaSelf(d, rng);
    })();
    this.attention = attention;
  }
  forward(x: Tensor): Tensor {
    const s = this.attention.self;
    return add(x, mix(s.query.forward(x), s.key.forward(x), s.value.forward(x)));
  }
}

class ClassificationHead extends Module {
  dense: Linear;
  out_proj: Linear;
  constructor(d: number, labels: number, rng: Rng) {
    super();
    this.dense = new Linear(d, d, { rng });
    this.out_proj = new Linear(d, labels, { rng });
  }
  forward(x: Tensor): Tensor {
    return this.out_proj.forward(tanh(this.dense.forward(x)));
  }
}

/** RoBERTa-named: "roberta.encoder.layer.{i}.attention.self.{query,key,value}" and a "classifier" head. */
export class TinyRoberta extends Module {
  roberta: Module & { encoder: Module & { layer: ModuleList<RobertaLayer> } };
  classifier: ClassificationHead;
  constructor(opts: { d?: number; layers?: number; seed?: number } = {}) {
    super();
    const d = opts.d ?? 8;
    const rng = new Rng(opts.seed ?? 3);
    const layer = new ModuleList(Array.from({ length: opts.layers ?? 2 }, () => new RobertaLayer(d, rng)));
    const encoder = new (class extends Module {
      layer = layer;
    })();
    this.roberta = new (class extends Module {
      encoder = encoder;
    })();
    this.classifier = new ClassificationHead(d, 3, rng);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.roberta.encoder.layer) h = l.forward(h);
    return this.classifier.forward(h);
  }
}

/** A fixed input batch [batch, tokens, d]. */
export const input = (shape: number[], seed = 7): Tensor => randn(shape, { seed });

/** A scalar loss that weights every output differently (so no gradient is trivially symmetric). */
export function weightedLoss(y: Tensor, seed = 11): Tensor {
  const w = tensor(
    Float32Array.from({ length: y.size }, (_, i) => Math.sin(seed + i * 0.7)),
    y.shape,
  );
  return mean(mul(y, w));
}

/** Gives every adapter matrix fixed nonzero values (B starts at zero, which would hide A's gradient). */
export function randomize(a: InjectedAdapter): void {
  for (const [k, p] of a.matrices) {
    const data = Float32Array.from({ length: p.value.size }, (_, i) => Math.sin(i + k.length) * 0.3);
    assignTensor(p.value, { data, shape: p.shape });
  }
}

/**
 * Injects a ShareA adapter (r = 2) into the targets, gives it fixed values, runs the model on a fixed
 * input and back-propagates a weighted loss: the outputs and the adapter matrices' gradients.
 */
export async function shareAStep(
  model: Module & { forward(x: Tensor): Tensor },
  targetModules: readonly string[],
): Promise<{ y: Float32Array; grads: Float32Array[] }> {
  const a = injectAdapter(model, presetConfig('share-a', { r: 2, targetModules: [...targetModules] }), {
    rng: 3,
  });
  randomize(a);
  const x = input([2, 3, 8]);
  const y = tidy(() => {
    const out = model.forward(x);
    backward(weightedLoss(out));
    return out;
  });
  const grads = await Promise.all([...a.matrices.values()].map((p) => values(p.grad as Tensor)));
  return { y: await values(y), grads };
}

export async function values(t: Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
