"""Nothing lost to a forgotten flag: an unfinished run is never overwritten unless the user says
so, --resume says plainly when it has nothing to resume, a finished run keeps its results and
not its checkpoint, and a bad option is one line that points at --help."""

from __future__ import annotations

import signal

import pytest
import torch

import auto_encoder
import bench_train
import gpu_check
import plot_3D
import plot_4x4
import plot_training
from autoencoder.files import OutputPaths, load_info
from autoencoder.recipes import TrainConfig, change_learning_rate, make_optimizer
from conftest import assert_same_weights, signal_at_step, stamp, train, weights_of

EPOCHS = ("--model", "3D", "--epochs", "2")


@pytest.fixture
def interrupted(tmp_path, tiny_mnist, monkeypatch):
    """An output folder holding a 3D run stopped by SIGTERM in its second epoch."""
    signal_at_step(monkeypatch, 5)
    assert train(tmp_path, tiny_mnist, *EPOCHS) == 128 + signal.SIGTERM
    monkeypatch.undo()
    return tmp_path


@pytest.mark.slow
def test_a_rerun_without_resume_refuses_to_overwrite_an_unfinished_run_and_names_the_ways_on(
    interrupted, tiny_mnist, capsys
):
    paths = OutputPaths.of(interrupted, "3D")
    before = {p: stamp(p) for p in interrupted.iterdir()}
    capsys.readouterr()
    assert train(interrupted, tiny_mnist, *EPOCHS) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {paths.checkpoint} holds an unfinished run")
    for words in ("the 3D model at epoch 1 of 2", "recipe modern", "--resume", "--restart", "--output-dir"):
        assert words in err, words
    assert {p: stamp(p) for p in interrupted.iterdir()} == before


@pytest.mark.slow
def test_restart_discards_the_unfinished_run_and_trains_from_scratch(interrupted, tiny_mnist, capsys):
    assert train(interrupted, tiny_mnist, *EPOCHS, "--restart") == 0
    assert "3D: removing the earlier run's files in" in capsys.readouterr().out
    info = load_info(OutputPaths.of(interrupted, "3D").info)
    assert len(info["training loss"]) == 2


@pytest.mark.slow
def test_a_finished_run_is_replaced_only_with_restart(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *EPOCHS) == 0
    first = load_info(OutputPaths.of(tmp_path, "3D").info)
    before = {p: stamp(p) for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert train(tmp_path, tiny_mnist, *EPOCHS) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path}/ holds a finished run of the 3D model" in err
    assert "--restart" in err and {p: stamp(p) for p in tmp_path.iterdir()} == before
    assert train(tmp_path, tiny_mnist, *EPOCHS, "--restart") == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "removing" in line]
    assert said == [
        f"3D: removing the earlier run's files in {tmp_path}/ (auto_encoder_3D_info.pkl.gz, "
        "auto_encoder_3D_weights.pt, auto_encoder_3D_codes.pt, auto_encoder_3D_init.pt, auto_encoder_3D.txt)"
    ]
    assert load_info(OutputPaths.of(tmp_path, "3D").info)["training loss"] == first["training loss"]


@pytest.mark.slow
def test_resume_with_nothing_to_resume_says_so_plainly_and_trains_from_scratch(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *EPOCHS, "--resume") == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "--resume found" in line]
    assert said == [
        f"3D: --resume found no checkpoint and no finished run in {tmp_path}/: starting from scratch (epoch 1 of 2)"
    ]
    assert len(load_info(OutputPaths.of(tmp_path, "3D").info)["training loss"]) == 2


@pytest.mark.slow
def test_a_finished_model_keeps_its_results_not_its_checkpoint_and_resume_re_evaluates_them(
    tmp_path, tiny_mnist, capsys
):
    assert train(tmp_path, tiny_mnist, *EPOCHS) == 0
    paths = OutputPaths.of(tmp_path, "3D")
    assert not paths.checkpoint.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (paths.log, paths.info, paths.init, paths.weights, paths.codes)
    )
    first, weights = load_info(paths.info), weights_of(paths.weights)
    assert train(tmp_path, tiny_mnist, *EPOCHS, "--resume") == 0
    assert "3D: already trained for 2 epochs; --resume only re-evaluates it" in capsys.readouterr().out
    again = load_info(paths.info)
    for key in ("training loss", "validation loss", "epoch time", "test mse", "config"):
        assert again[key] == first[key], key
    assert_same_weights(weights_of(paths.weights), weights)
    assert not paths.checkpoint.exists()


def test_a_new_peak_rate_on_resume_follows_that_peaks_schedule_from_where_the_run_stopped():
    steps_per_epoch, done = 10, 17
    old, new = TrainConfig("3D", epochs=3), TrainConfig("3D", epochs=3, lr=0.01)

    def stepped(config: TrainConfig, resumed_as: TrainConfig | None = None) -> list:
        optimizer, scheduler = make_optimizer([torch.nn.Parameter(torch.zeros(2))], config, steps_per_epoch)
        for _ in range(done):
            optimizer.step()
            scheduler.step()
        if resumed_as is not None:
            change_learning_rate(optimizer, resumed_as, done, 3 * steps_per_epoch)
        return [(group["lr"], group["betas"]) for group in optimizer.param_groups]

    assert stepped(old, resumed_as=new) == stepped(new)
    assert stepped(old, resumed_as=new) != stepped(old)


@pytest.mark.parametrize(
    "script, argv, words",
    [
        (auto_encoder, ["--epochs", "1.5"], "argument --epochs: must be a positive integer, not 1.5"),
        (auto_encoder, ["--epochs", "-1"], "argument --epochs: must be a positive integer, not -1"),
        (auto_encoder, ["--dropout", "1"], "argument --dropout: must be a number from 0 up to"),
        (auto_encoder, ["--resume", "--restart"], "not allowed with argument"),
        (auto_encoder, ["--banana"], "unrecognized arguments: --banana"),
        (plot_training, ["--knn-train", "0"], "argument --knn-train: must be a positive integer, not 0"),
        (plot_3D, ["--format", "bmp"], "argument --format"),
        (plot_4x4, ["--dataset", "cifar"], "argument --dataset: invalid choice"),
        (bench_train, ["--steps", "x"], "argument --steps: must be a positive integer, not x"),
        (gpu_check, ["--timed-epochs", "0"], "argument --timed-epochs: must be a positive integer, not 0"),
    ],
)
def test_a_bad_option_of_any_script_is_one_error_line_that_points_at_help(script, argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "usage:" not in err, err
    assert words in err and err.rstrip().endswith("--help"), err
