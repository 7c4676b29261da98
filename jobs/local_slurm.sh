#!/usr/bin/env bash
# Runs the repository's Slurm job scripts, unmodified, on a real one-node Slurm cluster that
# it brings up on localhost in a private temporary folder, and checks every result against the
# same training run directly, without Slurm. Needs root and Debian's slurm-wlm and munge.
#
#   bash jobs/local_slurm.sh            # prints one PASS/FAIL line per case and a summary
#
# Cases (tiny settings, on the CPU in fp32, where a resumed run is bit-identical):
#   single     jobs/auto_encoder.slurm trains 3D
#   requeue    that job, finished, requeued with `scontrol requeue`: only re-evaluates
#   sweep      jobs/sweep.slurm as a two-task array (the first two sizes of jobs/sizes.txt)
#   time limit jobs/auto_encoder.slurm with --time=2 gets SIGTERM before its limit, saves a
#              checkpoint and requeues itself, as often as it takes, and ends COMPLETED by itself
#   preemption jobs/auto_encoder.slurm requeued by `scontrol requeue` while it trains (as Slurm's
#              preemption does) continues to the end
#              Both: the log says each requeued run resumed at epoch N >= 2 and no epoch was trained
#              twice, and the results are bit-identical to the same training run without Slurm.
#   logs       every job log is plain text (no CR or ESC from progress bars) with lines such as
#              '3D epoch 2/3: training loss 0.0712, validation loss 0.0698, 4.1 s'
# Exit status: 0 if all cases pass, 1 if one fails, 77 where it cannot run here (no Slurm or
# munge, not root, no MNIST), so that a test can skip.
#
# Environment: MNIST_DATA (else the data/ cache); VENV or PYTHON, as for the jobs;
# KEEP_LOCAL_SLURM=1 keeps the temporary folder (configuration, daemon and job logs, outputs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SKIP=77
PATH=$PATH:/usr/sbin:/sbin          # slurmctld, slurmd and munged live in sbin
export MODULES=""                   # no modules here, whatever the caller's environment says

# Tiny runs: 2 epochs of 2 steps. The data is a subset of MNIST (see make_subset), so that
# validation and test take a moment, not most of each run.
BATCH=250
TINY_LIMIT=500
TINY_ARGS="--epochs 2 --limit $TINY_LIMIT --batch-size $BATCH --precision fp32 --device cpu"
SUBSET="train=2000 valid=200 test=200"
# The time-limit job: --time=2 with SIGTERM 45 s before the limit. slurmctld checks time limits
# every 30 s and sends the signal at the first check that is less than 30 s before the signal
# time, so SIGTERM comes 45 to 75 s after each run starts: late enough for the first run to have
# finished an epoch, and early enough to leave 45 s to save and requeue. Its training is sized
# (see long_epochs) to last past 75 s, so the first run is stopped; later runs may be too.
TIME_LIMIT=00:02:00
TERM_LEAD=45
LONG_LIMIT=2000                     # training images of the time-limit and preemption runs
LONG_TARGET_S=75                    # their training time at the fastest speed measured here
JOB_TIMEOUT_S=1200                  # give up on a job after this long (a loaded CPU is slow)

WORK=""                             # the temporary folder, once made
declare -a RESULTS=() FAILED=()

note() { echo "local_slurm: $*" >&2; }                # progress, on stderr
skip() { echo "local_slurm.sh: cannot run here: $*" >&2; exit "$SKIP"; }

# py CHECK ARGS...: one of the checks in local_slurm_checks.py.
py() { "$PYTHON" "$ROOT/jobs/local_slurm_checks.py" "$@"; }

# ---------------------------------------------------------------------------------------------
# Prerequisites and the data.
check_prerequisites() {
    local tool
    for tool in slurmctld slurmd sbatch scontrol squeue scancel sinfo munged mungekey; do
        command -v "$tool" >/dev/null ||
            skip "$tool is not installed: apt-get install slurm-wlm munge"
    done
    [ "$(id -u)" = 0 ] || skip "slurmd must run as root to start jobs"
}

