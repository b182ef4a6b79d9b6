#!/usr/bin/env bash
# GPU check (issue 16; not part of `make bench`): on one CUDA GPU, in at most 8 minutes,
#   - the real `fit` (paper preset, bf16) for 300 steps on structseg-profile phantom cases: step time, the
#     share of the time the GPU is busy (torch.profiler) and one reference-mode validation;
#   - one training step three ways: fast path, plain modules, torch.compile;
#   - the 6-member ensemble in the reference mode on a 150 x 512 x 512 case: seconds per case, three ways.
# Writes results/benchmarks/gpu_fit.csv, gpu_train_step.csv and gpu_ensemble.csv (the book's Benchmarks
# page shows them), each as soon as its part ends; parts that would not fit the time left are recorded
# as skipped. Needs a CUDA build of torch (pyproject pins the CPU wheel: install the CUDA wheel of the same
# version into the venv first). Options go to gpu_bench.py (--budget-s, --parts, --out, --work).
#     bash benchmarks/gpu.sh
#     bash benchmarks/gpu.sh --dry --out /tmp/gpu   # the same code on tiny sizes on the CPU (~1 min; tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
dry=0
for arg in "$@"; do
    [[ "$arg" == "--dry" ]] && dry=1
done
if [[ $dry == 0 ]]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: error: no CUDA device visible (torch ' + torch.__version__ + ')')"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
# 420 s of measurements inside an 8-minute hard limit (start-up and the last CSV write fit in the rest)
exec timeout 480 "$PY" benchmarks/gpu_bench.py --budget-s 420 "$@"
