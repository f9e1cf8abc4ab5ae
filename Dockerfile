# SSD320 v1.2 on TensorFlow 2.21 / Keras 3 (the successor of NVIDIA's "SSD320 v1.2 for
# TensorFlow" container). GPU image; everything also runs on CPU.
#
#   docker build -t ssd320 .
#   docker run --gpus all --rm -it --ipc=host \
#       -v /data/coco2017_tfrecords:/data/coco2017_tfrecords -v /checkpoints:/checkpoints \
#       -v /results:/results ssd320
#   # inside: bash download_all.sh                 (COCO TFRecords + ResNet50 weights, once)
#   #         bash examples/SSD320_FP16_1GPU.sh /results/SSD320_FP16_1GPU configs
#
# Multi-GPU scripts launch with horovodrun/mpirun when Horovod is installed, and otherwise use
# tf.distribute MirroredStrategy in one process (examples/_common.sh); Horovod is not part of
# this image (tools/build_horovod.sh builds it for CPU).
FROM tensorflow/tensorflow:2.21.0-gpu

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# wget and unzip: download_all.sh (COCO 2017 and the ResNet50 backbone weights).
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget unzip \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workdir/ssd320

# Dependencies first (a layer that survives source edits), then the package itself, editable.
COPY setup.py ./
RUN mkdir -p object_detection && touch object_detection/__init__.py \
    && python3 -m pip install -e . \
    && python3 -m pip install "pytest>=8"
COPY . .
RUN python3 -m pip install --no-deps -e . \
    && python3 -c "import object_detection.model_main, tensorflow as tf; print('TensorFlow', tf.__version__)"

CMD ["bash"]
