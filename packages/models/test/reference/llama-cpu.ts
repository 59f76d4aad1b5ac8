/**
 * Float64 CPU LLaMA forward pass over an HF LLaMA directory (config.json + model.safetensors): the
 * test oracle for imported checkpoints. One token per step with a KV cache, rotate-half RoPE,
 * grouped-query causal attention, SwiGLU MLP. Deliberately plain; speed is irrelevant here.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsReader } from '@sharelora/core/node';

interface Config {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: unknown;
  tie_word_embeddings: boolean;
}

type Mat = { rows: number; cols: number; w: Float64Array };

function matvec(m: Mat, x: Float64Array): Float64Array {
  const y = new Float64Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    let s = 0;
    const o = r * m.cols;
    for (let c = 0; c < m.cols; c++) s += m.w[o + c] * x[c];
    y[r] = s;
  }
  return y;
}

function rmsnorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const k = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * k * w[i]);
}

export class LlamaCpu {
  private readonly cacheK: Float64Array[][] = [];
  private readonly cacheV: Float64Array[][] = [];
  private readonly headDim: number;

  private constructor(
    readonly config: Config,
    private readonly t: Map<string, Mat>,
  ) {
    this.headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
    for (let l = 0; l < config.num_hidden_layers; l++) {
      this.cacheK.push([]);
      this.cacheV.push([]);
    }
  }

  static async load(dir: string): Promise<LlamaCpu> {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Config;
    if (config.rope_scaling) throw new Error('the reference forward does not implement rope_scaling');
    const reader = await SafetensorsReader.open(join(dir, 'model.safetensors'));
    const t = new Map<string, Mat>();
    try {
      for (const name of reader.keys()) {
        const shape = reader.info(name).shape;
        const w = Float64Array.from(await reader.read(name, { as: 'f32' }));
        t.set(name, { rows: shape[0], cols: shape.length > 1 ? shape[1] : 1, w });
      }
    } finally {
      await reader.close();
    }
    return new LlamaCpu(config, t);
  }

  private get(name: string): Mat {
    const m = this.t.get(name);
    if (!m) throw new Error(`missing tensor ${name}`);
    return m;
  }

  /** Rotate-half RoPE on each head of `x` in place, at position `pos`. */
  private rope(x: Float64Array, nHeads: number, pos: number): void {
    const d = this.headDim;
    const half = d / 2;
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * this.config.rope_theta ** (-(2 * i) / d);
        const [c, s] = [Math.cos(angle), Math.sin(angle)];
        const a = x[h * d + i];
        const b = x[h * d + i + half];
        x[h * d + i] = a * c - b * s;
        x[h * d + i + half] = b * c + a * s;
      }
    }
  }

  /** Logits for the next token after feeding `token` at the next position. */
  step(token: number): Float64Array {
    const c = this.config;
    const pos = this.cacheK[0].length;
    const d = this.headDim;
    const emb = this.get('model.embed_tokens.weight');
    let x: Float64Array = emb.w.slice(token * c.hidden_size, (token + 1) * c.hidden_size);
    const group = c.num_attention_heads / c.num_key_value_heads;
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const h = rmsnorm(x, this.get(`${p}input_layernorm.weight`).w, c.rms_norm_eps);
      const q = matvec(this.get(`${p}self_attn.q_proj.weight`), h);
      const k = matvec(this.get(`${p}self_attn.k_proj.weight`), h);
      const v = matvec(this.get(`${p}self_attn.v_proj.weight`), h);
      this.rope(q, c.num_attention_heads, pos);
      this.rope(k, c.num_key_value_heads, pos);
      this.cacheK[l].push(k);
      this.cacheV[l].push(v);
      const att = new Float64Array(c.num_attention_heads * d);
      for (let head = 0; head < c.num_attention_heads; head++) {
        const kvh = Math.floor(head / group);
        const scores = this.cacheK[l].map((kt) => {
          let s = 0;
          for (let i = 0; i < d; i++) s += q[head * d + i] * kt[kvh * d + i];
          return s / Math.sqrt(d);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        this.cacheV[l].forEach((vt, t) => {
          for (let i = 0; i < d; i++) att[head * d + i] += (e[t] / z) * vt[kvh * d + i];
        });
      }
      const o = matvec(this.get(`${p}self_attn.o_proj.weight`), att);
      x = x.map((xv, i) => xv + o[i]);
      const h2 = rmsnorm(x, this.get(`${p}post_attention_layernorm.weight`).w, c.rms_norm_eps);
      const gate = matvec(this.get(`${p}mlp.gate_proj.weight`), h2);
      const up = matvec(this.get(`${p}mlp.up_proj.weight`), h2);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = matvec(this.get(`${p}mlp.down_proj.weight`), act);
      x = x.map((xv, i) => xv + down[i]);
    }
    const xf = rmsnorm(x, this.get('model.norm.weight').w, c.rms_norm_eps);
    return matvec(c.tie_word_embeddings ? emb : this.get('lm_head.weight'), xf);
  }

  /**
   * Greedy continuation of `prompt` (ids, BOS included): feeds the prompt, then appends argmax
   * tokens until `done(ids)` holds or `maxNew` tokens were added. Returns prompt + generated ids.
   */
  generate(prompt: number[], maxNew: number, done: (ids: number[]) => boolean): number[] {
    const ids = [...prompt];
    let logits: Float64Array = new Float64Array(0);
    for (const id of prompt) logits = this.step(id);
    for (let n = 0; n < maxNew && !done(ids); n++) {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      ids.push(best);
      logits = this.step(best);
    }
    return ids;
  }
}
