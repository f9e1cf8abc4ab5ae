#!/usr/bin/env bash
# Downloads COCO 2017 (train/val images and instance annotations) and converts it into sharded
# TFRecords of OD API tf.Examples, as the SSD320 configs expect:
#   <output_dir>/coco_train.record-?????-of-00100, <output_dir>/coco_val.record-?????-of-00050
#
# Usage: bash object_detection/dataset_tools/download_and_preprocess_mscoco.sh OUTPUT_DIR
#   Environment: WITH_TESTDEV=1   also fetch test2017 + its image info (coco_testdev.record)
#                NUM_WORKERS=N    converter processes (default: all CPUs)
#                PYTHON=python3   the interpreter with this package installed
#                KEEP_RAW=0       delete the zips and raw images after a successful conversion
# Needs about 45 GB free (zips 19 GB, images 19 GB, records 19 GB; less with KEEP_RAW=0).
# Downloads resume (wget -c); each zip is checked against its published MD5 before unzipping.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTPUT_DIR" >&2
  exit 2
fi
OUTPUT_DIR="${1%/}"
RAW_DIR="${OUTPUT_DIR}/raw-data"
PYTHON="${PYTHON:-python3}"
NUM_WORKERS="${NUM_WORKERS:-$(nproc)}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "${RAW_DIR}"

for tool in wget unzip md5sum; do
  command -v "${tool}" >/dev/null || { echo "error: ${tool} is not installed" >&2; exit 1; }
done

# download_and_unzip URL MD5: fetch into RAW_DIR (resuming), verify, unzip (skipping files
# already there).
download_and_unzip() {
  local url="$1" md5="$2" file
  file="${RAW_DIR}/$(basename "${url}")"
  if [[ -f "${file}.verified" ]]; then
    echo "${file}: already downloaded and verified"
  else
    echo "Downloading ${url}"
    wget --no-verbose --show-progress --continue --output-document="${file}" "${url}"
    echo "${md5}  ${file}" | md5sum --check --quiet || {
      echo "error: ${file} does not have MD5 ${md5}; delete it and run again" >&2; exit 1; }
    touch "${file}.verified"
  fi
  echo "Unzipping ${file}"
  unzip -nq "${file}" -d "${RAW_DIR}"
}

BASE_URL="http://images.cocodataset.org"
download_and_unzip "${BASE_URL}/zips/train2017.zip" cced6f7f71b7629ddf16f17bbcfab6b2
download_and_unzip "${BASE_URL}/zips/val2017.zip" 442b8da7639aecaf257c1dceb8ba8c80
download_and_unzip "${BASE_URL}/annotations/annotations_trainval2017.zip" \
  f4bbac642086de4f52a3fdda2de5fa2c

TESTDEV_FLAGS=()
if [[ "${WITH_TESTDEV:-0}" == "1" ]]; then
  download_and_unzip "${BASE_URL}/zips/test2017.zip" 77ad2c53ac5d0aea611d422c0938fb35
  download_and_unzip "${BASE_URL}/annotations/image_info_test2017.zip" \
    85da7065e5e600ebfee8af1edb634eb5
  TESTDEV_FLAGS=(--test_image_dir="${RAW_DIR}/test2017"
                 --testdev_annotations_file="${RAW_DIR}/annotations/image_info_test-dev2017.json")
fi

cd "${REPO_DIR}"
"${PYTHON}" -m object_detection.dataset_tools.create_coco_tf_record \
  --train_image_dir="${RAW_DIR}/train2017" \
  --val_image_dir="${RAW_DIR}/val2017" \
  --train_annotations_file="${RAW_DIR}/annotations/instances_train2017.json" \
  --val_annotations_file="${RAW_DIR}/annotations/instances_val2017.json" \
  ${TESTDEV_FLAGS[@]+"${TESTDEV_FLAGS[@]}"} \
  --output_dir="${OUTPUT_DIR}" \
  --num_workers="${NUM_WORKERS}"

# Evaluation reads the ground truth from the json, so keep the annotations next to the records.
mkdir -p "${OUTPUT_DIR}/annotations"
cp -n "${RAW_DIR}"/annotations/instances_{train,val}2017.json "${OUTPUT_DIR}/annotations/"

if [[ "${KEEP_RAW:-1}" == "0" ]]; then
  rm -rf "${RAW_DIR}"
fi
echo "COCO 2017 TFRecords in ${OUTPUT_DIR}"
