"""What a run records is what it did and what it was given (issue 25, sections 1 and 2): the data
by what it is, the settings it trained with, one run's files in a folder, and every valid input
trained, every invalid one refused in one line with a command that works. Each test failed on the
trainer before these fixes."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

import auto_encoder
import autoencoder.datasets
import plot_3D
import plot_training
from autoencoder import training
from autoencoder.errors import UserError
from autoencoder.files import OutputPaths, load_info, torch_load
from autoencoder.model import AutoEncoder, load_model
from autoencoder.recipes import TrainConfig
from autoencoder.sources import load_dataset
from conftest import ROOT, one_error_line, signal_at_step, stamp, tiny_splits, train, write_mnist_pickle

ONE_EPOCH = ("--model", "3D", "--epochs", "1")


def stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: stamp(p) for p in folder.iterdir()} if folder.exists() else {}


def refused(capsys: pytest.CaptureFixture, folder: Path, before: dict, *fragments: str) -> str:
    """One `error:` line holding every fragment, and the folder as it was."""
    line = one_error_line(capsys.readouterr().err)
    assert all(f in line for f in fragments), line
    assert stamps(folder) == before
    return line


def tiny_sha(tiny_mnist: Path) -> str:
    return load_dataset("mnist", tiny_mnist, log=lambda _: None).sha256


# -- 1a. The data, by what it is -----------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("FASHION_MNIST_DATA"), reason="needs FASHION_MNIST_DATA")
def test_fashion_mnist_files_given_as_mnist_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--data",
        os.environ["FASHION_MNIST_DATA"],
        "--epochs",
        "1",
        "--limit",
        "500",
        "--model",
        "2D",
        "--output-dir",
        str(out),
    ]
    assert auto_encoder.main(argv) == 2
    refused(capsys, out, {}, "holds Fashion-MNIST, not MNIST: pass --dataset fashion-mnist")


def test_files_known_as_another_dataset_are_refused(tmp_path, tiny_mnist, monkeypatch, capsys):
    monkeypatch.setitem(autoencoder.datasets.KNOWN_DATA, tiny_sha(tiny_mnist), "fashion-mnist")
    assert train(tmp_path / "out", tiny_mnist, *ONE_EPOCH) == 2
    refused(capsys, tmp_path / "out", {}, "holds Fashion-MNIST, not MNIST: pass --dataset fashion-mnist")


def test_files_it_cannot_tell_apart_train_with_a_warning_that_names_the_assumption(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    warning = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "is not a copy of MNIST this suite knows" in warning[0]
    assert "training and drawing them as MNIST, as --dataset says" in warning[0]


def test_a_run_records_its_data_by_sha256_and_no_path_of_the_machine(tmp_path, tiny_mnist):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    paths = OutputPaths.of(tmp_path, "3D")
    config = load_info(paths.info)["config"]
    assert config["data_sha256"] == tiny_sha(tiny_mnist) and "data_source" not in config
    log = paths.log.read_text()
    assert str(tmp_path) not in log and str(tiny_mnist) not in log
    assert f"Data OK: MNIST, images sha256 {tiny_sha(tiny_mnist)}." in log
    assert torch.load(paths.codes, weights_only=True)["config"]["data_sha256"] == tiny_sha(tiny_mnist)


def test_the_committed_reference_runs_record_no_path_of_the_machine_that_made_them():
    results = ROOT / "docs" / "results"
    for info in results.rglob("*_info.pkl.gz"):
        assert "data_source" not in load_info(info).get("config", {}), info
    for log in results.rglob("auto_encoder_*.txt"):
        assert not any(line.startswith(">>> /") for line in log.read_text().splitlines()), log


def test_the_plot_scripts_refuse_other_images_than_the_run_trained_on(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    other = write_mnist_pickle(tmp_path / "other.pkl.gz", tiny_splits(seed=1))
    before = stamps(tmp_path)
    capsys.readouterr()
    assert plot_3D.main(["--output-dir", str(tmp_path), "--data", str(other), "--no-explorer"]) == 2
    refused(capsys, tmp_path, before, "trained on other images", "pass the files it trained on with --data")


# -- 1b. --resume keeps the trained settings -----------------------------------------------


def test_resume_with_another_lr_device_or_precision_keeps_a_finished_runs_settings(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH, "--lr", "0.005") == 0
    paths = OutputPaths.of(tmp_path, "3D")
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH, "--resume", "--lr", "0.01", "--precision", "bf16") == 0
    info = load_info(paths.info)
    assert info["config"]["lr"] == 0.005 and info["config"]["precision"] == "fp32" and info["changes"] == []
    assert "lr 0.005, batch 20, fp32" in paths.log.read_text()


def test_an_lr_changed_mid_run_is_recorded_with_the_epoch_it_took_effect_from(tmp_path, tiny_mnist, monkeypatch):
    signal_at_step(monkeypatch, 4)  # in the second of three epochs (three steps each)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "3", "--lr", "0.005") == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "3", "--lr", "0.01", "--resume") == 0
    paths = OutputPaths.of(tmp_path, "3D")
    info = load_info(paths.info)
    assert info["config"]["lr"] == 0.005
    assert info["changes"] == [{"epoch": 2, "step": 1, "setting": "lr", "from": 0.005, "to": 0.01}]
    assert "Changed on --resume: lr 0.005 -> 0.01 from epoch 2 (step 2)." in paths.log.read_text()
    assert plot_training.describe(info).startswith("3 epochs, lr 0.005 -> 0.01 from epoch 2 (step 2)")


# -- 1c. One run's files in a folder -------------------------------------------------------


def test_restart_removes_the_old_runs_files_before_the_new_run_writes_any(tmp_path, tiny_mnist, monkeypatch):
    """A --restart that dies before its first checkpoint leaves nothing --resume would continue."""
    signal_at_step(monkeypatch, 2)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    monkeypatch.undo()
    real_step = training.train_step

    def dies(state, x):
        raise RuntimeError("the process died")

    monkeypatch.setattr(training, "train_step", dies)
    with pytest.raises(RuntimeError, match="the process died"):
        train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2", "--restart")
    monkeypatch.setattr(training, "train_step", real_step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto_encoder_3D_init.pt"]


def test_overwriting_a_finished_run_needs_restart_and_writes_nothing_without(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    before = stamps(tmp_path)
    capsys.readouterr()
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 2
    refused(capsys, tmp_path, before, "holds a finished run of the 3D model", "--restart`")


def test_a_model_named_twice_is_refused(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path / "out", tiny_mnist, "--model", "3D,3D", "--epochs", "1") == 2
    refused(capsys, tmp_path / "out", {}, "--model names 3D more than once")


def test_the_plot_scripts_refuse_a_folder_holding_files_of_two_runs(tmp_path, tiny_mnist, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        assert train(folder, tiny_mnist, *ONE_EPOCH, "--seed", "1" if folder == second else "0") == 0
    shutil.copy(OutputPaths.of(second, "3D").weights, OutputPaths.of(first, "3D").weights)
    before = stamps(first)
    capsys.readouterr()
    assert plot_3D.main(["--output-dir", str(first), "--data", str(tiny_mnist), "--no-explorer"]) == 2
    refused(capsys, first, before, "holds files of two runs of the 3D model", "--restart`")


# -- 1d and 2a. Every valid size trains, every impossible one is refused ---------------------


def test_a_limit_beyond_the_training_images_is_refused(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path / "out", tiny_mnist, *ONE_EPOCH, "--limit", "100") == 2
    refused(capsys, tmp_path / "out", {}, "--limit 100 is more than the 60 training images of MNIST")


@pytest.mark.parametrize("limit, batch", [("41", "20"), ("21", "20"), ("3", "2")])
def test_a_one_image_last_batch_joins_the_batch_before_it_and_says_so_once(tmp_path, tiny_mnist, capsys, limit, batch):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH, "--limit", limit, "--batch-size", batch) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "joins the batch before it" in line]
    assert said == [
        f"3D: the last batch of each epoch would hold one image, which batch norm cannot train on; "
        f"it joins the batch before it ({int(batch) + 1} images)"
    ]


@pytest.mark.parametrize(
    "argv, words",
    [(("--batch-size", "1"), "--batch-size 1 cannot train"), (("--limit", "1"), "--limit 1 leaves one training image")],
)
def test_what_batch_norm_cannot_train_on_is_refused_before_anything_is_written(
    tmp_path, tiny_mnist, capsys, argv, words
):
    assert train(tmp_path / "out", tiny_mnist, *ONE_EPOCH, *argv) == 2
    refused(capsys, tmp_path / "out", {}, words)


# -- 2b, 2c. Honest eval-mode outputs; the caller's mode kept --------------------------------


def test_the_saved_weights_carry_batch_norm_statistics_of_the_trained_weights(tmp_path, tiny_mnist):
    from autoencoder.training import recompute_batch_norm

    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    paths = OutputPaths.of(tmp_path, "3D")
    model = load_model(paths.weights)
    train_x = torch.from_numpy(load_dataset("mnist", tiny_mnist, log=lambda _: None).train_x)
    saved = {name: b.clone() for name, b in model.named_buffers() if "running" in name}
    recompute_batch_norm(model, train_x, "fp32")
    assert all(
        torch.allclose(saved[name], b, rtol=1e-5, atol=1e-6) for name, b in model.named_buffers() if "running" in name
    )


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_leaves_the_model_in_the_mode_the_caller_had_it_in(training):
    from autoencoder.training import evaluate

    model = AutoEncoder("3D").train(training)
    evaluate(model, torch.rand(4, 784), "fp32")
    assert model.training == training and all(m.training == training for m in model.modules())


def test_eval_mode_restores_the_mode_when_the_body_fails():
    from autoencoder.training import eval_mode

    model = AutoEncoder("3D").train()
    with pytest.raises(ValueError, match="the body failed"), eval_mode(model):
        raise ValueError("the body failed")
    assert model.training


# -- 2d, 2e, 2f. Errors in the user's words, advice that works --------------------------------


def test_a_truncated_checkpoint_is_called_damaged_and_a_newer_torchs_file_is_not(
    tmp_path, tiny_mnist, monkeypatch, capsys
):
    signal_at_step(monkeypatch, 2)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    monkeypatch.undo()
    checkpoint = OutputPaths.of(tmp_path, "3D").checkpoint

    def newer_torch(*args, **kwargs):
        raise RuntimeError(
            "Attempted to read a PyTorch file with version 99, but the maximum supported version "
            "for reading is 13. The version of your PyTorch installation may be too old, ..."
        )

    monkeypatch.setattr(torch, "load", newer_torch)
    with pytest.raises(UserError, match="written by a newer PyTorch") as newer:
        torch_load(checkpoint, "cpu", "discard it with --restart")
    assert "--restart" not in str(newer.value) and "delete" not in str(newer.value)
    monkeypatch.undo()
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"is damaged or truncated .*; discard it with --restart"):
        torch_load(checkpoint, "cpu", "discard it with --restart")


def test_a_bug_while_reading_a_checkpoint_is_not_called_damage(tmp_path, tiny_mnist, monkeypatch):
    signal_at_step(monkeypatch, 2)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    monkeypatch.undo()
    monkeypatch.setattr(torch, "load", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        torch_load(OutputPaths.of(tmp_path, "3D").checkpoint, "cpu", "discard it with --restart")


def test_the_weights_loader_given_an_info_pickle_says_what_the_file_is(tmp_path, tiny_mnist):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    with pytest.raises(UserError) as error:
        load_model(OutputPaths.of(tmp_path, "3D").info)
    assert "is a gzip file (a training-info pickle?), not a weights" in str(error.value)
    assert "weights_only" not in str(error.value)


def test_a_plot_of_an_unfinished_run_names_the_command_that_finishes_it_and_that_command_works(
    tmp_path, tiny_mnist, monkeypatch, capsys
):
    signal_at_step(monkeypatch, 2)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    monkeypatch.undo()
    capsys.readouterr()
    assert plot_3D.main(["--output-dir", str(tmp_path), "--data", str(tiny_mnist)]) == 2
    line = one_error_line(capsys.readouterr().err)
    command = line.split("finish it with `")[1].split("`")[0]
    assert command == f"python auto_encoder.py --model 3D --epochs 2 --batch-size 20 --output-dir {tmp_path} --resume"
    argv = [*command.split()[2:], "--data", str(tiny_mnist), "--precision", "fp32", "--device", "cpu"]
    assert auto_encoder.main(argv) == 0


def test_a_resume_with_other_settings_names_both_commands_that_work(tmp_path, tiny_mnist, monkeypatch, capsys):
    signal_at_step(monkeypatch, 2)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    monkeypatch.undo()
    capsys.readouterr()
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "3", "--resume") == 2
    line = one_error_line(capsys.readouterr().err)
    resume, restart = (part.split("`")[0] for part in line.split("`")[1::2])
    assert resume.endswith("--epochs 2 --batch-size 20 --output-dir " + str(tmp_path) + " --resume")
    assert restart.endswith("--epochs 3 --batch-size 20 --output-dir " + str(tmp_path) + " --restart")
    for command in (resume, restart):
        assert auto_encoder.main([*command.split()[2:], "--data", str(tiny_mnist), "--precision", "fp32"]) == 0


def test_a_full_disk_is_reported_in_the_operating_systems_words(tmp_path, tiny_mnist, monkeypatch, capsys):
    real_write = Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith(".auto_encoder_3D_weights.pt"):
            raise OSError(28, os.strerror(28))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot write {OutputPaths.of(tmp_path, '3D').weights} (No space left on device)" in line
    assert "enforce fail" not in line


# -- 2g, 2h. Every setting checked; each number's precision said --------------------------------


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("precision", "auto", "unknown precision"),
        ("compile", "fast", "unknown --compile mode"),
        ("device", "gpu0", "unknown device"),
        ("adamw", "fast", "unknown AdamW implementation"),
        ("seed", -1, "--seed must be"),
        ("limit", 0, "--limit must be"),
        ("checkpoint_interval", -1, "--checkpoint-interval"),
        ("epochs", 2.5, "--epochs and --batch-size must be positive integers"),
    ],
)
def test_every_setting_of_a_configuration_is_checked(field, value, words):
    with pytest.raises(UserError, match=words):
        TrainConfig(**{field: value})


def test_the_log_says_in_which_precision_each_number_was_measured(tmp_path, tiny_mnist):
    assert train(tmp_path, tiny_mnist, *ONE_EPOCH) == 0
    log = OutputPaths.of(tmp_path, "3D").log.read_text()
    assert "(TL: training loss, VL: validation loss, both in fp32; Time: seconds.)" in log
    assert "MSE on test data (fp32):" in log
