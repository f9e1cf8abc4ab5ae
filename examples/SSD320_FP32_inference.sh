#!/usr/bin/env bash
# Inference benchmark of SSD320 v1.2 in FP32 (examples/SSD320_inference.py on
# configs/ssd320_full_1gpus.config): img/s and latency avg/p50/p90/p95/p99.
# Usage: examples/SSD320_FP32_inference.sh [CKPT_DIR] [CONFIG_DIR] [flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP32_inference.sh /results/SSD320_FP32_1GPU configs --batch_size=8
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_inference FP32 "$@"
