/**
 * estimateStepFlops against the count written out by hand for a small GPT-2 config (2·m·k·n per
 * matmul), and the relations that must hold whatever the sizes.
 */
import { describe, expect, it } from 'vitest';
import { estimateStepFlops } from '../src/index.js';

const gpt2 = { model_type: 'gpt2', n_embd: 8, n_layer: 2, n_head: 2, vocab_size: 10, n_positions: 16 };
const llama = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 3,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 512,
  max_position_embeddings: 256,
};

describe('estimateStepFlops', () => {
  it('counts a small GPT-2 LoRA step as written out by hand', () => {
    const f = estimateStepFlops({
      config: gpt2,
      method: 'lora',
      rank: 2,
      targets: ['c_attn'],
      batchSize: 2,
      seqLength: 4,
    });
    const tokens = 8;
    // Per layer: c_attn 8×24, attn c_proj 8×8, c_fc 8×32, mlp c_proj 32×8.
    const linear = 2 * tokens * 2 * (8 * 24 + 8 * 8 + 8 * 32 + 32 * 8);
    // Scores and weighted sum: 2 products of 2·T²·width per sequence and layer.
    const attention = 2 * 2 * (2 * 4 * 4 * 8) * 2;
    // LoRA on c_attn: A 2×8 and B 24×2 per layer.
    const adapters = 2 * tokens * 2 * (2 * 8 + 24 * 2);
    const head = 2 * tokens * 8 * 10;
    expect(f.forward).toBe(linear + attention + adapters + head);
    expect(f.backward).toBe(linear + head + 2 * attention + 2 * adapters);
    expect(f.total).toBe(f.forward + f.backward);
  });

  it('sharing saves parameters, not arithmetic; full fine-tuning is three forwards', () => {
    const at = (method: 'lora' | 'share-a' | 'share-ab' | 'full') =>
      estimateStepFlops({
        config: llama,
        method,
        rank: 8,
        targets: ['q_proj', 'v_proj'],
        batchSize: 3,
        seqLength: 17,
      });
    expect(at('share-a')).toEqual(at('lora'));
    expect(at('share-ab')).toEqual(at('lora'));
    const full = at('full');
    expect(full.total).toBe(3 * full.forward);
    // The adapters add arithmetic on top of the frozen model's forward.
    expect(at('lora').forward).toBeGreaterThan(full.forward);
  });

  it('grows linearly in the batch and, attention aside, in the sequence length', () => {
    const f = (batchSize: number, seqLength: number) =>
      estimateStepFlops({ config: llama, method: 'lora', rank: 8, targets: ['q_proj'], batchSize, seqLength })
        .total;
    expect(f(6, 32)).toBe(2 * f(3, 32));
    // Doubling T doubles the linear part and quadruples attention: between 2× and 4×.
    expect(f(3, 64) / f(3, 32)).toBeGreaterThan(2);
    expect(f(3, 64) / f(3, 32)).toBeLessThan(4);
  });
});
