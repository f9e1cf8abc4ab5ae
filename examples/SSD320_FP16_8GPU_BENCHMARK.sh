#!/usr/bin/env bash
# Benchmarks SSD320 v1.2 training in mixed precision (--amp: float16 + loss scaling before Ampere,
# bfloat16 on Ampere+ GPUs and CPUs)
# on 8 GPU(s) with configs/ssd320_bench.config; prints img/s.
# 8 workers: horovodrun -np 8 -H localhost:8 (LAUNCHER=mpirun: as the seed;
# LAUNCHER=mirrored, or no Horovod installed: one process, MirroredStrategy).
# Usage: examples/SSD320_FP16_8GPU_BENCHMARK.sh [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP16_8GPU_BENCHMARK.sh /results/SSD320_FP16_8GPU configs
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_train 8 FP16 benchmark "$@"
