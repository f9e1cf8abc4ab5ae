#!/usr/bin/env bash
# Fetches what training SSD320 v1.2 needs, on a machine with network access:
#   - COCO 2017, converted into TFRecords in COCO_DIR (coco_train.record-*, coco_val.record-*,
#     annotations/instances_val2017.json for evaluation);
#   - the ImageNet ResNet50 backbone weights (Keras applications, no top) into CHECKPOINT_DIR,
#     the file configs/ssd320_full_*.config (the TF2 network) name as fine_tune_checkpoint;
#   - TF-slim's ImageNet resnet_v1_50 into CHECKPOINT_DIR/resnet_v1_50/model.ckpt, the file the
#     seed's configs and configs/ssd320_seed_*.config (the TF1 network) name.
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

# The seed's backbone (the TF1 extractor ssd_resnet50_v1_fpn, configs/ssd320_seed_*.config):
# TF-slim's ImageNet resnet_v1_50, at the seed's path CHECKPOINT_DIR/resnet_v1_50/model.ckpt.
# TF-slim publishes no checksum for it: the archive is tested (gzip -t) and the checkpoint is
# checked variable by variable (every backbone variable of resnet_v1_50 with its shape).
SLIM_ARCHIVE="resnet_v1_50_2016_08_28.tar.gz"
SLIM_URL="http://download.tensorflow.org/models/${SLIM_ARCHIVE}"
SLIM_DIR="${CHECKPOINT_DIR}/resnet_v1_50"
PYTHON="${PYTHON:-python3}"
verify_slim() {
  "${PYTHON}" -m object_detection.verify_checkpoint --slim_resnet_v1 50 "${SLIM_DIR}/model.ckpt"
}
if [[ -e "${SLIM_DIR}/model.ckpt" || -e "${SLIM_DIR}/model.ckpt.index" ]] && verify_slim; then
  echo "${SLIM_DIR}/model.ckpt: already there"
else
  echo "Downloading ${SLIM_URL}"
  wget --no-verbose --show-progress --continue \
    --output-document="${CHECKPOINT_DIR}/${SLIM_ARCHIVE}" "${SLIM_URL}"
  gzip -t "${CHECKPOINT_DIR}/${SLIM_ARCHIVE}" || {
    echo "error: ${CHECKPOINT_DIR}/${SLIM_ARCHIVE} is not a complete gzip archive" >&2; exit 1; }
  EXTRACT="$(mktemp -d "${CHECKPOINT_DIR}/.resnet_v1_50.XXXXXX")"
  tar -xzf "${CHECKPOINT_DIR}/${SLIM_ARCHIVE}" -C "${EXTRACT}"
  mkdir -p "${SLIM_DIR}"
  # resnet_v1_50.ckpt: one file (TF1 V1 format) or a V2 prefix (.index + .data-*)
  for f in "${EXTRACT}"/resnet_v1_50.ckpt*; do
    mv "$f" "${SLIM_DIR}/model.ckpt${f#"${EXTRACT}"/resnet_v1_50.ckpt}"
  done
  rmdir "${EXTRACT}"
  verify_slim || { echo "error: ${SLIM_URL} did not hold TF-slim's resnet_v1_50" >&2; exit 1; }
  rm -f "${CHECKPOINT_DIR}/${SLIM_ARCHIVE}"
fi

bash "${REPO_DIR}/object_detection/dataset_tools/download_and_preprocess_mscoco.sh" "${COCO_DIR}"
echo "Done: TFRecords in ${COCO_DIR}, backbone weights in ${CHECKPOINT_DIR}/${WEIGHTS_FILE} and"
echo "${SLIM_DIR}/model.ckpt"
