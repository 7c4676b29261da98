"""Fault injection: kill -9, signals, settings that do not match, full disks.

Each test states a promise of the trainer and breaks it on purpose. Runs are tiny (40
images of `tiny_mnist` in batches of 20, two epochs, fp32 on the CPU) and every
uninterrupted run gives bit-identical results: a faulty run, resumed, must end exactly there.
Tiny epochs end long before the default checkpoint interval, so a test that needs a
checkpoint after every epoch asks for one with --checkpoint-interval 0.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import auto_encoder
from autoencoder.files import OutputPaths, load_info
from conftest import (
    ROOT,
    assert_same_weights,
    codes_of,
    linked_copy,
    one_error_line,
    stamp,
    train,
    trainer_argv,
    weights_of,
)

if sys.platform == "win32":
    pytest.skip("kill -9, signals and hard links are POSIX", allow_module_level=True)

pytestmark = pytest.mark.slow

TINY = ("--model", "3D", "--epochs", "2", "--limit", "40")  # two steps per epoch
EVERY_EPOCH = ("--checkpoint-interval", "0")
KILLS = 20
TIMEOUT = 300  # seconds for any one trainer process (a tiny run takes a few on an idle CPU)


# -- Running the trainer and reading what it wrote ---------------------------------


def _trainer_process(argv: list[str], log: str) -> None:
    """The body of a trainer process; its output goes to `log`.stdout and `log`.stderr."""
    sys.stdout = open(f"{log}.stdout", "w", buffering=1)  # noqa: SIM115 (open until the process ends)
    sys.stderr = open(f"{log}.stderr", "w", buffering=1)  # noqa: SIM115
    sys.exit(auto_encoder.main(argv))


# Trainer processes fork from a server that has imported torch once: each is a real process
# (killed, signalled and exiting on its own) that starts in a fraction of a second.
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["auto_encoder", __name__])


@dataclass
class Trainer:
    """`python auto_encoder.py ARGV` in its own process, writing into `out`."""

    proc: multiprocessing.Process
    out: Path

    @classmethod
    def start(cls, out: Path, data: Path, *extra: str) -> Trainer:
        return cls.start_argv(out, trainer_argv(out, data, *TINY, *extra))

    @classmethod
    def start_argv(cls, out: Path, argv: list[str]) -> Trainer:
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = FORKS.Process(target=_trainer_process, args=(argv, str(out)))
        proc.start()
        return cls(proc, out)

    def stdout(self) -> str:
        return Path(f"{self.out}.stdout").read_text() if Path(f"{self.out}.stdout").exists() else ""

    def stderr(self) -> str:
        return Path(f"{self.out}.stderr").read_text()

    def ended(self) -> bool:
        return not self.proc.is_alive()

    def started_or_ended(self) -> bool:
        """It has said which model it trains (or stopped before it could)."""
        return "model:" in self.stdout() or self.ended()

    def send(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait(self) -> int:
        self.proc.join(TIMEOUT)
        assert self.proc.exitcode is not None, "the trainer hangs"
        return self.proc.exitcode


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def temporaries(folder: Path) -> list[Path]:
    """What atomic writes leave while they run (or when killed mid-write)."""
    return sorted(folder.glob(".*.tmp"))


def log_rows(text: str) -> list[list[str]]:
    """The epoch table of a log as [epoch, TL, VL] rows, [epoch, TL] where no validation loss was
    measured (--train-on-validation); without the times, which differ from run to run."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["Epoch"]) + 1
    return [line.split()[:-1] for line in lines[start:] if line[:1].isdigit()]


@dataclass
class Reference:
    """An uninterrupted run: what every faulty run, once resumed, must reproduce."""

    out: Path
    seconds: float  # from the trainer's "3D model: ..." line to its exit
    info: dict
    init: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]
    codes: torch.Tensor
    log: str


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_mnist: Path) -> Reference:
    """Run as a user would: `python auto_encoder.py ...`, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "out"
    command = [sys.executable, str(ROOT / "auto_encoder.py"), *trainer_argv(out, tiny_mnist, *TINY)]
    with open(f"{out}.stdout", "w") as stdout, open(f"{out}.stderr", "w") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_until(lambda: "model:" in Path(f"{out}.stdout").read_text() or proc.poll() is not None, "the start")
    started = time.monotonic()
    assert proc.wait(timeout=TIMEOUT) == 0, Path(f"{out}.stderr").read_text()
    paths = OutputPaths.of(out, "3D")
    return Reference(
        out,
        time.monotonic() - started,
        load_info(paths.info),
        weights_of(paths.init),
        weights_of(paths.weights),
        codes_of(paths.codes),
        paths.log.read_text(),
    )


def assert_each_file_is_a_whole_version(out: Path, ref: Reference) -> None:
    """Every output present loads and equals the reference's version (or an earlier one)."""
    paths = OutputPaths.of(out, "3D")
    expected = {p.name for p in vars(OutputPaths.of(ref.out, "3D")).values()}
    present = {p.name for p in out.iterdir() if p not in temporaries(out)} if out.exists() else set()
    assert present <= expected, present - expected
    if paths.init.exists():
        assert_same_weights(weights_of(paths.init), ref.init)
    if paths.checkpoint.exists():
        state = torch.load(paths.checkpoint, weights_only=True, mmap=True)
        done = state["epoch"]
        assert state["partial"] is None  # only a signal saves a part-epoch
        assert state["history"]["training_loss"] == ref.info["training loss"][:done]
        assert state["history"]["validation_loss"] == ref.info["validation loss"][:done]
    if paths.log.exists():
        text, rows = paths.log.read_text(), log_rows(ref.log)
        assert text.endswith("\n") and log_rows(text) == rows[: len(log_rows(text))]
        assert "MSE on test data" not in text or text.splitlines()[-2] == ref.log.splitlines()[-2]
    if paths.codes.exists():
        assert torch.equal(codes_of(paths.codes), ref.codes)
    if paths.weights.exists():
        assert_same_weights(weights_of(paths.weights), ref.weights)
    if paths.info.exists():
        info = load_info(paths.info)
        for key in ("training loss", "validation loss", "test mse"):
            assert info[key] == ref.info[key], key


