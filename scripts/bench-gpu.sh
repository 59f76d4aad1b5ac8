#!/bin/bash
# The GPU benchmark as one prepared run: doctor, matmul/elementwise bench, training steps, decoding,
# then the PyTorch peer on the same GPU when python3 has torch + transformers + peft.
# Each part has its own time limit so that one slow part cannot eat the rest of a short lease.
# Usage: OUT=dir [SHARELORA="node dist/sharelora.mjs"] [MODEL=imported-model-dir] bash scripts/bench-gpu.sh
cd "$(dirname "$0")/.."
out=${OUT:-bench-gpu-out}; mkdir -p "$out"
cli=${SHARELORA:-node apps/cli/dist/bin.js}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
part() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@"; echo "($name: exit $?)"; }
part doctor 30 $cli doctor
part matmul 60 $cli bench --reps 3 --rounds 1 --json >"$out/bench.json"
for shape in stories260k gpt2-small roberta-base llama-1b; do
  part "train $shape" 120 $cli bench --train "$shape" --steps 3 --json >"$out/train-$shape.json"
done
[ -n "${MODEL:-}" ] && part decode 60 $cli bench --generate --model "$MODEL" --new-tokens 128 --runs 2 --json >"$out/generate.json"
python3 -c 'import torch, transformers, peft' 2>/dev/null && PYTHONUNBUFFERED=1 part peer 180 python3 scripts/bench-gpu-peer.py | tee "$out/peer.txt"
