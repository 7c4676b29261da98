"""The cluster job scripts in jobs/, run by bash with a fake scheduler environment.

A stub `python` on PATH records how the job calls the trainer, so no scheduler, GPU or
training is needed.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from autoencoder.datasets import DATASETS
from autoencoder.model import parse_code

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
SIZES = (JOBS / "sizes.txt").read_text().splitlines()
# script -> (working-directory variable, array-index variable or None)
SCRIPTS = {
    "auto_encoder.pbs": ("PBS_O_WORKDIR", None),
    "auto_encoder.slurm": ("SLURM_SUBMIT_DIR", None),
    "sweep.pbs": ("PBS_O_WORKDIR", "PBS_ARRAY_INDEX"),
    "sweep.slurm": ("SLURM_SUBMIT_DIR", "SLURM_ARRAY_TASK_ID"),
}
ARRAYS = [name for name, (_, index) in SCRIPTS.items() if index]
SINGLES = [name for name, (_, index) in SCRIPTS.items() if not index]
ARRAY_RANGE = {"sweep.pbs": r"^#PBS -J 0-(\d+)$", "sweep.slurm": r"^#SBATCH --array=0-(\d+)(?:%\d+)?$"}
# Stub interpreters: each answers the job's `python -c 'print(sys.executable)'` with its path.
ANSWER_EXECUTABLE = 'if [ "$1" = -c ]; then echo "$0"; exit 0; fi\n'
STUB = "#!/bin/sh\n" + ANSWER_EXECUTABLE + 'printf "%s\\n" "$@" > "$STUB_LOG"\n'
# A trainer that, like auto_encoder.py, saves and exits 143 on SIGTERM.
TRAINER_ON_SIGTERM = (
    "#!/bin/sh\n"
    + ANSWER_EXECUTABLE
    + """\
