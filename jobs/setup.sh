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

