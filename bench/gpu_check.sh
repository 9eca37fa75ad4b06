#!/usr/bin/env bash
# One short GPU session: the compiled Triton kernels against the step loop, then the benchmark in fp32 and bf16.
# Usage (repository root, a CUDA machine with torch, lightning and torchmetrics): bash bench/gpu_check.sh [OUT_DIR]
# Writes OUT_DIR/gpu_{test,fp32,bf16}.{log,json} (default OUT_DIR: bench/). tonic / mlxtend are not needed.
set -uo pipefail
out="${1:-bench}"
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu_test.log"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu_test.log"
env -u TRITON_INTERPRET WANDB_MODE=disabled python3 -m pytest -q -p no:cacheprovider \
    tests/functional/test_triton_kernels.py -k compiled 2>&1 | tail -20 | tee -a "$out/gpu_test.log"
for precision in 32 bf16-mixed; do
    tag=$([ "$precision" = 32 ] && echo fp32 || echo bf16)
    timeout 240 python3 -m ttfs_lab.bench --device cuda --precision "$precision" --no-loading --no-inference \
        --out "$out/gpu_$tag.json" 2>&1 | grep -v "self.log" | tee "$out/gpu_$tag.log"
done
