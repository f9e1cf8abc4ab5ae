#!/usr/bin/env bash
# Fetches what training SSD320 v1.2 needs, on a machine with network access:
#   - COCO 2017, converted into TFRecords in COCO_DIR (coco_train.record-*, coco_val.record-*,
#     annotations/instances_val2017.json for evaluation);
#   - the ImageNet ResNet50 backbone weights (Keras applications, no top) into CHECKPOINT_DIR,
#     the file the configs' fine_tune_checkpoint names.
#
# Usage: bash download_all.sh [COCO_DIR] [CHECKPOINT_DIR]
#   defaults: /data/coco2017_tfrecords /checkpoints (the seed's paths).
# Environment: see object_detection/dataset_tools/download_and_preprocess_mscoco.sh.
# Nothing else in the project uses the network: training, tests and demos run offline.
set -euo pipefail

COCO_DIR="${1:-/data/coco2017_tfrecords}"
CHECKPOINT_DIR="${2:-/checkpoints}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

WEIGHTS_FILE="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL="https://storage.googleapis.com/tensorflow/keras-applications/resnet/${WEIGHTS_FILE}"
WEIGHTS_MD5="4d473c1dd8becc155b73f8504c6f6626"  # keras.applications.resnet WEIGHTS_HASHES

mkdir -p "${CHECKPOINT_DIR}"
if [[ -f "${CHECKPOINT_DIR}/${WEIGHTS_FILE}" ]] \
    && echo "${WEIGHTS_MD5}  ${CHECKPOINT_DIR}/${WEIGHTS_FILE}" | md5sum --check --quiet; then
  echo "${CHECKPOINT_DIR}/${WEIGHTS_FILE}: already there"
else
  echo "Downloading ${WEIGHTS_URL}"
  wget --no-verbose --show-progress --continue \
    --output-document="${CHECKPOINT_DIR}/${WEIGHTS_FILE}" "${WEIGHTS_URL}"
  echo "${WEIGHTS_MD5}  ${CHECKPOINT_DIR}/${WEIGHTS_FILE}" | md5sum --check --quiet || {
    echo "error: ${CHECKPOINT_DIR}/${WEIGHTS_FILE} does not have MD5 ${WEIGHTS_MD5}" >&2
    exit 1; }
fi

bash "${REPO_DIR}/object_detection/dataset_tools/download_and_preprocess_mscoco.sh" "${COCO_DIR}"
echo "Done: TFRecords in ${COCO_DIR}, backbone weights in ${CHECKPOINT_DIR}/${WEIGHTS_FILE}"