def assert_finished_like_the_reference(out: Path, ref: Reference) -> None:
    assert_each_file_is_a_whole_version(out, ref)
    paths = OutputPaths.of(out, "3D")
    assert all(p.exists() for p in vars(paths).values() if p != paths.checkpoint)
    assert not paths.checkpoint.exists()  # a finished run keeps its results, not its checkpoint
    assert log_rows(paths.log.read_text()) == log_rows(ref.log)
    assert not temporaries(out)


# -- Crashes and interruptions ---------------------------------------------------------


@pytest.mark.parametrize("cadence", [(), EVERY_EPOCH], ids=["default cadence", "checkpoint every epoch"])
def test_kill_9_at_20_random_moments_leaves_only_whole_files_and_resume_ends_like_no_kill(
    tmp_path, tiny_mnist, reference, cadence
):
    rng = random.Random(5)  # the moments are random, the checks are not
    out, killed_mid_run = tmp_path / "out", 0
    for _ in range(KILLS):
        trainer = Trainer.start(out, tiny_mnist, "--resume", *cadence)
        wait_until(trainer.started_or_ended, "the start")
        time.sleep(rng.uniform(0, reference.seconds))
        trainer.proc.kill()  # SIGKILL
        code = trainer.wait()
        assert code in (0, -signal.SIGKILL), trainer.stderr()
        assert_each_file_is_a_whole_version(out, reference)
        if code == 0:  # it finished first (after earlier kills): start the next run afresh
            assert_finished_like_the_reference(out, reference)
            shutil.rmtree(out)
        killed_mid_run += code == -signal.SIGKILL
    assert killed_mid_run >= KILLS // 4, "the kills should mostly land while the run works"
    assert Trainer.start(out, tiny_mnist, "--resume", *cadence).wait() == 0
    assert_finished_like_the_reference(out, reference)


@pytest.mark.parametrize("first, second", [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGTERM)])
def test_a_signal_saves_the_checkpoint_a_second_one_during_the_save_is_harmless_and_resume_matches(
    tmp_path, tiny_mnist, reference, first, second
):
    trainer = Trainer.start(tmp_path / "out", tiny_mnist)
    paths = OutputPaths.of(trainer.out, "3D")
    wait_until(lambda: paths.init.exists() or trainer.ended(), "the first weights")
    trainer.send(first)  # the handlers are in place once the init weights exist
    saving = f".{paths.checkpoint.name}.*.tmp"
    wait_until(lambda: any(trainer.out.glob(saving)) or trainer.ended(), "the checkpoint save")
    assert not trainer.ended(), "the trainer ended before it saved"
    trainer.send(second)
    assert trainer.wait() == 128 + first, trainer.stderr()
    err = trainer.stderr()
    assert f"Stopped by {signal.Signals(first).name}: checkpoint saved" in err and "Traceback" not in err
    assert torch.load(paths.checkpoint, weights_only=True)["partial"] is not None
    assert not temporaries(trainer.out) and not paths.weights.exists()
    command = shlex.split(err.strip().splitlines()[-1])  # the message says how to resume
    assert command[:2] == ["python", "auto_encoder.py"] and command[-1] == "--resume"
    resumed = Trainer.start_argv(tmp_path / "resumed", command[2:])
    assert resumed.wait() == 0, resumed.stderr()
    assert_finished_like_the_reference(trainer.out, reference)


