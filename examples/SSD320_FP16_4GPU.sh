#!/usr/bin/env bash
# Trains SSD320 v1.2 in mixed precision (--amp: float16 + loss scaling before Ampere,
# bfloat16 on Ampere+ GPUs and CPUs)
# on 4 GPU(s), global batch 4 x 32 = 128, with configs/ssd320_full_4gpus.config.
# 4 workers: horovodrun -np 4 -H localhost:4 (LAUNCHER=mpirun: as the seed;
# LAUNCHER=mirrored, or no Horovod installed: one process, MirroredStrategy).
# Usage: examples/SSD320_FP16_4GPU.sh [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP16_4GPU.sh /results/SSD320_FP16_4GPU configs
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_train 4 FP16 train "$@"