# The interpreter the jobs will use, found as jobs/setup.sh finds it ($PYTHON, $VENV, .venv).
find_python() {
    PYTHON=$(MNIST_DATA=unused bash -c 'source jobs/setup.sh >/dev/null && echo "$PYTHON"') ||
        { echo "local_slurm.sh: jobs/setup.sh found no Python (set VENV or PYTHON)" >&2; exit 1; }
    "$PYTHON" -c 'import torch' 2>/dev/null ||
        { echo "local_slurm.sh: $PYTHON cannot import torch (set VENV or PYTHON)" >&2; exit 1; }
}

# A small MNIST from $MNIST_DATA or the data/ cache: the jobs then spend their time training.
make_subset() {
    local source=${MNIST_DATA:-}
    if [ -z "$source" ]; then
        if [ -f data/mnist.pkl.gz ]; then source=data/mnist.pkl.gz
        elif [ -d data ]; then source=data
        else skip "no MNIST: set MNIST_DATA=PATH or run 'python auto_encoder.py --prepare-data'"
        fi
    fi
    [ -e "$source" ] || skip "MNIST_DATA=$source does not exist"
    # shellcheck disable=SC2086  # SUBSET is a list of name=count words
    py subset "$source" "$WORK/mnist.pkl.gz" $SUBSET
    export MNIST_DATA=$WORK/mnist.pkl.gz
}

# ---------------------------------------------------------------------------------------------
# The cluster (write_config, start_cluster, cleanup).
# shellcheck source=jobs/local_slurm_cluster.sh
source "$ROOT/jobs/local_slurm_cluster.sh"

# ---------------------------------------------------------------------------------------------
# Jobs.

# submit SCRIPT [SBATCH-OPTIONS...]: submit a job script of the repository from its root, as a
# user would; prints the job id. The log goes to the script's own --output pattern, but in
# $WORK/logs/ rather than the checkout's jobs/logs/ (job ids restart at 1 on each test cluster).
submit() {
    local script=$1 pattern
    shift
    pattern=$(sed -n 's/^#SBATCH --output=//p' "$script")
    sbatch --parsable --gres=none --output="$WORK/logs/${pattern##*/}" "$@" "$script"
}

# job_field JOB FIELD: one field of `scontrol show job` (the first, for an array).
job_field() {
    { scontrol show job -o "$1" 2>/dev/null || true; } |
        grep -o "\b$2=[^ ]*" | head -n 1 | cut -d= -f2- || true
}

# wait_job JOB: wait until the job (every task of an array) has ended; fails on timeout.
FINAL_STATES="COMPLETED|FAILED|TIMEOUT|CANCELLED|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED"
wait_job() {
    local job=$1 deadline=$((SECONDS + JOB_TIMEOUT_S)) states
    while [ "$SECONDS" -lt "$deadline" ]; do
        states=$(scontrol show job -o "$job" 2>/dev/null | grep -o '\bJobState=[A-Z_]*' || true)
        if [ -n "$states" ] && ! grep -qvE "=($FINAL_STATES)\$" <<< "$states"; then
            return 0
        fi
        sleep 1
    done
    scancel "$job" 2>/dev/null || true
    return 1
}

# ended JOB STATE EXITCODE: empty if the job ended so, else what happened instead.
ended() {
    local job=$1 state exit_code
    if ! wait_job "$job"; then
        echo "job $job did not end within ${JOB_TIMEOUT_S} s"
        return
    fi
    state=$(job_field "$job" JobState)
    exit_code=$(job_field "$job" ExitCode)
    if [ "$state" != "$2" ] || [ "$exit_code" != "$3" ]; then
        echo "job $job ended $state with exit code $exit_code" \
             "(expected $2, $3; log $(job_field "$job" StdOut))"
    fi
}

