# Sourced by every job script after it has changed to the repository root: the software
# environment (edit it here, once, for your cluster), and the checks that need no GPU.
set -eo pipefail

# Modules to load: none by default, since pip's torch wheels bring their own CUDA libraries. If
# your cluster needs one (a Python, a driver), set MODULES here or per submission:
# MODULES="python/3.11" sbatch ..., qsub -v MODULES="python/3.11" ...
MODULES=${MODULES:-}
if [ -n "$MODULES" ] && command -v module >/dev/null; then
    module load $MODULES  # a list of names, split on purpose
fi

# The Python environment: $VENV if set, else .venv in the repository root if there is one.
if [ -n "${VENV:-}" ]; then
    source "$VENV/bin/activate"
elif [ -f .venv/bin/activate ]; then
    source .venv/bin/activate
fi

# The interpreter itself, not a wrapper such as a pyenv shim that runs it as a child, so that the
# SIGTERM the job passes on reaches python, which saves a checkpoint.
if [ -z "${PYTHON:-}" ]; then
    command -v python >/dev/null || {
        echo "error: no python on PATH: create the environment in the repository root" \
             "(python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt)" \
             "or set VENV=PATH (a venv) or PYTHON=PATH (an interpreter)" >&2
        exit 2
    }
    PYTHON=$(python -c 'import sys; print(sys.executable)')
fi
export PYTHONUNBUFFERED=1   # job logs show progress as it happens

# Compute nodes are often offline: the dataset must be in data/ (or named by its variable,
# e.g. $MNIST_DATA, $FASHION_MNIST_DATA) before the job.
data_prepared() {  # data/ as `auto_encoder.py --prepare-data` leaves it: the pickle or IDX files
    local cache=data/$1 raw file
    case $1 in
        mnist) cache=data raw=MNIST ;;
        fashion-mnist) raw=FashionMNIST ;;
        *) raw=$(echo "$1" | tr a-z A-Z) ;;
    esac
    for file in "$cache"/mnist.pkl.gz "$cache"/train-images-idx3-ubyte* "$cache/$raw"/raw/train-images-idx3-ubyte*; do
        if [ -e "$file" ] && { [ "$1" = mnist ] || [ "${file##*/}" != mnist.pkl.gz ]; }; then return 0; fi
    done
    return 1
}

# require_data DATASET: stop at once if the job would have to download it.
require_data() {
    local variable
    variable=$(echo "$1" | tr a-z- A-Z_)_DATA
    if [ -z "${!variable:-}" ] && ! data_prepared "$1"; then
        echo "error: $1 is not in $PWD/data/ and compute nodes may be offline: run" \
             "'python auto_encoder.py --prepare-data$([ "$1" = mnist ] || echo " --dataset $1")' on a" \
             "login node first, or set $variable=PATH" >&2
        exit 2
    fi
}

# output_dir DATASET FOLDER: FOLDER for MNIST, FOLDER/DATASET for the others, so runs never mix.
output_dir() {
    if [ "$1" = mnist ]; then echo "$2"; else echo "$2/$1"; fi
}

# sweep_task INDEX: "SIZE DATASET" from line INDEX+1 of jobs/sizes.txt (array tasks count from 0);
# a line holds a code size and, optionally, a dataset (default mnist).
sweep_task() {
    local line count
    line=$(sed -n "$(($1 + 1))p" jobs/sizes.txt)
    if [ -z "$line" ]; then
        count=$(wc -l < jobs/sizes.txt)
        echo "error: array index $1 has no code size: jobs/sizes.txt lists $count," \
             "so submit the array as 0-$((count - 1))" >&2
        exit 2
    fi
    set -- $line  # split on purpose: SIZE [DATASET]
    echo "$1 ${2:-mnist}"
}

# At the time limit a Slurm job requeues itself to continue (see train); at most this many times.
MAX_REQUEUES=${MAX_REQUEUES:-10}