@pytest.mark.parametrize(
    "change, refused",
    [
        (["--model", "4x4"], "model 3D (now 4x4)"),
        (["--recipe", "original"], "recipe modern (now original)"),
        (["--batch-size", "10"], "batch_size 20 (now 10)"),
        (["--weight-decay", "0.5"], "weight_decay 0.1 (now 0.5)"),
        (["--seed", "1"], "seed 0 (now 1)"),
        (["--limit", "20"], "limit 40 (now 20)"),
        (["--epochs", "3"], "epochs 2 (now 3)"),
    ],
)
def test_a_resume_with_other_settings_is_refused_and_changes_nothing(
    tmp_path, tiny_mnist, reference, capsys, change, refused
):
    out = linked_copy(reference.out, tmp_path / "out")
    paths = OutputPaths.of(out, "3D")
    if change[:2] == ["--model", "4x4"]:  # another model's finished run in its place
        other = OutputPaths.of(out, "4x4")
        os.link(paths.info, other.info)
        os.link(paths.weights, other.weights)
    before = {p.name: stamp(p) for p in out.iterdir()}
    assert train(out, tiny_mnist, *TINY, *change, "--resume") == 2  # the last value counts
    line = one_error_line(capsys.readouterr().err)
    assert "was made with other settings" in line and refused in line
    assert {p.name: stamp(p) for p in out.iterdir()} == before


@pytest.mark.parametrize("damage", ["truncated", "weights file", "list"])
def test_a_damaged_or_foreign_checkpoint_is_refused_on_resume(tmp_path, tiny_mnist, reference, capsys, damage):
    out = tmp_path / "out"
    checkpoint = OutputPaths.of(out, "3D").checkpoint
    out.mkdir()
    if damage == "truncated":  # the first MB of a file torch wrote
        with open(OutputPaths.of(reference.out, "3D").weights, "rb") as f:
            checkpoint.write_bytes(f.read(1 << 20))
    elif damage == "weights file":
        os.link(OutputPaths.of(reference.out, "3D").weights, checkpoint)
    else:
        torch.save([torch.zeros(3)], checkpoint)
    assert train(out, tiny_mnist, *TINY, "--resume") == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(checkpoint) in line and "discard it with --restart" in line
    assert [p.name for p in out.iterdir()] == [checkpoint.name]


# -- Full disks ------------------------------------------------------------------------


def test_a_full_disk_during_a_checkpoint_save_keeps_the_previous_one_and_resume_finishes(
    tmp_path, tiny_mnist, reference, monkeypatch, capsys
):
    """The second checkpoint's write fills the disk part-way (as on a tmpfs), then fails."""
    real_write, writes = Path.write_bytes, []

    def write_until_the_disk_is_full(self, data):
        if self.name.startswith(".auto_encoder_3D_checkpoint.pt"):
            writes.append(self)
            if len(writes) == 2:
                real_write(self, bytes(data[:1000]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    out = tmp_path / "out"
    paths = OutputPaths.of(out, "3D")
    monkeypatch.setattr(Path, "write_bytes", write_until_the_disk_is_full)
    assert train(out, tiny_mnist, *TINY, *EVERY_EPOCH) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot write {paths.checkpoint} (No space left on device)" in line
    assert "previous version is intact" in line and "--resume`" in line
    assert torch.load(paths.checkpoint, weights_only=True)["epoch"] == 1
    assert not temporaries(out) and not paths.weights.exists()
    monkeypatch.undo()
    assert train(out, tiny_mnist, *TINY, "--resume") == 0
    assert_finished_like_the_reference(out, reference)


@pytest.mark.parametrize("kind", ["log", "info", "weights", "codes"])
def test_a_failing_write_keeps_the_previous_version_of_that_file_and_names_it(
    tmp_path, tiny_mnist, reference, monkeypatch, capsys, kind
):
    """Resuming a finished run rewrites its results; here the disk is full at the last step."""
    out = linked_copy(reference.out, tmp_path / "out")
    target = getattr(OutputPaths.of(out, "3D"), kind)
    before, real_replace = stamp(target), os.replace

    def replace_fails_on_target(src, dst):
        if Path(dst) == target:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_fails_on_target)
    assert train(out, tiny_mnist, *TINY, "--resume") == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot write {target} (No space left on device)" in line
    assert stamp(target) == before and not temporaries(out)


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A real 430 MB tmpfs: room for the init weights and one checkpoint, not two."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=430m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs needs root (the failing-write tests cover the logic)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_tmpfs_keeps_the_previous_checkpoint_and_resume_finishes_once_freed(
    tmpfs, tiny_mnist, reference, capsys
):
    out = tmpfs / "out"
    paths = OutputPaths.of(out, "3D")
    assert train(out, tiny_mnist, *TINY, *EVERY_EPOCH) == 1
    assert f"cannot write {paths.checkpoint}" in one_error_line(capsys.readouterr().err)
    assert torch.load(paths.checkpoint, weights_only=True)["epoch"] == 1
    assert not temporaries(out)
    subprocess.run(["mount", "-o", "remount,size=1g", str(tmpfs)], check=True)
    assert train(out, tiny_mnist, *TINY, "--resume") == 0
    assert_finished_like_the_reference(out, reference)
