/**
 * Float64 CPU forwards of GPT-2, RoBERTa and LLaMA read from the same safetensors files the GPU
 * loads: the oracle for the architecture tests. Written from the published formulas with plain
 * loops; batch rows are independent sequences. Configs are config.json objects as written.
 */
import {
  ACT,
  addVec,
  attention,
  conv1d,
  layerNorm,
  linear,
  type RefTensor,
  rmsNorm,
  row,
  type Vec,
} from './math.js';

// biome-ignore lint/suspicious/noExplicitAny: config.json as parsed
type Json = any;

export interface RefInputs {
  ids: number[][];
  /** [B][T]: 1 = token, 0 = padding. */
  mask?: number[][];
  /** [B][T] position ids (default 0..T-1, or RoBERTa's padding-aware ones). */
  positions?: number[][];
}

/** Looks a tensor up by its full name or by its name without the base-model prefix. */
function getter(w: Map<string, RefTensor>, prefix: string) {
  return (name: string): RefTensor => {
    const t = w.get(prefix + name) ?? w.get(name);
    if (!t) throw new Error(`reference: no tensor ${prefix}${name}`);
    return t;
  };
}

export function gpt2Reference(w: Map<string, RefTensor>, cfg: Json, inp: RefInputs): Vec[][] {
  const g = getter(w, 'transformer.');
  const C = cfg.n_embd;
  const H = cfg.n_head;
  const eps = cfg.layer_norm_epsilon;
  const act = ACT[cfg.activation_function];
  const out = cfg.tie_word_embeddings === false ? g('lm_head.weight') : g('wte.weight');
  return inp.ids.map((seq, b) => {
    let x = seq.map((id, t) =>
      addVec(row(g('wte.weight'), id), row(g('wpe.weight'), inp.positions?.[b][t] ?? t)),
    );
    for (let l = 0; l < cfg.n_layer; l++) {
      const p = (n: string) => g(`h.${l}.${n}`);
      const qkv = x.map((v) =>
        conv1d(
          p('attn.c_attn.weight'),
          layerNorm(v, p('ln_1.weight'), p('ln_1.bias'), eps),
          p('attn.c_attn.bias'),
        ),
      );
      const a = attention(
        qkv.map((v) => v.slice(0, C)),
        qkv.map((v) => v.slice(C, 2 * C)),
        qkv.map((v) => v.slice(2 * C)),
        {
          heads: H,
          kvHeads: H,
          headDim: C / H,
          scale: 1 / Math.sqrt(C / H),
          causal: true,
          keep: inp.mask?.[b],
        },
      );
      x = x.map((v, t) => addVec(v, conv1d(p('attn.c_proj.weight'), a[t], p('attn.c_proj.bias'))));
      x = x.map((v) => {
        const h = conv1d(
          p('mlp.c_fc.weight'),
          layerNorm(v, p('ln_2.weight'), p('ln_2.bias'), eps),
          p('mlp.c_fc.bias'),
        );
        return addVec(v, conv1d(p('mlp.c_proj.weight'), h.map(act), p('mlp.c_proj.bias')));
      });
    }
    return x.map((v) => linear(out, layerNorm(v, g('ln_f.weight'), g('ln_f.bias'), eps)));
  });
}

/** Inverse RoPE frequencies with optional linear or llama3 scaling of config.json's rope_scaling. */
function ropeInvFreq(cfg: Json, rotary: number): number[] {
  const theta = cfg.rope_theta ?? 10000;
  const base = Array.from({ length: rotary / 2 }, (_, i) => 1 / theta ** ((2 * i) / rotary));
  const sc = cfg.rope_scaling;
  const type = sc?.rope_type ?? sc?.type;
  if (!sc || type === 'default') return base;
  if (type === 'linear') return base.map((f) => f / sc.factor);
  const orig = sc.original_max_position_embeddings;
  return base.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < orig / sc.high_freq_factor) return f;
    if (wavelength > orig / sc.low_freq_factor) return f / sc.factor;
    const t = (orig / wavelength - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
    return (1 - t) * (f / sc.factor) + t * f;
  });
}

/** Rotate-half RoPE of every head of x at position `pos`: dim i pairs with i + D/2. */
function rotateHalf(x: Vec, heads: number, D: number, inv: number[], pos: number): Vec {
  const y = Float64Array.from(x);
  const half = inv.length;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const a = x[h * D + i];
      const b = x[h * D + i + half];
      const c = Math.cos(pos * inv[i]);
      const s = Math.sin(pos * inv[i]);
      y[h * D + i] = a * c - b * s;
      y[h * D + i + half] = b * c + a * s;
    }
  }
  return y;
}