# train CHECKPOINTS ARGS...: run `auto_encoder.py ARGS` and wait for it. CHECKPOINTS names the
# model(s) whose checkpoints show its progress: a code size, or '*' for all in its output folder.
# Not exec: after the trainer saved a checkpoint on SIGTERM (exit 143), this shell requeues the
# Slurm job (requeue_if_progress).
train() {
    local checkpoints=$1 before="" status=0
    shift
    [ -z "${SLURM_JOB_ID:-}" ] || before=$(checkpoint_progress "$checkpoints" "$@")
    "$PYTHON" auto_encoder.py "$@" &
    TRAINER=$!
    # Slurm's --signal=B:TERM reaches this shell alone: pass it on at once.
    trap 'kill -TERM "$TRAINER" 2>/dev/null || true' TERM
    wait "$TRAINER" || status=$?
    while kill -0 "$TRAINER" 2>/dev/null; do  # the trap ended `wait` early: wait for the trainer
        status=0
        wait "$TRAINER" || status=$?
    done
    trap - TERM
    if [ "$status" = 143 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        requeue_if_progress "$before" "$checkpoints" "$@"
    fi
    return "$status"
}

# checkpoint_progress CHECKPOINTS ARGS...: "MODEL EPOCH STEP" for each checkpoint of CHECKPOINTS
# in the trainer's --output-dir (the last in ARGS, as for argparse): the epochs finished and the
# steps into the next; "unreadable" if python cannot tell (its error goes to the job log). A
# finished model has no checkpoint: it drops out, which never counts as going back.
checkpoint_progress() {
    local checkpoints=$1 dir=""
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --output-dir) dir=${2:-} ;;
            --output-dir=*) dir=${1#*=} ;;
        esac
        shift
    done
    "$PYTHON" - "$dir" "$checkpoints" <<'PY' || echo unreadable
import glob, os, sys, torch
for path in sorted(glob.glob(os.path.join(sys.argv[1], f"auto_encoder_{sys.argv[2]}_checkpoint.pt"))):
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    model = os.path.basename(path)[len("auto_encoder_"):-len("_checkpoint.pt")]
    print(model, state["epoch"], (state.get("partial") or {}).get("step", 0))
PY
}

# advanced BEFORE AFTER: whether, from BEFORE to AFTER (checkpoint_progress lines), some model's
# epoch and step went up and none went down (as they do when a run starts over).
advanced() {
    awk -v before="$1" -v after="$2" 'BEGIN {
        n = split(before, lines, "\n")
        for (i = 1; i <= n; i++) { split(lines[i], f, " "); was[f[1]] = f[2] * 1e9 + f[3] }
        n = split(after, lines, "\n")
        for (i = 1; i <= n; i++) {
            split(lines[i], f, " "); now = f[2] * 1e9 + f[3]
            if (now > was[f[1]]) up = 1
            if (now < was[f[1]]) down = 1
        }
        exit !(up && !down)
    }'
}

# requeue_if_progress BEFORE CHECKPOINTS ARGS...: the trainer saved a checkpoint on SIGTERM; requeue
# this Slurm job to continue from it, unless the job was cancelled or Slurm requeues it anyway
# (it is not RUNNING), its checkpoints did not advance from BEFORE (the next run would not get
# further either), or it was requeued MAX_REQUEUES times. One line in the job log says which.
requeue_if_progress() {
    local before=$1 after state restarts=${SLURM_RESTART_COUNT:-0} why=""
    shift
    state=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | grep -o '\bJobState=[A-Z_]*' | cut -d= -f2 || true)
    if [ "$state" != RUNNING ]; then
        echo "requeue: not requeued: the job is ${state:-unknown to scontrol}, not RUNNING" \
             "(cancelled, or Slurm requeues it itself)" >&2
        return 0
    fi
    after=$(checkpoint_progress "$@")
    if [[ "$before$after" == *unreadable* ]]; then
        why="the checkpoints' epoch and step could not be read"
    elif ! advanced "$before" "$after"; then
        why="no progress in this run (checkpoints at its start: ${before:-none}; now: ${after:-none})"
        why=${why//$'\n'/, }
    elif [ "$restarts" -ge "$MAX_REQUEUES" ]; then
        why="requeued $restarts times already (MAX_REQUEUES=$MAX_REQUEUES)"
    fi
    if [ -n "$why" ]; then
        echo "requeue: not requeued: $why; resubmit the same command to continue" >&2
        return 0
    fi
    # Said first: Slurm ends this shell once the job is requeued.
    echo "requeue: checkpoints at ${after//$'\n'/, }: requeued to continue" \
         "(restart $((restarts + 1)) of at most $MAX_REQUEUES)" >&2
    scontrol requeue "$SLURM_JOB_ID" ||
        echo "requeue: scontrol requeue failed; resubmit the same command to continue" >&2
}
