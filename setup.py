"""Installs the `object_detection` package: SSD320 v1.2 on TensorFlow 2 and Keras 3."""
from setuptools import find_packages, setup

setup(
    name="object_detection",
    version="0.1.0",
    description="SSD320 v1.2 (ResNet50 v1 FPN, focal loss) object detection training on TensorFlow 2",
    python_requires=">=3.10",
    packages=find_packages(include=["object_detection", "object_detection.*"]),
    package_data={"object_detection": ["protos/*.proto", "data/*.pbtxt"]},
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        # The generated *_pb2.py modules were made by protoc 35 (grpcio-tools 1.85.1), and the
        # protobuf runtime must be at least as new as the generator.
        "protobuf>=7.35,<8",
        "numpy>=1.26,<3",
        # ml_dtypes 0.7.0 takes 0.7-1.1 s to import (its extension module; 0.6.0: 9 ms), and
        # every process that imports TensorFlow pays it before its first step. onnx 1.23
        # needs >= 0.5.4.
        "ml_dtypes>=0.5.4,<0.7",
        "pillow>=10",
        "pycocotools>=2.0.8",
        # --eval_backend faster_coco_eval (C++ COCOeval). Its 12 numbers were checked equal to
        # pycocotools' with 1.8.0 (tests/evaluation): a new minor version only after that check.
        "faster-coco-eval>=1.8.0,<1.9",
        "absl-py>=2.1",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "tensorboard>=2.20",  # tf.summary needs it; TF 2.21 no longer depends on it
        # The TFLite runtime (tf.lite.Interpreter is deprecated in TF 2.21); its regular NMS
        # was checked to drop a class with more than one thread (tflite_exporter works round).
        "ai-edge-litert==2.3.0",
    ],
    extras_require={
        # pytest-xdist: `make test` runs the suite in 2 processes (most tests are tracing and
        # subprocess start-up, which one core each does best).
        "test": ["pytest>=8", "pytest-xdist>=3.8,<4", "grpcio-tools==1.85.1"],
        # ONNX export (object_detection.export.export_onnx) and its runner. Checked together
        # beside tensorflow 2.21 / protobuf 7.36 / numpy 2.4 (pip changes none of them); onnx
        # is pinned too because tf2onnx 1.17 only asks for onnx>=1.14.
        "onnx": ["tf2onnx==1.17.0", "onnxruntime==1.32.0", "onnx==1.23.2"],
    },
)
