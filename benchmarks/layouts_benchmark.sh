#!/usr/bin/env bash
# Train and inference img/s of the two ResNet50 FPN layouts at 320 px, batch 8, float32 and
# mixed bfloat16 (--amp), alternating in one run so that both see the same machine state:
#   configs/ssd320_full_1gpus.config  ssd_resnet50_v1_fpn_keras (OD API TF2, Keras layout)
#   configs/ssd320_seed_1gpus.config  ssd_resnet50_v1_fpn       (OD API TF1, TF-slim layout)
# Usage: bash benchmarks/layouts_benchmark.sh [ROUNDS]   (default 2; about 12 minutes a round on
# 2 cores). Random weights and data (train_benchmark.py, examples/SSD320_inference.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
grep -m1 "model name" /proc/cpuinfo || true
for round in $(seq 1 "${1:-2}"); do
  for amp in "" "--amp"; do
    for cfg in ssd320_full_1gpus ssd320_seed_1gpus; do
      echo "== train ${cfg} ${amp:-fp32} round ${round}"
      "${PY}" benchmarks/train_benchmark.py --pipeline_config_path "configs/${cfg}.config" \
        --batch_size 8 --num_steps 10 --benchmark_last_k 6 ${amp} 2>&1 \
        | grep -E "train_throughput|^error" || true
      echo "== infer ${cfg} ${amp:-fp32} round ${round}"
      "${PY}" examples/SSD320_inference.py --pipeline_config_path "configs/${cfg}.config" \
        --batch_size 8 --warmup_iters 2 --benchmark_iters 10 ${amp} 2>&1 \
        | grep -E "Benchmark result|^error" || true
    done
  done
done
