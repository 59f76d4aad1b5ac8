/**
 * Memory soak: trains a one-block pre-LN transformer for 1,000 steps, each inside tidy(), printing live
 * GPU bytes every 100 steps, and exits 1 if live bytes or storages drift after the first step (a leak).
 * The tiny model and training step are exported for test/train.test.ts, which runs a short version.
 *
 * Run: pnpm --filter @sharelora/core bench   (bundles this file with tsup, then runs it; optional steps arg:
 *   node dist-bench/soak.js 2000)
 */
import { pathToFileURL } from 'node:url';
import {
  AdamW,
  add,
  arange,
  backward,
  clipGradNorm,
  crossEntropy,
  Dropout,
  Embedding,
  gelu,
  init,
  LayerNorm,
  Linear,
  Module,
  permute,
  Rng,
  reshape,
  scaledDotProductAttention,
  shutdown,
  type Tensor,
  tensor,
  tidy,
} from '../src/node.js';

export interface TinyConfig {
  vocab: number;
  seqLen: number;
  dim: number;
  heads: number;
  dropout: number;
}

export const TINY: TinyConfig = { vocab: 16, seqLen: 8, dim: 32, heads: 2, dropout: 0.1 };

class CausalSelfAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;

  constructor(
    private readonly dim: number,
    private readonly heads: number,
    rng: Rng,
  ) {
    super();
    this.q_proj = new Linear(dim, dim, { rng });
    this.k_proj = new Linear(dim, dim, { rng });
    this.v_proj = new Linear(dim, dim, { rng });
    this.o_proj = new Linear(dim, dim, { rng });
  }

  forward(x: Tensor): Tensor {
    const [B, T] = x.shape;
    const split = (t: Tensor): Tensor =>
      permute(reshape(t, [B, T, this.heads, this.dim / this.heads]), [0, 2, 1, 3]);
    const o = scaledDotProductAttention(
      split(this.q_proj.forward(x)),
      split(this.k_proj.forward(x)),
      split(this.v_proj.forward(x)),
      { causal: true },
    );
    return this.o_proj.forward(reshape(permute(o, [0, 2, 1, 3]), [B, T, this.dim]));
  }
}

/** Token + position embeddings, one pre-LN block (attention, GELU MLP, dropout on both branches), final LN, LM head. */
export class TinyTransformer extends Module {
  wte: Embedding;
  wpe: Embedding;
  ln_1: LayerNorm;
  attn: CausalSelfAttention;
  ln_2: LayerNorm;
  fc_in: Linear;
  fc_out: Linear;
  ln_f: LayerNorm;
  lm_head: Linear;
  drop: Dropout;

  constructor(
    readonly cfg: TinyConfig,
    rng: Rng,
  ) {
    super();
    const d = cfg.dim;
    this.wte = new Embedding(cfg.vocab, d, { std: 0.02, rng });
    this.wpe = new Embedding(cfg.seqLen, d, { std: 0.02, rng });
    this.ln_1 = new LayerNorm(d);
    this.attn = new CausalSelfAttention(d, cfg.heads, rng);
    this.ln_2 = new LayerNorm(d);
    this.fc_in = new Linear(d, 4 * d, { rng });
    this.fc_out = new Linear(4 * d, d, { rng });
    this.ln_f = new LayerNorm(d);
    this.lm_head = new Linear(d, cfg.vocab, { bias: false, rng });
    this.drop = new Dropout(cfg.dropout, { rng });
  }

  /** ids [B, T] i32 -> logits [B, T, vocab]. */
  forward(ids: Tensor, positions: Tensor): Tensor {
    let h = add(this.wte.forward(ids), this.wpe.forward(positions));
    h = add(h, this.drop.forward(this.attn.forward(this.ln_1.forward(h))));
    h = add(h, this.drop.forward(this.fc_out.forward(gelu(this.fc_in.forward(this.ln_2.forward(h))))));
    return this.lm_head.forward(this.ln_f.forward(h));
  }
}

/**
 * Arithmetic progressions mod vocab (x_t = a + t·b): after two tokens the next one is determined, but
 * only by attending to the previous positions. Inputs x_0..x_{T-1}, targets x_1..x_T.
 */
export function progressionBatch(
  rng: Rng,
  batch: number,
  cfg: TinyConfig,
): { ids: Tensor; targets: Tensor; positions: Tensor } {
  const T = cfg.seqLen;
  const ids = new Int32Array(batch * T);
  const targets = new Int32Array(batch * T);
  for (let s = 0; s < batch; s++) {
    const a = rng.int(cfg.vocab);
    const b = 1 + rng.int(cfg.vocab - 1);
    for (let t = 0; t < T; t++) {
      ids[s * T + t] = (a + t * b) % cfg.vocab;
      targets[s * T + t] = (a + (t + 1) * b) % cfg.vocab;
    }
  }
  return { ids: tensor(ids, [batch, T]), targets: tensor(targets, [batch * T]), positions: arange(T) };
}

/** One optimizer step (forward, backward, clip, AdamW, zeroGrad) inside tidy(); returns the loss tensor. */
export function trainStep(
  model: TinyTransformer,
  opt: AdamW,
  batch: { ids: Tensor; targets: Tensor; positions: Tensor },
): Tensor {
  return tidy(() => {
    const logits = model.forward(batch.ids, batch.positions);
    const loss = crossEntropy(reshape(logits, [batch.targets.size, model.cfg.vocab]), batch.targets);
    backward(loss);
    clipGradNorm(opt.params, 1.0);
    opt.step();
    opt.zeroGrad();
    return loss;
  });
}

async function main(steps: number): Promise<void> {
  const device = await init();
  const rng = new Rng(0);
  const model = new TinyTransformer(TINY, rng.fork('model'));
  const opt = new AdamW(model.parameters(), { lr: 3e-3 });
  const batch = progressionBatch(rng.fork('data'), 16, TINY);
  let first: { total: number; storages: number } | null = null;
  let leaked = false;
  for (let step = 1; step <= steps; step++) {
    const loss = trainStep(model, opt, batch);
    const value = step === 1 || step % 100 === 0 ? await loss.item() : null;
    loss.dispose();
    const r = device.memoryReport();
    first ??= { total: r.live.total, storages: r.liveStorages };
    if (r.live.total !== first.total || r.liveStorages !== first.storages) leaked = true;
    if (value !== null) {
      console.log(
        `step ${step}: loss ${value.toFixed(4)}  live ${r.live.total} B in ${r.liveStorages} storages  pool ${r.pool.allocatedBytes} B`,
      );
    }
  }
  model.dispose();
  opt.dispose();
  for (const t of Object.values(batch)) t.dispose();
  shutdown();
  if (leaked) {
    console.error('live memory changed after step 1: leak');
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(Number(process.argv[2] ?? 1000));
}