# train_directly DIR ARGS...: the uninterrupted run without Slurm that a job must reproduce.
train_directly() {
    local dir=$1
    shift
    mkdir -p "$dir"
    if ! "$PYTHON" auto_encoder.py --output-dir "$dir" "$@" > "$dir/run.log" 2>&1; then
        note "direct run failed: python auto_encoder.py --output-dir $dir $*"
        tail -n 5 "$dir/run.log" >&2
        return 1
    fi
}

info_of() { echo "$1/auto_encoder_$2_info.pkl.gz"; }

# report NAME PASS-DETAIL PROBLEM...: one line for a case: PASS and the detail if every
# PROBLEM is empty, else FAIL and the problems (their lines joined by "; ").
report() {
    local name=$1 detail=$2 problems
    shift 2
    problems=$(printf '%s\n' "$@" | sed '/^$/d' | paste -sd '\t' | sed 's/\t/; /g')
    if [ -z "$problems" ]; then
        RESULTS+=("PASS $name: $detail")
    else
        RESULTS+=("FAIL $name: $problems")
        FAILED+=("$name")
    fi
    echo "${RESULTS[-1]}"
}

# ---------------------------------------------------------------------------------------------
# Cases. Each reports itself; SINGLE_JOB and the LOGS list carry what later cases need.
SINGLE_JOB=""
declare -a LOGS=()

case_single() {
    note "single job: jobs/auto_encoder.slurm, 3D"
    local out=$WORK/single job problems=()
    if ! job=$(OUTPUT_DIR=$out TRAIN_ARGS="--model 3D $TINY_ARGS" submit jobs/auto_encoder.slurm); then
        report "single job" "" "sbatch jobs/auto_encoder.slurm failed"
        return
    fi
    problems+=("$(ended "$job" COMPLETED 0:0)")
    problems+=("$(py compare "$(info_of "$out" 3D)" "$(info_of "$WORK/direct/tiny" 3D)")")
    LOGS+=("$(job_field "$job" StdOut)")
    report "single job" "job $job trained 3D; losses and test MSE equal the direct run's" "${problems[@]}"
    SINGLE_JOB=$job
}

case_requeue() {
    note "requeue: the finished single job, requeued"
    local out=$WORK/single job=$SINGLE_JOB problems=()
    if [ -z "$job" ] || [ ! -f "$(info_of "$out" 3D)" ]; then
        report "requeue" "" "no finished single job to requeue"
        return
    fi
    cp "$(info_of "$out" 3D)" "$WORK/before-requeue.pkl.gz"
    # A requeued job may start again only after 120 s, which an administrator can waive; but not
    # within the second its first run ended, when slurmd revoked that run's credential: a launch
    # then fails ("Job credential revoked"), so the requeued run starts 2 s later.
    if ! scontrol requeue "$job" || ! sleep 2 || ! scontrol update JobId="$job" StartTime=now; then
        report "requeue" "" "scontrol could not requeue job $job"
        return
    fi
    problems+=("$(ended "$job" COMPLETED 0:0)")
    [ "$(job_field "$job" Restarts)" = 1 ] || problems+=("job $job was not restarted")
    problems+=("$(py reevaluated "$WORK/before-requeue.pkl.gz" "$(info_of "$out" 3D)")")
    problems+=("$(py compare "$(info_of "$out" 3D)" "$(info_of "$WORK/direct/tiny" 3D)")")
    # --open-mode=append: both runs are in the one log.
    local runs
    runs=$(grep -c '^3D model: ' "$(job_field "$job" StdOut)" || true)
    [ "$runs" = 2 ] || problems+=("the job log holds $runs runs, expected 2 (append mode)")
    report "requeue" "job $job ran again, only re-evaluated, same results, both runs in its log" \
        "${problems[@]}"
}

