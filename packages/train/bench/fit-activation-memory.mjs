// Refits the activation terms of estimateStepMemory (src/memory/estimate.ts): measures training
// steps of LLaMA-, GPT-2- and RoBERTa-shaped models over a grid of widths, depths, FFN sizes,
// vocabularies and ranks (d 64 to 512, ranks 8 to 64) with benchTrainStep, takes the live bytes
// at the step's peak beyond the exactly counted weights, adapter, gradients and AdamW state, and
// fits them per token by least squares on the same terms the estimate uses. Prints the FITS table
// to paste into estimate.ts, and how far the fit is from its own measurements.
// Run after `pnpm build`: node packages/train/bench/fit-activation-memory.mjs (a few minutes).
import { init, shutdown } from '@sharelora/core/node';
import { benchTrainStep, estimateStepMemory } from '@sharelora/train';

const [B, T] = [4, 128];
const method = 'share-a';

const configs = {
  llama: (d, layers, ffn, V) => ({
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: d,
    intermediate_size: ffn,
    num_hidden_layers: layers,
    num_attention_heads: d / 32,
    num_key_value_heads: d / 64 || 1,
    vocab_size: V,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
  }),
  gpt2: (d, layers, _ffn, V) => ({
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: d,
    n_layer: layers,
    n_head: d / 32,
    vocab_size: V,
    n_positions: 256,
  }),
  roberta: (d, layers, ffn, V) => ({
    architectures: ['RobertaForSequenceClassification'],
    model_type: 'roberta',
    hidden_size: d,
    num_hidden_layers: layers,
    num_attention_heads: d / 32,
    intermediate_size: ffn,
    vocab_size: V,
    max_position_embeddings: 258,
    type_vocab_size: 1,
    pad_token_id: 1,
    num_labels: 3,
  }),
};
const shapes = { llama: 'stories260k', gpt2: 'gpt2-small', roberta: 'roberta-base' };
const targets = {
  llama: ['q_proj', 'v_proj', 'gate_proj'],
  gpt2: ['c_attn', 'c_fc'],
  roberta: ['query', 'value'],
};
// The terms each architecture's fit has (GPT-2's FFN is 4·d, folded into layerHidden).
const terms = {
  llama: ['layerHidden', 'layerFfn', 'layerRank', 'vocab', 'hidden'],
  gpt2: ['layerHidden', 'vocab', 'hidden'],
  roberta: ['layerHidden', 'layerFfn', 'hidden'],
};

/** Least squares by the normal equations (a handful of terms), Gaussian elimination. */
function leastSquares(X, y) {
  const n = X[0].length;
  const A = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n + 1 }, (_, j) => X.reduce((s, row, r) => s + row[i] * (j < n ? row[j] : y[r]), 0)),
  );
  for (let c = 0; c < n; c++) {
    const p = A.reduce((best, row, r) => (r >= c && Math.abs(row[c]) > Math.abs(A[best][c]) ? r : best), c);
    [A[c], A[p]] = [A[p], A[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r][c] / A[c][c];
      for (let j = c; j <= n; j++) A[r][j] -= f * A[c][j];
    }
  }
  return A.map((row, i) => row[n] / row[i]);
}

await init();
const fits = {};
for (const arch of Object.keys(configs)) {
  const X = [];
  const y = [];
  for (const d of [64, 128, 256, 512])
    for (const layers of [2, 3])
      for (const ffnRatio of arch === 'gpt2' ? [4] : [8 / 3, 4])
        for (const V of [512, 3000])
          for (const rank of [8, Math.min(64, d / 2)]) {
            const ffn = Math.round((d * ffnRatio) / 4) * 4;
            const config = configs[arch](d, layers, ffn, V);
            const run = await benchTrainStep({
              shape: shapes[arch],
              config,
              targets: targets[arch],
              batchSize: B,
              seqLength: T,
              method,
              rank,
              steps: 1,
            });
            // The exactly counted parts, from the estimate itself (its activation term set aside).
            const [est] = estimateStepMemory(
              { config, method, rank, targets: targets[arch], batchSize: B, seqLength: T },
              ['f32'],
            );
            const exact = est.total - est.activations;
            const modules = arch === 'roberta' ? 2 : targets[arch].length;
            const all = {
              layerHidden: layers * d,
              layerFfn: layers * ffn,
              layerRank: layers * rank * modules,
              vocab: V,
              hidden: d,
            };
            X.push(terms[arch].map((t) => all[t]));
            y.push((run.peakByCategory.total - exact) / (B * T));
            process.stderr.write(`${arch} d ${d} layers ${layers} ffn ${ffn} V ${V} r ${rank}\n`);
          }
  const coef = leastSquares(X, y);
  fits[arch] = Object.fromEntries(
    ['layerHidden', 'layerFfn', 'layerRank', 'vocab', 'hidden'].map((t) => {
      const i = terms[arch].indexOf(t);
      return [t, i < 0 ? 0 : Math.round(coef[i] * 10) / 10];
    }),
  );
  const worst = Math.max(
    ...X.map((row, r) => Math.abs(row.reduce((s, v, i) => s + v * coef[i], 0) / y[r] - 1)),
  );
  process.stderr.write(
    `${arch}: worst relative error of the fit on its own runs ${(100 * worst).toFixed(1)}%\n`,
  );
}
shutdown();
console.log('const FITS: Record<LinearArch, ActivationFit> = {');
for (const [arch, f] of Object.entries(fits))
  console.log(
    `  ${arch}: { ${Object.entries(f)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')} },`,
  );
console.log('};');