export function llamaReference(w: Map<string, RefTensor>, cfg: Json, inp: RefInputs): Vec[][] {
  const g = getter(w, 'model.');
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads ?? H;
  const D = cfg.head_dim ?? cfg.hidden_size / H;
  const eps = cfg.rms_norm_eps;
  const inv = ropeInvFreq(cfg, D);
  const bias = (n: string) => (cfg.attention_bias ? g(n) : undefined);
  const mlpBias = (n: string) => (cfg.mlp_bias ? g(n) : undefined);
  const out = cfg.tie_word_embeddings ? g('embed_tokens.weight') : g('lm_head.weight');
  return inp.ids.map((seq, b) => {
    const pos = seq.map((_, t) => inp.positions?.[b][t] ?? t);
    let x = seq.map((id) => row(g('embed_tokens.weight'), id));
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = (n: string) => `layers.${l}.${n}`;
      const h = x.map((v) => rmsNorm(v, g(p('input_layernorm.weight')), eps));
      const proj = (n: string) =>
        h.map((v) => linear(g(p(`self_attn.${n}.weight`)), v, bias(p(`self_attn.${n}.bias`))));
      const q = proj('q_proj').map((v, t) => rotateHalf(v, H, D, inv, pos[t]));
      const k = proj('k_proj').map((v, t) => rotateHalf(v, Hkv, D, inv, pos[t]));
      const a = attention(q, k, proj('v_proj'), {
        heads: H,
        kvHeads: Hkv,
        headDim: D,
        scale: 1 / Math.sqrt(D),
        causal: true,
        keep: inp.mask?.[b],
      });
      x = x.map((v, t) =>
        addVec(v, linear(g(p('self_attn.o_proj.weight')), a[t], bias(p('self_attn.o_proj.bias')))),
      );
      x = x.map((v) => {
        const n = rmsNorm(v, g(p('post_attention_layernorm.weight')), eps);
        const gate = linear(g(p('mlp.gate_proj.weight')), n, mlpBias(p('mlp.gate_proj.bias'))).map(
          ACT[cfg.hidden_act],
        );
        const up = linear(g(p('mlp.up_proj.weight')), n, mlpBias(p('mlp.up_proj.bias')));
        return addVec(
          v,
          linear(
            g(p('mlp.down_proj.weight')),
            gate.map((z, i) => z * up[i]),
            mlpBias(p('mlp.down_proj.bias')),
          ),
        );
      });
    }
    return x.map((v) => linear(out, rmsNorm(v, g('norm.weight'), eps)));
  });
}

/** RoBERTa hidden states [B][T][C]: padding-aware positions, post-LN layers. */
function robertaEncoder(w: Map<string, RefTensor>, cfg: Json, inp: RefInputs): Vec[][] {
  const g = getter(w, 'roberta.');
  const pad = cfg.pad_token_id;
  const C = cfg.hidden_size;
  const H = cfg.num_attention_heads;
  const eps = cfg.layer_norm_eps;
  const act = ACT[cfg.hidden_act];
  return inp.ids.map((seq, b) => {
    let count = 0;
    const pos = inp.positions?.[b] ?? seq.map((id) => (id === pad ? pad : pad + ++count));
    let x = seq.map((id, t) =>
      layerNorm(
        addVec(
          addVec(
            row(g('embeddings.word_embeddings.weight'), id),
            row(g('embeddings.position_embeddings.weight'), pos[t]),
          ),
          row(g('embeddings.token_type_embeddings.weight'), 0),
        ),
        g('embeddings.LayerNorm.weight'),
        g('embeddings.LayerNorm.bias'),
        eps,
      ),
    );
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = (n: string) => g(`encoder.layer.${l}.${n}`);
      const proj = (n: string) =>
        x.map((v) => linear(p(`attention.self.${n}.weight`), v, p(`attention.self.${n}.bias`)));
      const a = attention(proj('query'), proj('key'), proj('value'), {
        heads: H,
        kvHeads: H,
        headDim: C / H,
        scale: 1 / Math.sqrt(C / H),
        causal: false,
        keep: inp.mask?.[b],
      });
      const att = x.map((v, t) =>
        layerNorm(
          addVec(linear(p('attention.output.dense.weight'), a[t], p('attention.output.dense.bias')), v),
          p('attention.output.LayerNorm.weight'),
          p('attention.output.LayerNorm.bias'),
          eps,
        ),
      );
      x = att.map((v) => {
        const inter = linear(p('intermediate.dense.weight'), v, p('intermediate.dense.bias')).map(act);
        return layerNorm(
          addVec(linear(p('output.dense.weight'), inter, p('output.dense.bias')), v),
          p('output.LayerNorm.weight'),
          p('output.LayerNorm.bias'),
          eps,
        );
      });
    }
    return x;
  });
}

/** RobertaForSequenceClassification logits [B][num_labels]. */
export function robertaClassifierReference(w: Map<string, RefTensor>, cfg: Json, inp: RefInputs): Vec[] {
  const get = (n: string) => w.get(n) as RefTensor;
  return robertaEncoder(w, cfg, inp).map((seq) => {
    const h = linear(get('classifier.dense.weight'), seq[0], get('classifier.dense.bias')).map(Math.tanh);
    return linear(get('classifier.out_proj.weight'), h, get('classifier.out_proj.bias'));
  });
}

/** RobertaForMaskedLM logits [B][T][V]: dense -> erf GELU -> LayerNorm -> tied decoder + bias. */
export function robertaMlmReference(w: Map<string, RefTensor>, cfg: Json, inp: RefInputs): Vec[][] {
  const get = (n: string) => w.get(n) as RefTensor;
  return robertaEncoder(w, cfg, inp).map((seq) =>
    seq.map((v) => {
      const h = layerNorm(
        linear(get('lm_head.dense.weight'), v, get('lm_head.dense.bias')).map(ACT.gelu),
        get('lm_head.layer_norm.weight'),
        get('lm_head.layer_norm.bias'),
        cfg.layer_norm_eps,
      );
      return linear(get('roberta.embeddings.word_embeddings.weight'), h, get('lm_head.bias'));
    }),
  );
}