trap 'echo checkpoint saved > "$STUB_LOG"; exit 143' TERM
echo training > "$STUB_LOG.started"
for tick in $(seq 200); do sleep 0.05; done
"""
)
# A wrapper that runs the interpreter as its child, as pyenv's shims do.
SHIM = '#!/bin/sh\n{python} "$@"\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository root with jobs/, a prepared MNIST cache and a stub python on PATH."""
    root = tmp_path / "repo"
    shutil.copytree(JOBS, root / "jobs")
    (root / "data").mkdir()
    (root / "data" / "mnist.pkl.gz").touch()
    write_script(tmp_path / "bin" / "python", STUB)
    return root


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def run_job(repo: Path, script: str, index: int | None = None, **env: str) -> subprocess.Popen:
    """Run a job script as the scheduler would: from $HOME, the submit folder in the environment."""
    workdir_var, index_var = SCRIPTS[script]
    home = repo.parent / "home"
    home.mkdir(exist_ok=True)
    full_env = {
        "PATH": f"{repo.parent / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "STUB_LOG": str(repo.parent / "python.log"),
        workdir_var: str(repo),
        **env,
    }
    if index is not None:
        full_env[index_var] = str(index)
    (repo.parent / "python.log").unlink(missing_ok=True)
    return subprocess.Popen(
        ["bash", str(repo / "jobs" / script)],
        cwd=home,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trainer_call(repo: Path, script: str, index: int | None = None, **env: str) -> list[str]:
    """The trainer's argv as the job ran it (after checking the job succeeded)."""
    job = run_job(repo, script, index, **env)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == 0, stderr
    return (repo.parent / "python.log").read_text().splitlines()


def failure(repo: Path, script: str, index: int | None = None, **env: str) -> str:
    """The job's error output, after checking it failed without starting the trainer."""
    job = run_job(repo, script, index, **env)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode != 0
    assert not (repo.parent / "python.log").exists()
    return stderr


@pytest.mark.parametrize("script", [*SCRIPTS, "setup.sh"])
def test_job_scripts_are_valid_bash(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(JOBS / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_listed_size_is_a_distinct_code_and_dataset_the_trainer_accepts() -> None:
    tasks = [(parse_code(line.split()[0]).name, *(line.split()[1:] or ["mnist"])) for line in SIZES]
    assert all(len(task) == 2 and task[1] in DATASETS for task in tasks)
    assert len(set(tasks)) == len(tasks) == len(SIZES) > 0


@pytest.mark.parametrize("script", ARRAYS)
def test_array_range_has_one_task_per_listed_size(script: str) -> None:
    text = (JOBS / script).read_text()
    last = re.search(ARRAY_RANGE[script], text, re.MULTILINE)
    assert last, f"{script} has no 0-N array range"
    assert int(last.group(1)) + 1 == len(SIZES)


@pytest.mark.parametrize("script", ARRAYS)
def test_each_array_task_trains_its_size_resumably_into_the_shared_sweep_folder(repo: Path, script: str) -> None:
    for index, size in enumerate(SIZES):
        assert trainer_call(repo, script, index) == [
            "auto_encoder.py",
            "--model",
            size,
            "--resume",
            "--output-dir",
            "output/sweep",
        ]


@pytest.mark.parametrize("script", SINGLES)
def test_single_gpu_job_resumes_the_default_training_into_output(repo: Path, script: str) -> None:
    assert trainer_call(repo, script) == ["auto_encoder.py", "--resume", "--output-dir", "output"]


@pytest.mark.parametrize("script", ARRAYS)
def test_a_listed_dataset_trains_into_its_own_sweep_folder(repo: Path, script: str) -> None:
    (repo / "jobs" / "sizes.txt").write_text("3D\n3D fashion-mnist\n")
    (repo / "data" / "fashion-mnist").mkdir()
    (repo / "data" / "fashion-mnist" / "train-images-idx3-ubyte.gz").touch()
    assert trainer_call(repo, script, 1) == [
        "auto_encoder.py",
        "--model",
        "3D",
        "--dataset",
        "fashion-mnist",
        "--resume",
        "--output-dir",
        "output/sweep/fashion-mnist",
    ]


@pytest.mark.parametrize("script", SINGLES)
def test_the_dataset_variable_trains_that_dataset_into_its_own_folder(repo: Path, script: str) -> None:
    argv = trainer_call(repo, script, DATASET="kmnist", KMNIST_DATA="/data/kmnist")
    assert argv == ["auto_encoder.py", "--dataset", "kmnist", "--resume", "--output-dir", "output/kmnist"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_dataset_that_was_not_prepared_names_the_command_that_prepares_it(repo: Path, script: str) -> None:
    if SCRIPTS[script][1]:
        (repo / "jobs" / "sizes.txt").write_text("3D fashion-mnist\n")
    err = failure(repo, script, 0 if SCRIPTS[script][1] else None, DATASET="fashion-mnist")
    assert "python auto_encoder.py --prepare-data --dataset fashion-mnist" in err and "FASHION_MNIST_DATA" in err


@pytest.mark.parametrize("script", SINGLES)
def test_output_dir_and_train_args_reach_the_trainer(repo: Path, script: str) -> None:
    argv = trainer_call(repo, script, OUTPUT_DIR="output/run2", TRAIN_ARGS="--recipe original --epochs 9")
    assert argv == [
        "auto_encoder.py",
        "--resume",
        "--output-dir",
        "output/run2",
        "--recipe",
        "original",
        "--epochs",
        "9",
    ]


@pytest.mark.parametrize("script", ARRAYS)
def test_sweep_dir_and_train_args_reach_the_trainer(repo: Path, script: str) -> None:
    argv = trainer_call(repo, script, 1, SWEEP_DIR="/scratch/sweep", TRAIN_ARGS="--epochs 20")
    assert argv == [
        "auto_encoder.py",
        "--model",
        SIZES[1],
        "--resume",
        "--output-dir",
        "/scratch/sweep",
        "--epochs",
        "20",
    ]


@pytest.mark.parametrize("script", ARRAYS)
def test_array_index_past_the_size_list_fails_with_the_range_to_use(repo: Path, script: str) -> None:
    assert f"submit the array as 0-{len(SIZES) - 1}" in failure(repo, script, len(SIZES))


@pytest.mark.parametrize("script", ARRAYS)
def test_sweep_script_run_without_an_array_says_so(repo: Path, script: str) -> None:
    assert "array job" in failure(repo, script)


@pytest.mark.parametrize("script", SCRIPTS)
def test_job_fails_early_when_mnist_was_not_prepared(repo: Path, script: str) -> None:
    shutil.rmtree(repo / "data")
    index = 0 if SCRIPTS[script][1] else None
    assert "python auto_encoder.py --prepare-data" in failure(repo, script, index)


@pytest.mark.parametrize("cached", ["MNIST/raw/train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"])
def test_torchvision_idx_files_count_as_prepared_data(repo: Path, cached: str) -> None:
    (repo / "data" / "mnist.pkl.gz").unlink()
    (repo / "data" / cached).parent.mkdir(parents=True, exist_ok=True)
    (repo / "data" / cached).touch()
    assert trainer_call(repo, "sweep.slurm", 0)


def test_mnist_data_variable_stands_in_for_the_cache(repo: Path) -> None:
    shutil.rmtree(repo / "data")
    assert trainer_call(repo, "auto_encoder.pbs", MNIST_DATA="/data/mnist.pkl.gz")


def test_job_submitted_outside_the_repository_root_says_where_to_submit(repo: Path) -> None:
    assert "repository root" in failure(repo, "auto_encoder.slurm", SLURM_SUBMIT_DIR=str(repo.parent))


@pytest.mark.parametrize("script", ["auto_encoder.pbs", "sweep.slurm"])
def test_no_module_is_loaded_by_default_and_the_modules_variable_names_them(repo: Path, script: str) -> None:
    log = repo.parent / "module.log"
    log.touch()
    module = {"BASH_FUNC_module%%": f'() {{ echo "$*" >> {log}; }}'}
    index = 0 if SCRIPTS[script][1] else None
    trainer_call(repo, script, index, **module)
    trainer_call(repo, script, index, MODULES="cuda/12.4 gcc", **module)
    trainer_call(repo, script, index, MODULES="", **module)
    assert log.read_text().splitlines() == ["load cuda/12.4 gcc"]


def path_without_python(folder: Path) -> str:
    """A PATH with every command of /usr/bin and /bin except python: a node without one."""
    folder.mkdir()
    for bin_dir in (Path("/usr/bin"), Path("/bin")):
        for command in bin_dir.iterdir():
            if not command.name.startswith("python") and not (folder / command.name).exists():
                (folder / command.name).symlink_to(command)
    return str(folder)


@pytest.mark.parametrize("script", SCRIPTS)
def test_without_python_or_venv_the_job_says_in_one_line_what_to_create(repo: Path, script: str) -> None:
    (repo.parent / "bin" / "python").unlink()
    index = 0 if SCRIPTS[script][1] else None
    err = failure(repo, script, index, PATH=path_without_python(repo.parent / "no-python"))
    assert "command not found" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt" in lines[0]
    assert "VENV=" in lines[0] and "PYTHON=" in lines[0]


def test_venv_variable_activates_the_python_environment(repo: Path) -> None:
    venv = repo.parent / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.move(repo.parent / "bin" / "python", venv / "bin" / "python")
    (venv / "bin" / "activate").write_text(f'PATH="{venv / "bin"}:$PATH"\n')
    assert trainer_call(repo, "sweep.pbs", 0, VENV=str(venv))[:3] == ["auto_encoder.py", "--model", SIZES[0]]


@pytest.mark.parametrize("script", ["auto_encoder.slurm", "sweep.slurm"])
def test_slurm_jobs_are_requeued_and_warned_with_sigterm_before_the_time_limit(script: str) -> None:
    directives = re.findall(r"^#SBATCH (\S+)", (JOBS / script).read_text(), re.MULTILINE)
    assert "--requeue" in directives and "--open-mode=append" in directives
    assert any(re.fullmatch(r"--signal=B:TERM@\d+", d) for d in directives)


@pytest.mark.parametrize("script", ["auto_encoder.pbs", "sweep.pbs"])
def test_pbs_jobs_are_rerunnable_on_one_gpu(script: str) -> None:
    text = (JOBS / script).read_text()
    assert re.search(r"^#PBS -r y$", text, re.MULTILINE)
    assert re.search(r"^#PBS -l select=1:.*ngpus=1", text, re.MULTILINE)


@pytest.mark.slow  # real signals between real processes, with sleeps
@pytest.mark.parametrize("script", SCRIPTS)
def test_sigterm_to_the_job_shell_reaches_the_trainer_even_behind_a_shim(repo: Path, script: str) -> None:
    trainer = write_script(repo.parent / "real" / "python", TRAINER_ON_SIGTERM)
    write_script(repo.parent / "bin" / "python", SHIM.format(python=trainer))
    job = run_job(repo, script, 0 if SCRIPTS[script][1] else None)
    started = repo.parent / "python.log.started"
    deadline = time.monotonic() + 20
    while not started.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGTERM)  # what Slurm's --signal=B:TERM and PBS's kill do
    job.communicate(timeout=15)
    assert job.returncode == 143
    assert (repo.parent / "python.log").read_text() == "checkpoint saved\n"


# -- What a user edits and where the logs go ----------------------------------------------

# The directives a user must adapt, per script: partition/queue, account, GPU request.
EDITED = {
    "auto_encoder.slurm": ("--partition", "--account", "--gres"),
    "sweep.slurm": ("--partition", "--account", "--gres"),
    "auto_encoder.pbs": ("-q", "-A", "ngpus"),
    "sweep.pbs": ("-q", "-A", "ngpus"),
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_names_at_its_top_the_lines_to_edit_and_has_them(script: str) -> None:
    text = (JOBS / script).read_text()
    top = text[: text.index("\n#SBATCH" if script.endswith(".slurm") else "\n#PBS")]
    header = " ".join(line.lstrip("#").strip() for line in top.splitlines())  # one line: words wrap
    assert "Edit for your cluster" in header
    for word in ("partition" if script.endswith(".slurm") else "queue", "account", "GPU request"):
        assert word in header
    prefix = "#SBATCH " if script.endswith(".slurm") else "#PBS "
    directives = [line for line in text.splitlines() if line.lstrip("#").startswith(prefix.lstrip("#"))]
    for name in EDITED[script]:
        assert f"({name}" in header or f"{name} " in header or f"{name}=" in header, name
        assert any(name in line for line in directives), f"{script} has no {name} line"


def test_job_logs_go_into_a_folder_that_every_clone_has_and_git_ignores() -> None:
    for script in SCRIPTS:
        text = (JOBS / script).read_text()
        outputs = re.findall(r"^#SBATCH --output=(\S+)$|^#PBS -o (\S+)$", text, re.MULTILINE)
        assert [o for pair in outputs for o in pair if o], f"{script} names no log file"
        for output in (o for pair in outputs for o in pair if o):
            assert output.startswith("jobs/logs/"), f"{script}: log {output} is not in jobs/logs/"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "jobs/logs/.gitignore"], cwd=ROOT, capture_output=True, text=True
    )
    assert tracked.returncode == 0, "jobs/logs/ is not in the repository: Slurm would not create it"
    for log in ("jobs/logs/auto_encoder-17.out", "jobs/logs/sweep-18_3.out", "jobs/logs/sweep.o19"):
        ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", log], cwd=ROOT)
        assert ignored.returncode == 0, f"git does not ignore {log}"


def test_the_slurm_sweep_takes_a_few_gpus_at_a_time_by_default() -> None:
    array = re.search(r"^#SBATCH --array=(\S+)$", (JOBS / "sweep.slurm").read_text(), re.MULTILINE)
    assert array and re.fullmatch(r"0-\d+%[1-9]\d*", array.group(1)), array


def test_no_setting_that_does_nothing_is_left_in_the_repository() -> None:
    name = "TQDM_" + "MININTERVAL"  # tqdm reads no such variable
    found = subprocess.run(["git", "grep", "-n", name], cwd=ROOT, capture_output=True, text=True)
    assert found.stdout == "", found.stdout
    assert name not in (JOBS / "setup.sh").read_text()


# -- A Slurm job at its time limit requeues itself --------------------------------------

# A trainer that exits as after saving on SIGTERM, and answers the job's checkpoint_progress
# calls with $BEFORE (before it ran) and $AFTER (after).
TRAINER_SAVED = (
    "#!/bin/sh\n"
    + ANSWER_EXECUTABLE
    + """\
if [ "$1" = - ]; then
    cat > /dev/null
    if [ -e "$STUB_LOG.ran" ]; then printf '%s\\n' "$AFTER"; else printf '%s\\n' "$BEFORE"; fi
    exit 0
fi
printf "%s\\n" "$@" > "$STUB_LOG"
touch "$STUB_LOG.ran"
exit "${TRAINER_EXIT:-143}"
"""
)
# scontrol: records its arguments; `show job` says the job is $JOB_STATE.
SCONTROL = """#!/bin/sh
echo "$*" >> "$SCONTROL_LOG"
if [ "$1" = show ]; then echo "JobId=$4 JobName=x JobState=${JOB_STATE:-RUNNING} Reason=None"; fi
"""


def slurm_attempt(repo: Path, script: str, before: str, after: str, **env: str) -> tuple[int, str, list[str]]:
    """One Slurm run of a job whose trainer exits 143: (exit status, job log, scontrol calls)."""
    write_script(repo.parent / "bin" / "python", TRAINER_SAVED)
    write_script(repo.parent / "bin" / "scontrol", SCONTROL)
    scontrol_log = repo.parent / "scontrol.log"
    scontrol_log.unlink(missing_ok=True)
    (repo.parent / "python.log.ran").unlink(missing_ok=True)
    env = {"SLURM_JOB_ID": "42", "BEFORE": before, "AFTER": after, "SCONTROL_LOG": str(scontrol_log), **env}
    job = run_job(repo, script, 0 if SCRIPTS[script][1] else None, **env)
    _, stderr = job.communicate(timeout=30)
    calls = scontrol_log.read_text().splitlines() if scontrol_log.exists() else []
    return job.returncode, stderr, calls


SLURM_SCRIPTS = [name for name in SCRIPTS if name.endswith(".slurm")]


@pytest.mark.parametrize("script", SLURM_SCRIPTS)
@pytest.mark.parametrize(
    "before, after", [("", "3D 1 3"), ("3D 1 3", "3D 2 0"), ("3D 2 0", "3D 2 5"), ("3D 9 0", "3D 9 0\n4x4 0 7")]
)
def test_a_slurm_job_that_saved_on_sigterm_and_progressed_requeues_itself(
    repo: Path, script: str, before: str, after: str
) -> None:
    status, log, calls = slurm_attempt(repo, script, before, after)
    assert calls[-1] == "requeue 42", calls
    assert "requeued to continue (restart 1 of at most 10)" in log
    assert status == 143


@pytest.mark.parametrize("script", SLURM_SCRIPTS)
@pytest.mark.parametrize(
    "before, after, reason",
    [
        ("3D 2 5", "3D 2 5", "no progress"),  # e.g. SIGTERM before training got under way
        ("", "", "no progress"),  # no checkpoint at all
        ("3D 4 0", "3D 1 6", "no progress"),  # it started over instead of resuming
        ("3D 9 0\n4x4 0 7", "3D 1 0\n4x4 0 9", "no progress"),
        ("3D 1 0", "unreadable", "the checkpoints' epoch and step could not be read"),
    ],
)
def test_a_slurm_job_that_made_no_progress_is_not_requeued_and_says_why(
    repo: Path, script: str, before: str, after: str, reason: str
) -> None:
    status, log, calls = slurm_attempt(repo, script, before, after)
    assert not any(call.startswith("requeue") for call in calls)
    assert f"requeue: not requeued: {reason}" in log and "resubmit the same command" in log
    assert status == 143


@pytest.mark.parametrize(
    "restarts, limit, requeued", [("9", None, True), ("10", None, False), ("1", "2", True), ("2", "2", False)]
)
def test_requeues_are_bounded_by_max_requeues(repo: Path, restarts: str, limit: str | None, requeued: bool) -> None:
    env = {"SLURM_RESTART_COUNT": restarts, **({"MAX_REQUEUES": limit} if limit else {})}
    _, log, calls = slurm_attempt(repo, "auto_encoder.slurm", "3D 1 0", "3D 2 0", **env)
    assert ("requeue 42" in calls) == requeued, log
    if not requeued:
        assert f"requeued {restarts} times already (MAX_REQUEUES={limit or 10})" in log


@pytest.mark.parametrize("script", SLURM_SCRIPTS)
def test_a_cancelled_or_preempted_job_is_left_to_slurm(repo: Path, script: str) -> None:
    for state in ("CANCELLED", "REQUEUED", "PENDING"):
        status, log, calls = slurm_attempt(repo, script, "3D 1 0", "3D 2 0", JOB_STATE=state)
        assert not any(call.startswith("requeue") for call in calls)
        assert f"the job is {state}, not RUNNING" in log and status == 143


@pytest.mark.parametrize("script", SLURM_SCRIPTS)
def test_a_slurm_job_that_ends_otherwise_neither_requeues_nor_reads_checkpoints(repo: Path, script: str) -> None:
    for code in ("0", "1", "137"):
        status, log, calls = slurm_attempt(repo, script, "3D 1 0", "3D 2 0", TRAINER_EXIT=code)
        assert status == int(code) and calls == [] and "requeue" not in log


@pytest.mark.parametrize("script", SCRIPTS)
def test_outside_slurm_a_saved_job_ends_143_with_nothing_to_requeue(repo: Path, script: str) -> None:
    write_script(repo.parent / "bin" / "python", TRAINER_SAVED)
    write_script(repo.parent / "bin" / "scontrol", SCONTROL)
    job = run_job(repo, script, 0 if SCRIPTS[script][1] else None, SCONTROL_LOG=str(repo.parent / "sc.log"))
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == 143 and not (repo.parent / "sc.log").exists() and "requeue" not in stderr


@pytest.mark.slow
def test_checkpoint_progress_reads_the_trainers_own_checkpoints(
    tmp_path: Path, tiny_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The epoch and step that the requeue decision compares, from checkpoints the trainer wrote."""
    import sys

    from conftest import signal_at_step, train

    out = tmp_path / "out"
    signal_at_step(monkeypatch, 5)  # 3 steps an epoch: SIGTERM during epoch 2, step 2
    assert train(out, tiny_mnist, "--model", "3D", "--epochs", "3") == 143
    monkeypatch.undo()
    assert train(out, tiny_mnist, "--model", "2D", "--epochs", "1") == 0

    def progress(models: str) -> str:
        command = f'source jobs/setup.sh && checkpoint_progress "{models}" --resume --output-dir "{out}"'
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return result.stdout

    assert progress("*") == "3D 1 2\n"  # the finished 2D model has no checkpoint left
    assert progress("3D") == "3D 1 2\n"
    assert progress("8x8") == ""
