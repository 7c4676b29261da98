"""Beyond digits: Fashion-MNIST and KMNIST take the same paths as MNIST, with their own names,
caches, folders and classes; outputs of one dataset are never taken for another's.

KMNIST has no copy here, so its files are IDX files written by the tests. Fashion-MNIST's real
files are used where FASHION_MNIST_DATA names them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import autoencoder.sources
import plot_3D
import plot_4x4
import plot_training
from autoencoder.datasets import DATASETS, dataset_spec, read_dataset
from autoencoder.errors import DataError
from autoencoder.files import OutputPaths, load_info
from autoencoder.sources import load_dataset
from conftest import train, write_idx_folder

N_TRAIN, N_TEST = 72, 24  # the last sixth of the training images (12) become validation


def blob_idx_folder(folder: Path, seed: int = 0, side: int = 28, label_range: int = 10) -> Path:
    """Four gzipped IDX files of a tiny dataset whose classes differ by where a blob sits."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        labels = rng.integers(0, label_range, n)
        images = rng.integers(0, 40, (n, side, side))
        for image, label in zip(images, labels):
            image[2 + 2 * (label % 10) // 3 : 10 + 2 * (label % 10) // 3, 4:12] = 250
        arrays[f"{split}_x"], arrays[f"{split}_y"] = images, labels
    return write_idx_folder(folder, arrays)


@pytest.fixture(scope="module")
def kmnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return blob_idx_folder(tmp_path_factory.mktemp("kmnist"))


@pytest.fixture(scope="module")
def kmnist_run(tmp_path_factory: pytest.TempPathFactory, kmnist: Path) -> Path:
    """Both default models trained on the tiny KMNIST for one epoch."""
    out = tmp_path_factory.mktemp("kmnist_run")
    assert train(out, kmnist, "--dataset", "kmnist", "--epochs", "1") == 0
    return out


def plot(script, out: Path, *extra: str) -> int:
    return script.main(["--output-dir", str(out), "--device", "cpu", "--format", "png", *extra])


def test_each_dataset_has_ten_named_classes_its_own_cache_and_its_own_output_folder():
    assert dataset_spec("fashion-mnist").classes[9] == "Ankle boot"
    assert dataset_spec("kmnist").classes == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    assert [d.cache for d in DATASETS.values()] == [Path("data"), Path("data/fashion-mnist"), Path("data/kmnist")]
    assert [str(DATASETS[d].output_dir) for d in DATASETS] == ["output", "output/fashion-mnist", "output/kmnist"]
    assert [d.env_var for d in DATASETS.values()] == ["MNIST_DATA", "FASHION_MNIST_DATA", "KMNIST_DATA"]
    assert dataset_spec("mnist").caption(7) == "digit 7" and dataset_spec("kmnist").caption(2) == "su"


def test_an_idx_folder_gets_the_mnist_split_and_scaling(kmnist):
    splits = read_dataset(kmnist, "kmnist")
    assert (len(splits.train_x), len(splits.valid_x), len(splits.test_x)) == (60, 12, 24)
    assert splits.dataset == "kmnist" and splits.train_x.max() == np.float32(250 / 256)


@pytest.mark.slow
def test_a_tiny_kmnist_run_records_its_dataset_in_every_file(kmnist_run, kmnist):
    sha = read_dataset(kmnist, "kmnist").sha256
    for model in ("3D", "4x4"):
        paths = OutputPaths.of(kmnist_run, model)
        info = load_info(paths.info)
        assert info["config"]["dataset"] == "kmnist" and info["config"]["data_sha256"] == sha
        assert f"Data OK: KMNIST, images sha256 {sha}." in paths.log.read_text()
        assert torch.load(paths.weights, weights_only=True)["dataset"] == "kmnist"


@pytest.mark.slow
def test_the_plot_scripts_draw_a_kmnist_run_in_its_own_words(kmnist_run, kmnist, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(kmnist_run, out)
    for script in (plot_training, plot_3D, plot_4x4):
        assert plot(script, out, "--dataset", "kmnist", "--data", str(kmnist)) == 0
    note = json.loads((out / "code_quality.json").read_text())["note"]
    assert "KMNIST test characters" in note and "class accuracy" in note
    assert (out / "4x4_interpolation.png").stat().st_size > 0 and (out / "3D_code_evolution.gif").exists()


@pytest.mark.slow
@pytest.mark.parametrize("script", [plot_training, plot_3D, plot_4x4])
def test_a_plot_script_asked_for_another_dataset_refuses_in_one_line(script, kmnist_run, capsys):
    assert plot(script, kmnist_run, "--dataset", "fashion-mnist") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained on kmnist, not fashion-mnist: pass --dataset kmnist" in err


@pytest.mark.slow
def test_a_checkpoint_of_another_dataset_is_refused_on_resume(kmnist_run, kmnist, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(kmnist_run, out)
    assert train(out, kmnist, "--dataset", "fashion-mnist", "--epochs", "1", "--resume") == 2
    assert "dataset kmnist (now fashion-mnist)" in capsys.readouterr().err


def test_a_folder_in_torchvisions_layout_of_another_dataset_is_refused(tmp_path):
    blob_idx_folder(tmp_path / "FashionMNIST" / "raw")
    with pytest.raises(DataError, match="holds FashionMNIST/raw, which is fashion-mnist, not kmnist"):
        read_dataset(tmp_path, "kmnist")
    assert read_dataset(tmp_path, "fashion-mnist").dataset == "fashion-mnist"


def test_the_mnist_pickle_given_for_another_dataset_is_refused(tiny_mnist, monkeypatch):
    """Known data is recognised by its images' sha256, whatever the file's format (here the tiny
    pickle stands in for the real MNIST)."""
    sha = load_dataset("mnist", tiny_mnist, log=lambda _: None).sha256
    monkeypatch.setitem(autoencoder.datasets.KNOWN_DATA, sha, "mnist")
    with pytest.raises(DataError, match="holds MNIST, not Fashion-MNIST: pass --dataset mnist"):
        load_dataset("fashion-mnist", tiny_mnist, log=lambda _: None)


@pytest.mark.parametrize(
    "damage, message",
    [
        (dict(side=32), "images are (32, 32), expected 28x28"),
        (dict(label_range=12), "labels are not classes 0..9"),
    ],
)
def test_bad_idx_files_of_another_dataset_are_one_error_line(damage, message, tmp_path, capsys):
    data = blob_idx_folder(tmp_path / "bad", **damage)
    assert train(tmp_path / "out", data, "--dataset", "kmnist") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "out").exists()


def test_downloads_are_verified_and_cached_under_the_datasets_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KMNIST_DATA", raising=False)
    asked = []

    def torchvision(dest: Path, dataset: str) -> None:
        asked.append(dataset)
        blob_idx_folder(dest / "KMNIST" / "raw")

    monkeypatch.setattr(autoencoder.sources, "torchvision_download", torchvision)
    assert len(load_dataset("kmnist", log=lambda _: None).test_x) == N_TEST
    assert asked == ["kmnist"] and (tmp_path / "data" / "kmnist" / "KMNIST" / "raw").is_dir()
    assert load_dataset("kmnist", log=lambda _: None).source == "data/kmnist" and asked == ["kmnist"]  # cached


def test_when_every_source_fails_the_message_says_where_to_get_the_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KMNIST_DATA", raising=False)

    def offline(dest: Path, dataset: str) -> None:
        raise DataError("torchvision download failed: no network")

    monkeypatch.setattr(autoencoder.sources, "torchvision_download", offline)
    with pytest.raises(DataError) as error:
        load_dataset("kmnist", log=lambda _: None)
    message = str(error.value)
    assert message.startswith("could not get KMNIST") and "https://github.com/rois-codh/kmnist" in message
    assert "KMNIST_DATA=PATH" in message and "pip" not in message


def test_real_fashion_mnist_has_the_split_and_its_classes_when_available():
    path = os.environ.get("FASHION_MNIST_DATA")
    if not path:
        pytest.skip("FASHION_MNIST_DATA is not set")
    splits = load_dataset("fashion-mnist", log=lambda _: None)
    assert (len(splits.train_x), len(splits.valid_x), len(splits.test_x)) == (50_000, 10_000, 10_000)
    assert splits.test_y[0] == 9 and sorted(set(splits.test_y.tolist())) == list(range(10))  # an ankle boot first


@pytest.mark.slow
def test_the_code_size_table_reads_every_run_below_its_folder_each_beside_its_own_datasets_pca(
    kmnist_run, kmnist, tiny_mnist, tmp_path, monkeypatch
):
    out = tmp_path / "sizes"
    assert train(out, tiny_mnist, "--model", "2D", "--epochs", "1") == 0
    shutil.copytree(kmnist_run, out / "kmnist")
    monkeypatch.setenv("KMNIST_DATA", str(kmnist))
    assert plot(plot_training, out, "--sweep", "--data", str(tiny_mnist)) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    ours = [(r["dataset"], r["model"], r["run"]) for r in rows if r["code"] != "reference"]
    assert ours == [("MNIST", "2D", "."), ("KMNIST", "3D", "kmnist"), ("KMNIST", "4x4", "kmnist")]
    assert len({r["pca_test_mse"] for r in rows if r["model"] in ("3D", "2D")}) == 2  # two datasets' PCA
    assert (out / "sweep.png").is_file()
