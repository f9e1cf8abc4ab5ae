#!/usr/bin/env bash
# CPU quick start, end to end in about 3 minutes on 2 cores: makes the synthetic shapes dataset,
# trains the small CPU config (MobileNet v2 FPN, 128x128, 3 classes) for STEPS steps and
# evaluates it (COCO mAP), plots the training report, exports a SavedModel and runs it on the
# validation images (COCO json + drawn images).
#
# Usage: examples/cpu_quickstart.sh [WORK_DIR] [CONFIG_DIR] [model_main flags...]
#   WORK_DIR    everything is written here (default /tmp/ssd320_quickstart); the model directory
#               is WORK_DIR/model, so a second run into it skips the steps already trained
#   CONFIG_DIR  directory holding ssd_mobilenet_v2_fpn_shapes_128_cpu.config (default configs/)
#   STEPS=200 BATCH=8 NUM_TRAIN=64 NUM_VAL=16 EVAL_COUNT=1 in the environment change the run;
#   DRY_RUN=1 prints the commands only.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

if wants_help "$@"; then
  print_usage "CPU quick start: shapes dataset -> train the small CPU config -> evaluate ->
plots -> export -> inference (COCO json + drawn images), in about 3 minutes on 2 cores.

Usage: examples/cpu_quickstart.sh [WORK_DIR] [CONFIG_DIR] [model_main flags...]
  WORK_DIR    output directory (default /tmp/ssd320_quickstart)
  CONFIG_DIR  directory holding ssd_mobilenet_v2_fpn_shapes_128_cpu.config
              (default $REPO_DIR/configs)
  STEPS=200 BATCH=8 NUM_TRAIN=64 NUM_VAL=16 EVAL_COUNT=1   environment knobs"
  exit 0
fi

set -euo pipefail
WORK=${1:-/tmp/ssd320_quickstart}
CONFIG_DIR=${2:-$REPO_DIR/configs}
EXTRA=("${@:3}")
STEPS=${STEPS:-200}
BATCH=${BATCH:-8}
CONFIG="$CONFIG_DIR/ssd_mobilenet_v2_fpn_shapes_128_cpu.config"
DATA="$WORK/data"
MODEL="$WORK/model"
LR=train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
OVERRIDES=(
  "--config_override=train_input_reader.tf_record_input_reader.input_path=$DATA/coco_train.record*"
  "--config_override=eval_input_reader.0.tf_record_input_reader.input_path=$DATA/coco_val.record*"
  "--config_override=train_input_reader.label_map_path=$DATA/label_map.pbtxt"
  "--config_override=eval_input_reader.0.label_map_path=$DATA/label_map.pbtxt"
  "--config_override=train_config.batch_size=$BATCH"
  "--config_override=$LR.total_steps=$STEPS"
  "--config_override=$LR.warmup_steps=$(( STEPS / 10 ))"
)
START=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - START )) s)"; }

step "1/5 synthetic shapes dataset -> $DATA"
show_or_run "$PYTHON" -m object_detection.dataset_tools.create_shapes_dataset \
  --output_dir="$DATA" --num_train="${NUM_TRAIN:-64}" --num_val="${NUM_VAL:-16}" --image_size=128

step "2/5 train $STEPS steps (batch $BATCH) and evaluate -> $MODEL"
show_or_run "$PYTHON" -m object_detection.model_main --pipeline_config_path="$CONFIG" \
  --model_dir="$MODEL" --num_train_steps="$STEPS" --eval_count="${EVAL_COUNT:-1}" --log_every_n=20 \
  --raport_file="$MODEL/raport.json" "${OVERRIDES[@]}" "${EXTRA[@]}"

step "3/5 plots of the training report -> $WORK/plots"
show_or_run "$PYTHON" -m object_detection.utils.plot_report --raport_file="$MODEL/raport.json" \
  --output_dir="$WORK/plots"

step "4/5 export -> $WORK/exported"
show_or_run "$PYTHON" -m object_detection.export.exporter_main --pipeline_config_path="$CONFIG" \
  --trained_checkpoint_dir="$MODEL" --output_directory="$WORK/exported" "${OVERRIDES[@]}"

step "5/5 inference on the validation images -> $WORK/detections.json, $WORK/drawn"
show_or_run "$PYTHON" -m object_detection.export.infer --saved_model_dir="$WORK/exported" \
  --images="$DATA/val" --output_json="$WORK/detections.json" \
  --output_images_dir="$WORK/drawn" --label_map_path="$DATA/label_map.pbtxt" --min_score=0.3

step "done"
