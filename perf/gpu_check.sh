#!/usr/bin/env bash
# The GPU measurements of issue 17 in one run of under ten minutes, on one CUDA GPU (written for
# an H100) with no internet. From the repository root:
#
#   bash perf/gpu_wheels.sh          # once, where pip reaches PyPI: .whl/ (see below)
#   bash perf/gpu_check.sh [OUT]     # OUT: results folder (default: $OUT, else gpu_check_out)
#
# 1. Environment (env.txt): the python3 that holds torch with CUDA; latentzoo from this checkout
#    (PYTHONPATH, nothing installed); the pure-Python packages a bare GPU image lacks
#    (jsonargparse, docstring-parser, typeshed-client, torch-fidelity) from .whl/ if present,
#    installed under /tmp. Without jsonargparse nothing of latentzoo imports: stop there.
# 2. The first 2 epochs of the dai-wipf cell VAE__fashion__seed0 (latentzoo benchmark dai-wipf
#    --prepare; the same config written here if that command fails) through `latentzoo fit
#    --config`, three times: today's step, channels_last + fused Adam (perf/speed_callbacks.Speed),
#    and that in bf16-mixed. Fashion-MNIST if found, else random images in its IDX files (same
#    sizes and cost; the losses then mean nothing). fit_<run>.log has one line per epoch (wall
#    time, steps, val/loss); fits.tsv the wall time and exit status of each run.
# 3. The speed table on CUDA (speed.log, speed.json, written after each round): VAE and WAE-GP;
#    eager today, channels_last + fused, compiled, CUDA graphs (compile reduce-overhead), and
#    bf16-mixed; images/s, GFLOP/s and fraction of the fp32 (and TF32, bf16) matmul peak.
# 4. The gpu-marked tests of the speed settings (tests.log).
#
# Each step has its own time limit, so the whole stays within 10 minutes; a step that fails or
# runs out of time is reported in summary.txt and the next one still runs. SMOKE=1 runs every
# step on the CPU in a few minutes, a few batches each, to check this script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-${OUT:-gpu_check_out}}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
start=$SECONDS
note() { echo "[gpu_check $((SECONDS - start)) s] $*" | tee -a "$RESULTS/summary.txt"; }

