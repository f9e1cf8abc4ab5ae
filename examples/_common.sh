#!/usr/bin/env bash
# Shared helpers of the examples/SSD320_*.sh scripts (sourced, not run). Every script:
#   - takes the seed's positional arguments: $1 = checkpoint/model dir (CKPT_DIR),
#     $2 = directory of the pipeline configs (default: configs/ of this repository),
#     the rest = extra flags passed through to the Python entry point;
#   - prints its usage and exits 0 with -h/--help;
#   - with DRY_RUN=1 prints the command it would run and exits 0.
# Environment: PYTHON (default: .venv/bin/python of the repository if present, else python3),
# LAUNCHER for multi-GPU runs: horovodrun | mpirun | mirrored (default: horovodrun if installed,
# else mpirun if installed, else one process with tf.distribute MirroredStrategy).

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_DIR/.venv/bin/python" ]]; then
    PYTHON="$REPO_DIR/.venv/bin/python"
  elif command -v python3 >/dev/null 2>&1; then
    PYTHON=python3
  else
    PYTHON=python
  fi
fi
export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

# wants_help ARGS...: true when the first argument asks for help.
wants_help() {
  [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]
}

# print_usage TEXT: the calling script's usage, with the common notes.
print_usage() {
  cat <<EOF
$1

Environment:
  DRY_RUN=1   print the command instead of running it
  PYTHON      Python interpreter (now: $PYTHON)
  LAUNCHER    multi-GPU launcher: horovodrun | mpirun | mirrored (default: the first available)
EOF
}

# show_or_run CMD...: prints the command (quoted) and runs it unless DRY_RUN=1.
show_or_run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    return 0
  fi
  "$@"
}

# launcher_prefix GPUS: sets the LAUNCH array: the prefix that starts GPUS workers, and
# STRATEGY_FLAGS for the one-process fallback.
launcher_prefix() {
  local gpus=$1 choice=${LAUNCHER:-}
  LAUNCH=()
  STRATEGY_FLAGS=()
  if (( gpus <= 1 )); then
    return 0
  fi
  if [[ -z "$choice" ]]; then
    if command -v horovodrun >/dev/null 2>&1; then choice=horovodrun
    elif command -v mpirun >/dev/null 2>&1; then choice=mpirun
    else choice=mirrored
    fi
  fi
  case "$choice" in
    horovodrun)
      LAUNCH=(horovodrun -np "$gpus" -H "localhost:$gpus") ;;
    mpirun)  # as the seed's scripts
      LAUNCH=(mpirun --allow-run-as-root -np "$gpus" -H "localhost:$gpus" -bind-to none
              -map-by slot -x NCCL_DEBUG=INFO -x LD_LIBRARY_PATH -x PATH -x PYTHONPATH
              -mca pml ob1 -mca btl ^openib) ;;
    mirrored)  # no Horovod: one process drives every local GPU
      echo "note: neither horovodrun nor mpirun found; using tf.distribute MirroredStrategy" \
           "over the local GPUs in one process" >&2
      STRATEGY_FLAGS=(--strategy=mirrored) ;;
    *)
      echo "error: LAUNCHER=$choice: expected horovodrun, mpirun or mirrored" >&2
      return 2 ;;
  esac
}

# precision_flags PRECISION: sets PRECISION_FLAGS for FP16 (--amp) or FP32.
precision_flags() {
  case "$1" in
    FP16) PRECISION_FLAGS=(--amp) ;;  # mixed_float16 (+ loss scaling) or mixed_bfloat16
    FP32)
      PRECISION_FLAGS=()
      # The seed's FP32 scripts turned tensor-op math off; TF 2's switch for TF32 is this one.
      export NVIDIA_TF32_OVERRIDE=${NVIDIA_TF32_OVERRIDE:-0} ;;
    *) echo "error: precision $1: expected FP16 or FP32" >&2; return 2 ;;
  esac
}

