#!/usr/bin/env bash
# Trains SSD320 v1.2 in float32 (TF32 off, as in the seed)
# on 1 GPU(s), global batch 1 x 32 = 32, with configs/ssd320_full_1gpus.config.
# One process.
# Usage: examples/SSD320_FP32_1GPU.sh [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_FP32_1GPU.sh /results/SSD320_FP32_1GPU configs
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_train 1 FP32 train "$@"
