#!/usr/bin/env bash
# GPU figures of issue 7 (not part of `make bench`): bf16 train-step throughput and 6-member ensemble time per
# case, each with and without torch.compile. Run on a machine with a CUDA GPU and a CUDA build of torch:
#     bash benchmarks/gpu.sh            # writes results/benchmarks/gpu_train_step.csv, gpu_ensemble.csv
# Takes a few minutes (most of it torch.compile). Check the script without a GPU:
#     .venv/bin/python benchmarks/gpu_bench.py --device cpu --quick
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" benchmarks/gpu_bench.py --device cuda "$@"
