#!/usr/bin/env bash
# Builds Horovod 0.28.1 (the last release) for CPU against the TensorFlow in the given venv, with
# Gloo (for `horovodrun --gloo`), and installs it there. The release does not build against
# TensorFlow 2.21 as shipped: horovod/tensorflow/xla_mpi_ops.cc (GPU-only body) fails to compile,
# so it is left out of the CMake sources. A built wheel is cached in $HOROVOD_WHEEL_DIR and reused.
#
# Usage: tools/build_horovod.sh [VENV_DIR]    (default .venv)
set -euo pipefail
VENV=${1:-.venv}
PY="$VENV/bin/python"
VERSION=0.28.1
WHEEL_DIR=${HOROVOD_WHEEL_DIR:-$HOME/.cache/object_detection/horovod-wheels}

if "$PY" -c "import horovod.tensorflow" 2>/dev/null; then
  echo "horovod already installed in $VENV"; exit 0
fi
mkdir -p "$WHEEL_DIR"
TFV=$("$PY" -c "import tensorflow as tf; print(tf.__version__)")
TAG="tf${TFV}"
WHEEL=$(ls "$WHEEL_DIR"/$TAG/horovod-$VERSION-*.whl 2>/dev/null | head -1 || true)
if [ -z "$WHEEL" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  "$PY" -m pip download --no-deps --no-binary :all: "horovod==$VERSION" -d "$WORK"
  tar xzf "$WORK/horovod-$VERSION.tar.gz" -C "$WORK"
  SRC="$WORK/horovod-$VERSION"
  sed -i '/xla_mpi_ops.cc/d' "$SRC/horovod/tensorflow/CMakeLists.txt"
  "$PY" -m pip install -q cmake packaging wheel setuptools psutil pyyaml cloudpickle
  export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
  export HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo
  export MAKEFLAGS="-j$(nproc)"
  mkdir -p "$WHEEL_DIR/$TAG"
  "$PY" -m pip wheel --no-build-isolation --no-deps -w "$WHEEL_DIR/$TAG" "$SRC"
  WHEEL=$(ls "$WHEEL_DIR"/$TAG/horovod-$VERSION-*.whl | head -1)
fi
"$PY" -m pip install --no-deps "$WHEEL"
"$PY" -m pip install -q psutil pyyaml cloudpickle packaging
"$PY" -c "import horovod.tensorflow as hvd; hvd.init(); print('horovod', hvd.__version__ if hasattr(hvd, '__version__') else '$VERSION', 'size', hvd.size())"
