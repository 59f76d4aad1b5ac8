"""The PyTorch side of the larger rows of scripts/bench-vs-peer.mjs: one LoRA fine-tuning step on
random weights and random ids, in PyTorch + transformers + PEFT on the CPU (2 threads), doing the
work `sharelora bench --train SHAPE` does for the same shape:

  roberta-base  RoBERTa-base sequence classification (2 labels), LoRA r=8 on query and value,
                batch 8 x 128, random class labels; only the adapter trains (the classifier head
                stays frozen, as in the sharelora shape)
  llama-1b      Llama-3.2-1B-shaped causal LM, LoRA r=8 on q_proj and v_proj, batch 1 x 64

Usage: PYTHONPATH=<peer site> python3 bench-peer-steps.py [--steps N] [--llama-dtype D ...] SHAPE...
Prints one line per run: "<shape>: <ms> ms/step, ..." (llama-1b: "llama-1b <dtype>: ...").

The Llama base runs twice by default, float32 and bfloat16. sharelora keeps the frozen base in
bf16 and computes in f32: PyTorch in float32 does the same arithmetic; in bfloat16 its activations
are bf16 too, and on a CPU with AVX512_BF16 it is the faster of the two.
"""
import argparse
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaForSequenceClassification


def roberta():
    cfg = RobertaConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                        vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                        num_labels=2, attn_implementation='eager')
    return RobertaForSequenceClassification(cfg), ['query', 'value'], 8, 128


def llama(dtype):
    cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                      num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                      rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
                      rope_scaling={'rope_type': 'llama3', 'factor': 32.0, 'low_freq_factor': 1.0,
                                    'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
                      attn_implementation='eager')
    return LlamaForCausalLM(cfg).to(getattr(torch, dtype)), ['q_proj', 'v_proj'], 1, 64


def bench(name, model, targets, batch, seq, steps):
    # No task type: PEFT then trains the adapter alone, as sharelora's benchmark shapes do.
    m = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets))
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    for p in params:  # the adapter in float32 whatever the frozen base's dtype
        p.data = p.data.float()
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randint(0, model.config.vocab_size, (batch, seq))
    # A classifier gets random classes; a causal LM predicts its own ids, shifted inside the model.
    classifier = isinstance(model, RobertaForSequenceClassification)
    labels = torch.randint(0, model.config.num_labels, (batch,)) if classifier else x

    def step():
        m(input_ids=x, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t) / steps
    print(f"{name}: {dt * 1000:.1f} ms/step, {batch * seq / dt:.0f} tokens/s, trainable {sum(p.numel() for p in params)}",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('shapes', nargs='+', choices=['roberta-base', 'llama-1b'])
    ap.add_argument('--steps', type=int, default=3, help='timed steps after one warm-up step (default 3)')
    ap.add_argument('--llama-dtype', action='append', choices=['float32', 'bfloat16'],
                    help='dtype of the frozen Llama base (repeatable; default both)')
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for shape in args.shapes:
        if shape == 'roberta-base':
            bench(shape, *roberta(), args.steps)
        else:
            for dtype in args.llama_dtype or ['float32', 'bfloat16']:
                bench(f'{shape} {dtype}', *llama(dtype), args.steps)


if __name__ == '__main__':
    main()