case_sweep() {
    note "sweep: jobs/sweep.slurm --array=0-1 (${SWEEP_SIZES[*]})"
    local out=$WORK/sweep job problems=() task
    if ! job=$(SWEEP_DIR=$out TRAIN_ARGS=$TINY_ARGS submit jobs/sweep.slurm --array=0-1); then
        report "sweep array" "" "sbatch jobs/sweep.slurm failed"
        return
    fi
    for task in 0 1; do
        problems+=("$(ended "${job}_$task" COMPLETED 0:0)")
        problems+=("$(py compare "$(info_of "$out" "${SWEEP_SIZES[task]}")" \
                                 "$(info_of "$WORK/direct/tiny" "${SWEEP_SIZES[task]}")")")
        LOGS+=("$(job_field "${job}_$task" StdOut)")
    done
    report "sweep array" "job $job tasks 0 and 1 trained ${SWEEP_SIZES[*]}; results equal the direct runs'" \
        "${problems[@]}"
}

# Epochs of the time-limit run: enough for LONG_TARGET_S of training at the fastest step time
# the direct tiny runs showed (so it is still training 75 s after it starts).
long_epochs() {
    local step
    step=$(py step-time $((TINY_LIMIT / BATCH)) "$(info_of "$WORK/direct/tiny" "${SWEEP_SIZES[0]}")" \
                                      "$(info_of "$WORK/direct/tiny" 3D)")
    awk -v step="$step" -v target="$LONG_TARGET_S" -v steps=$((LONG_LIMIT / BATCH)) \
        'BEGIN { e = int(target / (step * steps)) + 1; print (e < 3 ? 3 : e) }'
}

# The long 3D run that the time-limit and preemption jobs train (LONG_ARGS), and its direct run.
LONG_ARGS=""
LONG_EPOCHS=0
prepare_long_run() {
    LONG_EPOCHS=$(long_epochs)
    LONG_ARGS="--model 3D --epochs $LONG_EPOCHS --limit $LONG_LIMIT --batch-size $BATCH"
    LONG_ARGS+=" --precision fp32 --device cpu"
    note "the long run, directly, without Slurm: 3D for $LONG_EPOCHS epochs"
    # shellcheck disable=SC2086  # LONG_ARGS is a list of options
    train_directly "$WORK/direct/long" $LONG_ARGS
}

# resumed_problems JOB LOG OUT: how the finished job's log and results fail to show that every
# requeued run of it resumed (epoch N >= 2, no epoch trained twice) and ended as the direct run.
resumed_problems() {
    local job=$1 log=$2 out=$3
    [ "$(job_field "$job" Restarts)" -ge 1 ] 2>/dev/null || echo "job $job was never requeued"
    py resumed "$log" 3D "$LONG_EPOCHS"
    if [ -f "$(info_of "$WORK/direct/long" 3D)" ]; then
        py compare "$(info_of "$out" 3D)" "$(info_of "$WORK/direct/long" 3D)"
    else
        echo "no direct run to compare with"
    fi
}

case_time_limit() {
    local out=$WORK/time-limit job problems=() log
    note "time limit: jobs/auto_encoder.slurm --time=$TIME_LIMIT --signal=B:TERM@$TERM_LEAD," \
         "3D for $LONG_EPOCHS epochs"
    # shellcheck disable=SC2153  # LONG_ARGS is set by prepare_long_run
    if ! job=$(OUTPUT_DIR=$out TRAIN_ARGS=$LONG_ARGS submit jobs/auto_encoder.slurm \
                   --time="$TIME_LIMIT" --signal="B:TERM@$TERM_LEAD"); then
        report "time limit" "" "sbatch jobs/auto_encoder.slurm failed"
        return
    fi
    problems+=("$(ended "$job" COMPLETED 0:0)")
    log=$(job_field "$job" StdOut)
    LOGS+=("$log")
    grep -q "checkpoint saved" "$log" || problems+=("job $job did not save a checkpoint on SIGTERM")
    grep -q "^requeue: .*requeued to continue" "$log" || problems+=("job $job did not requeue itself")
    problems+=("$(resumed_problems "$job" "$log" "$out")")
    report "time limit" "job $job: stopped by its time limit, saved and requeued itself\
 (restarts: $(job_field "$job" Restarts)), resumed at epoch $(py resume-points "$log" 3D), ended COMPLETED;\
 no epoch trained twice; results equal the uninterrupted run's" "${problems[@]}"
}