# ssd320_train GPUS PRECISION MODE [CKPT_DIR] [CONFIG_DIR] [FLAGS...]
# The body of SSD320_{FP16,FP32}_{1,4,8}GPU.sh (MODE=train) and their _BENCHMARK.sh variants
# (MODE=benchmark: ssd320_bench.config, no evaluation, img/s of the last BENCHMARK_LAST_K steps).
ssd320_train() {
  local gpus=$1 precision=$2 mode=$3
  shift 3
  local name="SSD320_${precision}_${gpus}GPU" config
  if [[ "$mode" == benchmark ]]; then
    config=ssd320_bench.config
  else
    config=ssd320_full_${gpus}gpus.config
  fi
  if wants_help "$@"; then
    local what="Trains SSD320 v1.2" script="$name.sh" notes=""
    if [[ "$mode" == benchmark ]]; then
      what="Benchmarks SSD320 v1.2 training (prints img/s)"
      script="${name}_BENCHMARK.sh"
      notes="
  BENCHMARK_LAST_K=300  steps averaged for img/s; RANDOM_DATA=1: synthetic batches"
    fi
    print_usage "$what in $precision on $gpus GPU(s) with $config.

Usage: examples/$script [CKPT_DIR] [CONFIG_DIR] [model_main flags...]
  CKPT_DIR    model directory: checkpoints, train_log, raport.json
              (default /results/$name)
  CONFIG_DIR  directory holding $config (default $REPO_DIR/configs)
  flags       passed to object_detection.model_main, e.g. --num_train_steps=1000$notes
Example: examples/$script /results/$name /workdir/ssd320/configs"
    exit 0
  fi
  local ckpt_dir=${1:-/results/$name}
  local config_dir=${2:-$REPO_DIR/configs}
  local extra=("${@:3}")
  precision_flags "$precision" || exit 2
  launcher_prefix "$gpus" || exit 2
  local cmd=("${LAUNCH[@]}" "$PYTHON" -u -m object_detection.model_main
             "--pipeline_config_path=$config_dir/$config" "--model_dir=$ckpt_dir")
  if [[ "$mode" == benchmark ]]; then
    cmd+=("--raport_file=$ckpt_dir/benchmark_raport.json" --eval_count=0
          "--benchmark_last_k=${BENCHMARK_LAST_K:-300}")
    [[ "${RANDOM_DATA:-0}" == "1" ]] && cmd+=(--random_data)
  else
    cmd+=("--raport_file=$ckpt_dir/raport.json")
  fi
  cmd+=("${PRECISION_FLAGS[@]}" "${STRATEGY_FLAGS[@]}" "${extra[@]}")
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    show_or_run "${cmd[@]}"
    exit 0
  fi
  mkdir -p "$ckpt_dir"
  set -o pipefail
  if [[ "$mode" == train ]]; then
    time show_or_run "${cmd[@]}" 2>&1 | tee "$ckpt_dir/train_log"
    exit "${PIPESTATUS[0]}"
  fi
  show_or_run "${cmd[@]}" 2>&1 | tee "$ckpt_dir/train_log" || exit $?
  local perf
  perf=$("$PYTHON" - "$ckpt_dir/benchmark_raport.json" <<'PY'
import sys
from object_detection.utils.dllogger import read_report
runs = [r["data"] for r in read_report(sys.argv[1])
        if r["step"] == [] and "train_throughput" in r["data"]]
print(f"{runs[-1]['train_throughput']:.2f} img/s" if runs else "n/a (no summary record)")
PY
)
  local words="full precision"
  [[ "$precision" == FP16 ]] && words="mixed precision"
  echo "$gpus GPUs $words training performance: $perf" | tee -a "$ckpt_dir/train_log"
}

# ssd320_evaluate [CKPT_DIR] [CONFIG_DIR] [FLAGS...]: the body of SSD320_evaluate.sh.
ssd320_evaluate() {
  if wants_help "$@"; then
    print_usage "Evaluates (COCO mAP) the newest checkpoint of CKPT_DIR once.

Usage: examples/SSD320_evaluate.sh CKPT_DIR [CONFIG_DIR] [model_main flags...]
  CKPT_DIR    directory with the checkpoints of a training run (eval/ and best/ go there)
  CONFIG_DIR  directory holding ssd320_full_1gpus.config (default $REPO_DIR/configs)
  flags       passed to object_detection.model_main, e.g. --sample_1_of_n_eval_examples=10
Example: examples/SSD320_evaluate.sh /results/SSD320_FP16_8GPU"
    exit 0
  fi
  if [[ -z "${1:-}" ]]; then
    echo "error: CKPT_DIR is required (see --help)" >&2
    exit 2
  fi
  local ckpt_dir=$1
  local config_dir=${2:-$REPO_DIR/configs}
  show_or_run "$PYTHON" -u -m object_detection.model_main \
    "--pipeline_config_path=$config_dir/ssd320_full_1gpus.config" \
    "--checkpoint_dir=$ckpt_dir" "--model_dir=$ckpt_dir" --run_once "${@:3}"
}

# ssd320_inference PRECISION [CKPT_DIR] [CONFIG_DIR] [FLAGS...]: SSD320_FP{16,32}_inference.sh.
# The seed's form `SSD320_FP16_inference.sh CONFIG_DIR [flags]` (a directory holding
# ssd320_full_1gpus.config first) is accepted too.
ssd320_inference() {
  local precision=$1
  shift
  if wants_help "$@"; then
    print_usage "Inference benchmark of SSD320 v1.2 in $precision (examples/SSD320_inference.py).

Usage: examples/SSD320_${precision}_inference.sh [CKPT_DIR] [CONFIG_DIR] [flags...]
       examples/SSD320_${precision}_inference.sh CONFIG_DIR [flags...]   (the seed's form)
  CKPT_DIR    checkpoint directory; empty or 'random': random weights (same speed)
  CONFIG_DIR  directory holding ssd320_full_1gpus.config (default $REPO_DIR/configs)
  flags       of examples/SSD320_inference.py, e.g. --batch_size=8 --warmup_iters=100
              --benchmark_iters=300 --raport_file=x.json
Example: examples/SSD320_${precision}_inference.sh /results/SSD320_FP16_1GPU configs --batch_size=8"
    exit 0
  fi
  local ckpt_dir="" config_dir="$REPO_DIR/configs" extra
  if [[ -n "${1:-}" && -f "${1}/ssd320_full_1gpus.config" ]]; then
    config_dir=$1  # the seed's form: config dir first
    extra=("${@:2}")
  else
    ckpt_dir=${1:-}
    [[ "$ckpt_dir" == random ]] && ckpt_dir=""
    config_dir=${2:-$config_dir}
    extra=("${@:3}")
  fi
  precision_flags "$precision" || exit 2
  local cmd=("$PYTHON" "$REPO_DIR/examples/SSD320_inference.py"
             "--pipeline_config_path=$config_dir/ssd320_full_1gpus.config")
  [[ -n "$ckpt_dir" ]] && cmd+=("--checkpoint_dir=$ckpt_dir")
  cmd+=("${PRECISION_FLAGS[@]}" "${extra[@]}")
  show_or_run "${cmd[@]}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run rather than sourced
  echo "examples/_common.sh: helpers sourced by the examples/SSD320_*.sh scripts; nothing to run."
  exit 0
fi
