#!/usr/bin/env node
// Writes docs/data/params.json, the data of the ShareLoRA page's parameter chart, by running
// `sharelora params --json` (the CLI must be built) on the configs of the paper's models.
// Only the architecture goes in; every count comes out of the CLI.
//
// Usage: node apps/docs/scripts/params-data.mjs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url));
const OUT = fileURLToPath(new URL('../../../docs/data/params.json', import.meta.url));
const METHODS = ['lora', 'share-a', 'share-b', 'share-ab'];

const llama = (layers, hidden, mlp, heads, kvHeads) => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: hidden,
  intermediate_size: mlp,
  num_hidden_layers: layers,
  num_attention_heads: heads,
  num_key_value_heads: kvHeads,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
});

/** The paper's models, with the rank and targets it fine-tunes each with. */
const MODELS = [
  {
    name: 'RoBERTa-base',
    rank: 8,
    targets: 'q,v',
    config: {
      architectures: ['RobertaForMaskedLM'],
      model_type: 'roberta',
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      intermediate_size: 3072,
      vocab_size: 50265,
      max_position_embeddings: 514,
      type_vocab_size: 1,
    },
  },
  {
    name: 'GPT-2 medium',
    rank: 4,
    targets: 'q,v',
    config: {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: 1024,
      n_layer: 24,
      n_head: 16,
      n_positions: 1024,
      vocab_size: 50257,
    },
  },
  { name: 'LLaMA-7B', rank: 64, targets: 'all', config: llama(32, 4096, 11008, 32, 32) },
  { name: 'Llama-3-8B', rank: 64, targets: 'q,v', config: llama(32, 4096, 14336, 32, 8) },
];

const dir = mkdtempSync(join(tmpdir(), 'sharelora-params-'));
try {
  const rows = [];
  for (const m of MODELS) {
    const config = join(dir, `${m.name}.json`);
    writeFileSync(config, JSON.stringify(m.config));
    for (const method of METHODS) {
      const args = [
        'params',
        '--model',
        config,
        '--method',
        method,
        '--rank',
        String(m.rank),
        '--targets',
        m.targets,
        '--json',
      ];
      const r = JSON.parse(execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' }));
      rows.push({
        model: m.name,
        layers: r.layers,
        rank: m.rank,
        targets: r.targets,
        method,
        trainable: r.total.trainable,
        lora: r.total.lora,
        reduction: r.total.reduction,
      });
    }
  }
  writeFileSync(OUT, `${JSON.stringify({ command: 'sharelora params --json', rows }, null, 2)}\n`);
  console.log(`wrote ${rows.length} rows to ${OUT}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
