"""A final run on the training and validation images together (--train-on-validation, issue 27
section 2) says so everywhere and pretends to no validation loss; and AdamW can leave the 1-D
parameters undecayed (--no-decay-1d, a lever of section 3)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import plot_training
from autoencoder.checkpoint import check_settings
from autoencoder.cli import training_command
from autoencoder.errors import UserError
from autoencoder.files import OutputPaths, load_info
from autoencoder.recipes import TrainConfig, make_optimizer
from autoencoder.sources import load_dataset
from autoencoder.training import data_tensors
from conftest import one_error_line, train

BOTH = ("--model", "3D", "--epochs", "2", "--train-on-validation")


@pytest.fixture(scope="module")
def final_run(tmp_path_factory: pytest.TempPathFactory, tiny_mnist: Path) -> Path:
    out = tmp_path_factory.mktemp("final")
    assert train(out, tiny_mnist, *BOTH) == 0
    return out


def test_it_trains_on_the_training_images_then_the_validation_images(tiny_mnist):
    splits = load_dataset("mnist", tiny_mnist, log=lambda _: None)
    train_x = data_tensors(splits, None, "cpu", with_validation=True)["train"].numpy()
    assert np.array_equal(train_x, np.concatenate([splits.train_x, splits.valid_x]))
    assert len(data_tensors(splits, 70, "cpu", with_validation=True)["train"]) == 70  # --limit: the first N of both
    with pytest.raises(UserError, match="more than the 80 training and validation images"):
        data_tensors(splits, 81, "cpu", with_validation=True)


def test_its_info_records_it_and_holds_no_validation_loss(final_run):
    info = load_info(OutputPaths.of(final_run, "3D").info)
    assert info["config"]["train_on_validation"] is True
    assert info["validation loss"] == [] and len(info["training loss"]) == 2
    assert "test mse" in info


def test_its_log_says_what_it_trained_on_and_has_no_validation_column(final_run):
    log = OutputPaths.of(final_run, "3D").log.read_text()
    assert "Trained on the training and validation images (--train-on-validation): no validation loss" in log
    assert "VL" not in log and "validation loss," not in log
    rows = [line.split() for line in log.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [len(row) for row in rows] == [3, 3]  # epoch, training loss, seconds


def test_its_loss_figure_draws_no_validation_curve_and_its_title_says_why(final_run):
    info = load_info(OutputPaths.of(final_run, "3D").info)
    fig = plot_training.plot_training("3D model", info, [])
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["training"]
    assert "training and validation images (--train-on-validation)" in ax.get_title().replace("\n", " ")


def test_the_commands_it_names_keep_the_option(final_run, tiny_mnist):
    info = load_info(OutputPaths.of(final_run, "3D").info)
    assert "--train-on-validation" in training_command(info["config"], "--resume").split()
    config = TrainConfig("3D", epochs=2, output_dir=str(final_run), data_sha256=info["config"]["data_sha256"])
    with pytest.raises(UserError, match=r"train_on_validation True \(now False\)"):
        check_settings(config, info["config"], Path("info"))


def test_resume_without_the_option_is_refused_in_one_line(final_run, tiny_mnist, capsys):
    assert train(final_run, tiny_mnist, "--model", "3D", "--epochs", "2", "--resume") == 2
    line = one_error_line(capsys.readouterr().err)
    resume, restart = re.findall(r"`([^`]*)`", line)
    assert "train_on_validation True (now False)" in line
    assert "--train-on-validation" in resume.split() and "--train-on-validation" not in restart.split()


def test_runs_recorded_before_the_options_existed_resume_as_they_trained():
    config = TrainConfig("3D", epochs=2)
    saved = {k: v for k, v in config.as_dict().items() if k not in ("train_on_validation", "decay_1d")}
    check_settings(config, saved, Path("info"))  # no refusal: they decayed every parameter, on training images


def test_no_decay_1d_leaves_batch_norm_and_biases_undecayed_and_decays_the_weights():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer, _ = make_optimizer(model.parameters(), TrainConfig("30D", decay_1d=False), steps_per_epoch=1)
    decay = {p.dim(): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay == {2: 0.5, 1: 0.0}
    default, _ = make_optimizer(model.parameters(), TrainConfig("30D"), steps_per_epoch=1)
    assert [group["weight_decay"] for group in default.param_groups] == [0.5]


def test_no_decay_1d_is_recorded_and_named_in_the_commands(tmp_path, tiny_mnist):
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "1", "--no-decay-1d") == 0
    config = load_info(OutputPaths.of(tmp_path, "3D").info)["config"]
    assert config["decay_1d"] is False
    assert "--no-decay-1d" in training_command(config).split()


def test_the_code_size_and_code_quality_tables_set_a_final_run_beside_pca_of_the_images_it_trained_on(
    final_run, tiny_mnist, tmp_path
):
    """Each row says how many images its run trained on, and PCA beside a final run is fitted on
    the training and validation images: the tiny set's 60 and 60 + 20."""
    shutil.copytree(final_run, tmp_path / "final")
    assert train(tmp_path / "plain", tiny_mnist, "--model", "3D", "--epochs", "2") == 0
    figures = ["--data", str(tiny_mnist), "--format", "png", "--output-dir"]
    assert plot_training.main([*figures, str(tmp_path / "final")]) == 0
    quality = (tmp_path / "final" / "code_quality.txt").read_text()
    assert "fitted on 80 training and validation images." in quality
    assert plot_training.main(["--sweep", *figures, str(tmp_path)]) == 0
    table = json.loads((tmp_path / "sweep.json").read_text())
    rows = {r["run"]: r for r in table["rows"] if r["code"] != "reference"}
    assert {run: (r["training_images"], r["with_validation"]) for run, r in rows.items()} == {
        "plain": (60, False),
        "final": (80, True),
    }
    assert rows["plain"]["pca_test_mse"] != rows["final"]["pca_test_mse"]
    assert rows["final"]["knn_accuracy"] is not None  # from the code_quality.json beside it
    assert "MNIST on 60 training images, MNIST on 80 training and validation images" in table["note"]
