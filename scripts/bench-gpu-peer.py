"""PyTorch peer on a CUDA GPU: fp32 matmul (TF32 off and on) and PEFT LoRA training steps of the shapes `sharelora bench --train` times (LoRA r=8, AdamW, loss read back).
Run: python3 scripts/bench-gpu-peer.py (torch, transformers and peft importable)."""
import time, torch, sys
import transformers, peft
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaForSequenceClassification
from peft import LoraConfig, get_peft_model
dev = 'cuda'
print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, torch.cuda.get_device_name(0), flush=True)
def mm(n, tf32, reps=50):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=dev); b = torch.randn(n, n, device=dev)
    for _ in range(5): a @ b
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(reps): a @ b
    torch.cuda.synchronize(); dt = (time.perf_counter() - t) / reps
    print(f"matmul {n}^3 fp32 tf32={tf32}: {2*n**3/dt/1e9:.0f} GFLOP/s", flush=True)
for n in (1024, 4096):
    mm(n, False); mm(n, True)
torch.backends.cuda.matmul.allow_tf32 = False
def bench(name, model, targets, fan, batch, seq, vocab, task='CAUSAL_LM', steps=10):
    torch.manual_seed(0)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, fan_in_fan_out=fan, task_type=task)
    m = get_peft_model(model.to(dev), cfg); m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randint(3, vocab, (batch, seq), device=dev)
    labels = torch.randint(0, 2, (batch,), device=dev) if task == 'SEQ_CLS' else x
    def step():
        out = m(input_ids=x, labels=labels); out.loss.backward(); opt.step(); opt.zero_grad(); out.loss.item()
    step(); step()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(steps): step()
    torch.cuda.synchronize(); dt = (time.perf_counter() - t) / steps
    print(f"peer {name}: {dt*1000:.2f} ms/step, {batch*seq/dt:.0f} tokens/s", flush=True)
    del m, opt; torch.cuda.empty_cache()
llama = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=5, num_attention_heads=8, num_key_value_heads=4, vocab_size=512, max_position_embeddings=512, attn_implementation='eager')
bench('stories260k LoRA q,v r=8 8x256', LlamaForCausalLM(llama), ['q_proj', 'v_proj'], False, 8, 256, 512)
bench('gpt2-small LoRA c_attn r=8 4x128', GPT2LMHeadModel(GPT2Config(attn_implementation='eager')), ['c_attn'], True, 4, 128, 50257)
rb = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, num_labels=2, attn_implementation='eager')
bench('roberta-base seq-cls LoRA query,value r=8 8x128', RobertaForSequenceClassification(rb), ['query', 'value'], False, 8, 128, 50265, task='SEQ_CLS')
l1b = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0, tie_word_embeddings=True, attn_implementation='eager')
bench('llama-1b LoRA q,v r=8 1x64 (fp32 base)', LlamaForCausalLM(l1b), ['q_proj', 'v_proj'], False, 1, 64, 128256)
