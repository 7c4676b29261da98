"""Numerical faults: a diverging learning rate stops training and keeps the last good checkpoint.

Plain SGD (the original recipe), where a huge rate overflows to NaN at once, on `tiny_mnist`
in fp32 on the CPU, so that a lower rate resumed from the good checkpoint ends bit-identical
to a run that never diverged.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from autoencoder.files import OutputPaths, load_info
from conftest import assert_same_weights, linked_copy, one_error_line, signal_at_step, stamp, train, weights_of

pytestmark = pytest.mark.slow

# Plain SGD, where a huge rate overflows to NaN at once; three steps per epoch.
ORIGINAL = ("--model", "3D", "--epochs", "2", "--recipe", "original", "--limit", "60")


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, tiny_mnist) -> Path:
    """An original-recipe run stopped by SIGTERM early in epoch 2: a good checkpoint."""
    out = tmp_path_factory.mktemp("good") / "out"
    with pytest.MonkeyPatch.context() as monkeypatch:
        signal_at_step(monkeypatch, 4)
        assert train(out, tiny_mnist, *ORIGINAL) == 128 + signal.SIGTERM
    return out


def test_a_diverging_rate_stops_with_the_nan_message_and_a_lower_rate_resumes_from_the_last_good_checkpoint(
    tmp_path, tiny_mnist, good_checkpoint, capsys
):
    out = linked_copy(good_checkpoint, tmp_path / "out")
    paths = OutputPaths.of(out, "3D")
    before = stamp(paths.checkpoint)
    assert train(out, tiny_mnist, *ORIGINAL, "--resume", "--lr", "1e30") == 3
    line = one_error_line(capsys.readouterr().err)
    assert "nan" in line and "at epoch 2" in line
    assert f"last good checkpoint is kept in {paths.checkpoint}: lower --lr and rerun with --resume" in line
    assert stamp(paths.checkpoint) == before and not paths.weights.exists() and not paths.info.exists()

    assert train(out, tiny_mnist, *ORIGINAL, "--resume", "--lr", "1.0") == 0
    straight = tmp_path / "straight"
    assert train(straight, tiny_mnist, *ORIGINAL) == 0
    resumed, expected = load_info(paths.info), load_info(OutputPaths.of(straight, "3D").info)
    assert resumed["training loss"] == expected["training loss"]
    assert_same_weights(weights_of(paths.weights), weights_of(OutputPaths.of(straight, "3D").weights))


def test_a_signal_after_the_weights_went_nan_does_not_overwrite_the_good_checkpoint(
    tmp_path, tiny_mnist, good_checkpoint, monkeypatch, capsys
):
    out = linked_copy(good_checkpoint, tmp_path / "out")
    checkpoint = OutputPaths.of(out, "3D").checkpoint
    before = stamp(checkpoint)
    signal_at_step(monkeypatch, 2)  # the first step at 1e30 has already ruined the weights
    assert train(out, tiny_mnist, *ORIGINAL, "--resume", "--lr", "1e30") == 3
    line = one_error_line(capsys.readouterr().err)
    assert "weights became infinite or NaN" in line and "last good checkpoint is kept" in line
    assert stamp(checkpoint) == before


def test_divergence_before_any_checkpoint_does_not_claim_one(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, *ORIGINAL, "--lr", "1e30") == 3
    line = one_error_line(capsys.readouterr().err)
    assert "at epoch 1" in line and "No checkpoint was saved yet" in line
    assert not OutputPaths.of(tmp_path, "3D").checkpoint.exists()
