#!/usr/bin/env bash
# Benchmarks SSD320 v1.2 training in mixed precision (--amp: float16 + loss scaling before Ampere,
# bfloat16 on Ampere+ GPUs and CPUs)
# on 1 GPU(s) with configs/ssd320_bench.config; prints img/s.
# One process.
# Usage: examples/SSD320_FP16_1GPU_BENCHMARK.sh [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP16_1GPU_BENCHMARK.sh /results/SSD320_FP16_1GPU configs
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_train 1 FP16 benchmark "$@"
