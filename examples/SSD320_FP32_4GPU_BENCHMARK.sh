#!/usr/bin/env bash
# Benchmarks SSD320 v1.2 training in float32 (TF32 off, as in the seed)
# on 4 GPU(s) with configs/ssd320_bench.config; prints img/s.
# 4 workers: horovodrun -np 4 -H localhost:4 (LAUNCHER=mpirun: as the seed;
# LAUNCHER=mirrored, or no Horovod installed: one process, MirroredStrategy).
# Usage: examples/SSD320_FP32_4GPU_BENCHMARK.sh [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP32_4GPU_BENCHMARK.sh /results/SSD320_FP32_4GPU configs
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_train 4 FP32 benchmark "$@"