# The job is requeued as soon as its log shows a finished epoch, so that the checkpoint it saves
# on the SIGTERM of the requeue is past epoch 1.
case_preemption() {
    local out=$WORK/preemption job problems=() log deadline=$((SECONDS + JOB_TIMEOUT_S))
    note "preemption: jobs/auto_encoder.slurm, requeued while it trains"
    if ! job=$(OUTPUT_DIR=$out TRAIN_ARGS=$LONG_ARGS submit jobs/auto_encoder.slurm); then
        report "preemption" "" "sbatch jobs/auto_encoder.slurm failed"
        return
    fi
    log=$WORK/logs/auto_encoder-$job.out
    until grep -q "^3D epoch [0-9]*/" "$log" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do sleep 1; done
    if [ "$(job_field "$job" JobState)" != RUNNING ] || ! scontrol requeue "$job"; then
        report "preemption" "" "job $job could not be requeued while it trained" \
               "$(ended "$job" COMPLETED 0:0)"
        return
    fi
    problems+=("$(ended "$job" COMPLETED 0:0)")
    LOGS+=("$log")
    grep -q "checkpoint saved" "$log" || problems+=("job $job did not save a checkpoint on SIGTERM")
    problems+=("$(resumed_problems "$job" "$log" "$out")")
    report "preemption" "job $job, requeued after epoch 1, resumed at epoch $(py resume-points "$log" 3D),\
 ended COMPLETED; no epoch trained twice; results equal the uninterrupted run's" "${problems[@]}"
}

case_logs() {
    local problems=() found=() log
    for log in "${LOGS[@]}"; do
        if [ -n "$log" ] && [ -f "$log" ]; then
            found+=("$log")
        else
            problems+=("a job log is missing ($log)")
        fi
    done
    if [ "${#found[@]}" = 0 ]; then
        problems+=("no job logs")
    else
        problems+=("$(py log-problems "${found[@]}")")
    fi
    report "job logs" "${#LOGS[@]} logs: no CR or ESC, and 'M epoch i/n: training loss' lines" \
        "${problems[@]}"
}

# ---------------------------------------------------------------------------------------------
main() {
    cd "$ROOT"
    check_prerequisites
    find_python
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/local_slurm.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    make_subset
    mapfile -t SWEEP_SIZES < <(head -n 2 jobs/sizes.txt)

    local size sizes
    sizes=$(printf '%s\n' 3D "${SWEEP_SIZES[@]}" | sort -u | paste -sd ' ')
    note "direct tiny runs of $sizes, without Slurm, in $WORK"
    for size in $sizes; do
        # shellcheck disable=SC2086
        train_directly "$WORK/direct/tiny" --model "$size" $TINY_ARGS
    done

    note "starting munged, slurmctld and slurmd"
    start_cluster || { echo "summary: no case ran: the cluster did not come up"; exit 1; }
    note "$(sinfo --version) is up"

    case_single
    case_requeue
    case_sweep
    prepare_long_run || note "the direct long run failed: the cases below report it"
    case_time_limit
    case_preemption
    case_logs

    local passed=$(( ${#RESULTS[@]} - ${#FAILED[@]} ))
    if [ "${#FAILED[@]}" = 0 ]; then
        echo "summary: all ${#RESULTS[@]} cases passed in ${SECONDS} s"
        return 0
    fi
    echo "summary: $passed of ${#RESULTS[@]} cases passed," \
         "failed: $(IFS=,; echo "${FAILED[*]}") (${SECONDS} s)"
    return 1
}

main "$@"
