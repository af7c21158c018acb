#!/usr/bin/env bash
# GPU check: the GPU-marked tests, one MNIST epoch per rule on CUDA, then `pepita-lab bench` on
# CUDA (every rule's step, whole epochs, the conv net and PEPITA populations up to K = 256) in
# fp32 and in TF32, and an epoch with CUDA graphs (--compile reduce-overhead).
# Run on a machine with CUDA after `make data` (or `make gpu-check`). Results go to
# ${GPU_OUT:-gpu-results}/: bench-fp32.json, bench-tf32.json and the printed reports.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${GPU_OUT:-gpu-results}
mkdir -p "$OUT"
"$BIN/python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$BIN/python" -m pytest -q -m gpu tests
for rule in pepita bp; do
  "$BIN/pepita-lab" train --preset paper-mnist --rule "$rule" --epochs 2 --device cuda --quiet \
    | tee "$OUT/epoch-$rule.txt"
done
"$BIN/pepita-lab" train --preset paper-mnist --epochs 2 --device cuda --compile reduce-overhead \
  --quiet | tee "$OUT/epoch-pepita-cudagraphs.txt"
for precision in fp32 tf32; do
  "$BIN/pepita-lab" bench --device cuda --precision "$precision" \
    --json "$OUT/bench-$precision.json" | tee "$OUT/bench-$precision.txt"
done
