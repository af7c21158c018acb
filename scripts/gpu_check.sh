#!/usr/bin/env bash
# GPU check: the GPU-marked tests, then one MNIST epoch of the paper's net on CUDA.
# Run on a machine with CUDA after `make data` (or `make gpu-check`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
"$BIN/python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$BIN/python" -m pytest -q -m gpu tests
for rule in pepita bp; do
  "$BIN/pepita-lab" train --preset paper-mnist --rule "$rule" --epochs 1 --device cuda --quiet
done