# -- 1. environment -------------------------------------------------------------------------------
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .whl/*.whl && export PYTHONPATH=/tmp/gpu_check_site
fi
export PYTHONPATH="$PWD:$PWD/perf:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
$PY - >"$RESULTS/env.txt" 2>&1 <<'EOF'
import importlib.util, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
for name in ("lightning", "torchmetrics", "jsonargparse", "docstring_parser", "typeshed_client",
             "torch_fidelity", "tensorboard", "triton"):
    print(name, "ok" if importlib.util.find_spec(name) else "MISSING")
EOF
cat "$RESULTS/env.txt"
CL=channels_last,optimizer=fused
VARIANTS=(--variant "eager:" --variant "cl+fused:$CL" --variant "compiled:$CL,compile=default"
          --variant "graphs:$CL,compile=reduce-overhead" --variant "bf16:$CL,precision=bf16-mixed")
ACCEL=gpu DEVICE=cuda SHORT=() STEPS=(--steps 100 --warmup 20 --rounds 2)
if [ "${SMOKE:-0}" = 1 ]; then
  ACCEL=cpu DEVICE=cpu SHORT=(--trainer.limit_train_batches 3 --trainer.limit_val_batches 2)
  STEPS=(--steps 2 --warmup 1 --rounds 1 --peak-size 256)
  VARIANTS=("${VARIANTS[@]:0:4}")  # no compiling on the CPU: eager and cl+fused
  note "SMOKE=1: every step on the CPU, a few batches each; no measurement"
elif ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  note "no CUDA device: nothing to measure"; exit 1
fi
if ! $PY -c "import latentzoo.cli" 2>>"$RESULTS/env.txt"; then
  note "latentzoo does not import (env.txt); bring .whl/ (bash perf/gpu_wheels.sh) and rerun"; exit 1
fi
note "environment ok"

# -- 2. the first epochs of one dai-wipf cell -----------------------------------------------------
DATA="$RESULTS/data"
note "data: $($PY perf/fake_fashion_mnist.py "$DATA")"
CELL="$RESULTS/dai-wipf/cells/VAE__fashion__seed0/config.yaml"
if ! $PY -m latentzoo benchmark dai-wipf --prepare --cells VAE__fashion__seed0 \
    --out "$RESULTS/dai-wipf" >"$RESULTS/prepare.log" 2>&1 || [ ! -f "$CELL" ]; then
  note "benchmark --prepare failed (prepare.log): the cell's config written here instead"
  mkdir -p "$(dirname "$CELL")"
  cat >"$CELL" <<'EOF'
# dai-wipf, cell VAE__fashion__seed0, as `latentzoo benchmark dai-wipf --prepare` writes it
model:
  class_path: latentzoo.zoo.vae.VAE
  init_args: {latent_dim: 64, width: 64, lr: 0.0005, likelihood: gaussian_learned}
data:
  class_path: latentzoo.datamodules.mnist.FashionMNIST
  init_args: {batch_size: 100, download: true}
trainer:
  max_epochs: 100
  enable_progress_bar: false
  logger:
    class_path: lightning.pytorch.loggers.TensorBoardLogger
    init_args: {save_dir: cells, name: VAE__fashion__seed0, version: 0}
seed_everything: 0
EOF
fi
FAST=(--trainer.callbacks+=speed_callbacks.Speed --trainer.callbacks.channels_last=true
      --trainer.callbacks.optimizer=fused)
printf "run\tseconds\texit\n" >"$RESULTS/fits.tsv"
for run in today fast fast_bf16; do
  extra=()
  case $run in
    fast) extra=("${FAST[@]}") ;;
    fast_bf16) extra=("${FAST[@]}" --trainer.precision bf16-mixed) ;;
  esac
  t0=$SECONDS
  timeout 80 $PY -m latentzoo fit --config "$CELL" --trainer.max_epochs 2 \
    --trainer.accelerator $ACCEL --trainer.devices 1 --data.data_dir "$DATA" \
    --data.download false --trainer.logger.init_args.save_dir "$RESULTS/fits" \
    --trainer.logger.init_args.name "$run" ${extra[@]+"${extra[@]}"} ${SHORT[@]+"${SHORT[@]}"} \
    --trainer.callbacks+=speed_callbacks.EpochTimes >"$RESULTS/fit_$run.log" 2>&1
  code=$?
  printf "%s\t%d\t%d\n" "$run" $((SECONDS - t0)) $code >>"$RESULTS/fits.tsv"
  note "fit $run: exit $code after $((SECONDS - t0)) s; $(grep -h '^epoch ' "$RESULTS/fit_$run.log" | tr '\n' ';')"
done

# -- 3. the speed table on CUDA ------------------------------------------------------------------
timeout 270 $PY perf/speed.py --device $DEVICE --models VAE WAEGP "${STEPS[@]}" "${VARIANTS[@]}" \
  --out "$RESULTS/speed.json" >"$RESULTS/speed.log" 2>&1
note "speed table: exit $? (speed.log; speed.json holds the rounds finished)"

# -- 4. the gpu tests of the speed settings -------------------------------------------------------
if $PY -c "import pytest" 2>/dev/null; then
  timeout 90 $PY -m pytest tests/zoo/test_speed.py -m "gpu and not slow" -q -p no:cacheprovider \
    >"$RESULTS/tests.log" 2>&1
  note "gpu tests: exit $? ($(tail -n 1 "$RESULTS/tests.log"))"
fi
note "done in $((SECONDS - start)) s; results in $RESULTS"
