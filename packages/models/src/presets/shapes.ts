/**
 * config.json files of published model shapes, for benchmarks and tests that need a real model's
 * dimensions but not its weights.
 */

/** Llama-3.2-1B (16 layers, d 2048, 32/8 heads of 64, vocabulary 128,256, tied embeddings, llama3 RoPE). */
export const LLAMA_3_2_1B_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  vocab_size: 128256,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: {
    rope_type: 'llama3',
    factor: 32,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  },
  tie_word_embeddings: true,
  hidden_act: 'silu',
  attention_bias: false,
  mlp_bias: false,
  bos_token_id: 128000,
  eos_token_id: 128001,
  torch_dtype: 'bfloat16',
  initializer_range: 0.02,
} as const;
