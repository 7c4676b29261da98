# Sourced by every job script after it has changed to the repository root: the software
# environment (edit it here, once, for your cluster), and the checks that need no GPU.
set -eo pipefail

# Modules to load: `cuda` as on the original cluster. Set MODULES="" to load none, or
# another list (qsub -v MODULES="cuda/12.4 python", sbatch --export=ALL,MODULES=...).
MODULES=${MODULES-cuda}
if [ -n "$MODULES" ] && command -v module >/dev/null; then
    module load $MODULES  # a list of names, split on purpose
fi

# The Python environment: $VENV if set, else .venv in the repository root if there is one.
if [ -n "${VENV:-}" ]; then
    source "$VENV/bin/activate"
elif [ -f .venv/bin/activate ]; then
    source .venv/bin/activate
fi

# The interpreter itself, not a wrapper such as a pyenv shim that runs it as a child: the job
# script execs it, so that the scheduler's SIGTERM reaches python, which saves a checkpoint.
PYTHON=${PYTHON:-$(python -c 'import sys; print(sys.executable)')}
export PYTHONUNBUFFERED=1                           # job logs show progress as it happens
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}     # and progress bars only every 30 s

# Compute nodes are often offline: MNIST must be in data/ (or $MNIST_DATA) before the job.
mnist_prepared() {  # data/ as `auto_encoder.py --prepare-data` leaves it: the pickle or IDX files
    local file
    for file in data/mnist.pkl.gz data/train-images-idx3-ubyte* data/MNIST/raw/train-images-idx3-ubyte*; do
        if [ -e "$file" ]; then return 0; fi
    done
    return 1
}
if [ -z "${MNIST_DATA:-}" ] && ! mnist_prepared; then
    echo "error: MNIST is not in $PWD/data/ and compute nodes may be offline: run" \
         "'python auto_encoder.py --prepare-data' on a login node first, or set MNIST_DATA=PATH" >&2
    exit 2
fi

# code_size INDEX: the code size on line INDEX+1 of jobs/sizes.txt (array tasks count from 0).
code_size() {
    local size count
    size=$(sed -n "$(($1 + 1))p" jobs/sizes.txt)
    if [ -z "$size" ]; then
        count=$(wc -l < jobs/sizes.txt)
        echo "error: array index $1 has no code size: jobs/sizes.txt lists $count," \
             "so submit the array as 0-$((count - 1))" >&2
        exit 2
    fi
    echo "$size"
}
