"""Shared fixtures and helpers: a tiny MNIST-format dataset, the one way tests run the trainer,
and tiny trained runs made once per session."""

from __future__ import annotations

import gzip
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import auto_encoder
from autoencoder import training
from autoencoder.datasets import IDX_FILES, write_idx

ROOT = Path(__file__).resolve().parents[1]
TINY_SIZES = {"train": 60, "valid": 20, "test": 20}
TINY_RUN = ("--batch-size", "20", "--precision", "fp32", "--device", "cpu")  # bit-identical reruns


def tiny_splits(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic byte/256 images with a bright blob whose place depends on the label."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in TINY_SIZES.values():
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 64, (n, 28, 28))
        for image, label in zip(images, labels):
            row, col = 4 + 2 * (label // 3), 4 + 5 * (label % 3)
            image[row : row + 8, col : col + 8] = 255
        splits.append(((images.reshape(n, 784) / 256).astype(np.float32), labels.astype(np.int64)))
    return splits


def write_mnist_pickle(path: Path, splits: list) -> Path:
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(splits), f, protocol=2)
    return path


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    """The four IDX files of `arrays` (keyed like IDX_FILES) in `folder`, gzipped or not."""
    for key, stem in IDX_FILES.items():
        write_idx(folder / (f"{stem}.gz" if gz else stem), arrays[key])
    return folder


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60/20/20-image mnist.pkl.gz in the deeplearning.net format."""
    return write_mnist_pickle(tmp_path_factory.mktemp("data") / "mnist.pkl.gz", tiny_splits())


def trainer_argv(output_dir: Path, data: Path | None, *extra: str) -> list[str]:
    """`python auto_encoder.py` arguments for a tiny, deterministic run (later options win)."""
    return [*(["--data", str(data)] if data else []), "--output-dir", str(output_dir), *TINY_RUN, *extra]


def train(output_dir: Path, data: Path | None, *extra: str) -> int:
    """Run the trainer in-process on tiny settings; returns its exit code."""
    return auto_encoder.main(trainer_argv(output_dir, data, *extra))


def signal_at_step(monkeypatch: pytest.MonkeyPatch, step: int, signum: int = signal.SIGTERM) -> None:
    """Deliver a real signal to this process during training step `step` (counted from 1)."""
    real_step, steps = training.train_step, []

    def train_step(state, x):
        steps.append(x)
        if len(steps) == step:
            os.kill(os.getpid(), signum)
        return real_step(state, x)

    monkeypatch.setattr(training, "train_step", train_step)


def run_trainer(out: Path, *argv: str) -> int:
    """The trainer in-process, tiny settings, into `out` (which holds an old log to keep)."""
    return train(out, None, "--model", "3D", "--epochs", "1", *argv)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder holding a previous run's log, which no failed run may touch."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "auto_encoder_3D.txt").write_text("previous run\n")
    return folder


def assert_refused(err: str, out: Path, *fragments: str) -> str:
    """Exactly one `error:` line holding every fragment; the output folder as it was."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(f in lines[0] for f in fragments), lines[0]
    assert [p.name for p in out.iterdir()] == ["auto_encoder_3D.txt"]
    assert (out / "auto_encoder_3D.txt").read_text() == "previous run\n"
    return lines[0]


def truncated(path: Path, data: bytes) -> Path:
    """`path` holding the first half of `data`."""
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="session")
def trained_output(tmp_path_factory: pytest.TempPathFactory, tiny_mnist: Path) -> Path:
    """An output folder holding both default models after 2 tiny epochs each."""
    out = tmp_path_factory.mktemp("output")
    assert train(out, tiny_mnist, "--model", "both", "--epochs", "2") == 0
    return out


# -- Reading what a run wrote ---------------------------------------------------------


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a weights file, loaded as load_model does (without building the model)."""
    return torch.load(path, weights_only=True, mmap=True)["state_dict"]


def codes_of(path: Path) -> torch.Tensor:
    """The code trace a run stored (epochs+1, images, units)."""
    return torch.load(path, weights_only=True)["codes"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a), "weights differ"


def one_error_line(err: str) -> str:
    """The one `error: ...` line of a failed run (progress bars may precede it)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def stamp(path: Path) -> tuple[int, int, int]:
    """Changes when the file is replaced or rewritten."""
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def linked_copy(src: Path, dst: Path) -> Path:
    """A folder of hard links: cheap, and an atomic replace in it leaves `src` alone."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        os.link(path, dst / path.name)
    return dst
