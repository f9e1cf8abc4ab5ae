#!/usr/bin/env bash
# Evaluates the newest checkpoint of a training run once (COCO mAP, the 12-line summary).
# Usage: examples/SSD320_evaluate.sh CKPT_DIR [CONFIG_DIR] [model_main flags...]
#        (--help prints the usage; DRY_RUN=1 prints the command only)
# e.g.   bash examples/SSD320_evaluate.sh /results/SSD320_FP16_8GPU
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ssd320_evaluate "$@"
