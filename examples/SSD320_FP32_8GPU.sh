#!/usr/bin/env bash
# Trains SSD320 v1.2 in float32 (TF32 off, as in the seed)
# on 8 GPU(s), global batch 8 x 32 = 256, with configs/ssd320_full_8gpus.config.
# 8 workers: horovodrun -np 8 -H localhost:8 (LAUNCHER=mpirun: as the seed;
# LAUNCHER=mirrored, or no Horovod installed: one process, MirroredStrategy).
# Usage: examples/SSD320_FP32_8GPU.sh [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP32_8GPU.sh /results/SSD320_FP32_8GPU configs
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_train 8 FP32 train "$@"
