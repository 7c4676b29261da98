#!/usr/bin/env bash
# On one NVIDIA GPU (H100 or H200), within 8 minutes: the CUDA tests, the default training of
# both models (test MSE within 5 % of the CPU reference run in docs/results), 500 epochs of the
# original recipe for the 3D model in fp32 (test MSE within 10 % of 2016's 0.0332), and the
# training step's ms per epoch, eager and compiled, against 25 ms. One JSON file, one summary line.
#
#   bash benchmarks/gpu_check.sh [LOG]
#   DRY_RUN=1 bash benchmarks/gpu_check.sh      # print the commands only (needs no GPU)
#
# Step 1 runs pytest: install the test tools first (pip install -r requirements-dev.txt).
# MNIST comes from MNIST_DATA or the data/ cache (python auto_encoder.py --prepare-data). The log
# defaults to output/benchmarks/gpu_check-<GPU>.log (git ignores output/), the JSON to
# gpu_check-<GPU>.json beside it; copy them to benchmarks/results/ to keep them with the project.
# Exits non-zero if any step fails, runs out of time or misses its target.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-python}

if [ -z "${DRY_RUN:-}" ] && ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a machine" \
         "with an NVIDIA GPU, or set DRY_RUN=1 to see the commands" >&2
    exit 1
fi
if [ -z "${MNIST_DATA:-}" ] && [ ! -e data/mnist.pkl.gz ] && [ ! -e data/MNIST/raw ]; then
    echo "gpu_check: warning: MNIST_DATA is not set and data/ holds no MNIST; the scripts will" \
         "try to download it" >&2
fi

if [ -n "${DRY_RUN:-}" ]; then
    NAME="dry-run" GPU="(dry run)" LOG=${1:-/dev/null}
else
    GPU=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name())')
    NAME=$(echo "$GPU" | tr -cs 'A-Za-z0-9' '-' | sed 's/-$//')
    LOG=${1:-output/benchmarks/gpu_check-$NAME.log}
fi
JSON=output/benchmarks/gpu_check-$NAME.json
OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$(dirname "$LOG")"
exec > >(tee -a "$LOG") 2>&1
echo "gpu_check on $GPU, $(date '+%Y-%m-%d %H:%M:%S'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

FAILED=0
# step SECONDS COMMAND...: run with a time limit, print its exit status and wall time.
step() {
    local limit=$1; shift
    echo; echo "=== $* (limit ${limit} s)"
    [ -n "${DRY_RUN:-}" ] && return 0
    local start=$SECONDS rc
    timeout --signal=INT --kill-after=15 "$limit" "$@"
    rc=$?
    echo "=== exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || FAILED=1
    return "$rc"
}

# 1. The CUDA-marked tests (60 s).
step 60 "$PYTHON" -m pytest -q -m cuda tests/
# 2. The default command, both models (120 s), as a user runs it on a GPU node.
step 120 "$PYTHON" auto_encoder.py --device cuda --output-dir "$OUT/default"
# 3. The 2016 recipe, 500 epochs, float32 throughout as in 2016 (150 s).
step 150 "$PYTHON" auto_encoder.py --device cuda --recipe original --model 3D --precision fp32 \
    --output-dir "$OUT/original"
# 4. Step timings, and every verdict into one JSON file (120 s; compiling takes most of it).
step 120 "$PYTHON" benchmarks/gpu_check.py --device cuda --default-dir "$OUT/default" \
    --original-dir "$OUT/original" --json "$JSON"

if [ -n "${DRY_RUN:-}" ]; then
    RESULT="dry run, nothing was run"
elif [ $FAILED -eq 0 ]; then
    RESULT="all steps passed"
else
    RESULT="SOME STEPS FAILED"
fi
echo; echo "gpu_check: $RESULT in $SECONDS s; log in $LOG, results in $JSON"
exit $FAILED
