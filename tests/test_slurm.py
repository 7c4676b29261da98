"""The job scripts in jobs/ on a real one-node Slurm cluster on localhost (jobs/local_slurm.sh).

Slow (7 to 13 minutes on two busy cores) and needs root and Debian's slurm-wlm and munge;
skipped where `sbatch` is not on PATH or the script says it cannot run here (exit status 77).
The script brings up the cluster in a temporary folder, runs a single job, requeues it when
finished, runs a two-task sweep array, a job that its time limit stops and that requeues itself
until it is done, and a job requeued while it trains (preemption); it checks in the logs that
each requeued run resumed at epoch N >= 2 and trained no epoch twice, compares each result with
the same training run without Slurm, checks that the job logs are plain text, and shuts the
cluster down. On failure its PASS/FAIL lines say which case differed and how.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "jobs" / "local_slurm.sh"
CANNOT_RUN_HERE = 77  # the script's exit status without Slurm, munge, root or MNIST
TIMEOUT_S = 2700  # the script's run: 13 minutes on two cores beside two training runs


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sbatch") is None, reason="Slurm is not installed (apt-get install slurm-wlm munge)")
def test_slurm_jobs_resume_by_themselves_after_time_limit_and_preemption_like_runs_without_slurm() -> None:
    env = dict(os.environ)
    if "VENV" not in env and "PYTHON" not in env:
        env["PYTHON"] = sys.executable  # the jobs train with the interpreter running the tests
    with subprocess.Popen(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.terminate()  # SIGTERM, not SIGKILL: the script's trap shuts the cluster down
            stdout, stderr = run.communicate(timeout=300)
            pytest.fail(f"jobs/local_slurm.sh took over {TIMEOUT_S} s:\n{stdout}{stderr[-2000:]}")
    if run.returncode == CANNOT_RUN_HERE:
        pytest.skip(stderr.strip().splitlines()[-1])
    assert run.returncode == 0, f"{stdout}\n{stderr[-2000:]}"
