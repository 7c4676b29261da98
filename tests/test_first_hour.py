"""A newcomer's first hour: figures that say what they show, words that agree with the code, and a
data cache that keeps what --prepare-data promises and nothing a failed download left."""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

import auto_encoder
import autoencoder.sources
import plot_training
from conftest import ROOT, tiny_splits, write_mnist_pickle
from helpers import (MNIST_SHA256, DataError, dataset_of_info, load_dataset, load_info, original_run, pyplot,
                     read_dataset, use_file_backend)

README = (ROOT / "README.md").read_text()


def losses(*values: float) -> dict:
    return {"training loss": list(values), "validation loss": [v * 0.9 for v in values],
            "test mse": values[-1], "config": {"recipe": "modern", "dataset": "mnist", "limit": 5000}}


@pytest.fixture(autouse=True)
def file_backend():
    use_file_backend()


def test_a_one_epoch_run_is_drawn_inside_the_axes():
    fig = plot_training.plot_training("3D model", losses(0.23), [])
    top = fig.axes[0].get_ylim()[1]
    assert top >= 0.23 and not any("off the scale" in t.get_text() for t in fig.axes[0].texts)
    pyplot().close(fig)


def test_a_long_run_keeps_the_originals_axis_and_counts_what_lies_above_it():
    fig = plot_training.plot_training("3D model", losses(0.23, *[0.05] * 9), [])
    assert fig.axes[0].get_ylim() == (0, 0.1)
    assert any("off the scale (above 0.1): 2 values" in t.get_text() for t in fig.axes[0].texts)
    pyplot().close(fig)


def test_the_legend_never_covers_a_curve():
    fig = plot_training.plot_training("4x4 model", losses(*np.linspace(0.08, 0.007, 46)), [original_run("4x4")])
    fig.canvas.draw()
    axes, legend = fig.axes[0].get_window_extent(), fig.legends[0].get_window_extent()
    assert not axes.overlaps(legend)
    pyplot().close(fig)


def test_a_limited_run_says_so_in_its_figure_titles():
    fig = plot_training.plot_training("3D model", losses(0.05, 0.04), [])
    assert "on the first 5,000 training images (--limit)" in fig.axes[0].get_title()
    pyplot().close(fig)


def test_the_help_says_the_2016_test_mse_is_dashed_and_the_figure_draws_it_dashed():
    assert "final test MSE as a dashed grey line" in plot_training.__doc__ and "dotted line" not in plot_training.__doc__
    fig = plot_training.plot_training("3D model", losses(0.05, 0.04), [original_run("3D")])
    lines = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("test MSE after")]
    assert [line.get_linestyle() for line in lines] == ["--"]
    pyplot().close(fig)


def test_the_readme_puts_the_cpu_install_note_before_the_two_commands():
    first_command = README.index("pip install -r requirements.txt && python auto_encoder.py")
    assert 0 <= README.index("--index-url https://download.pytorch.org/whl/cpu") < first_command
    assert README.index("pip install -r requirements.txt && python -m pytest -q") > first_command


def test_the_readme_names_the_original_repository_cites_every_reference_and_gives_the_whole_sha256():
    body, references = README.split("## References")
    assert "mollymr305/mnist-autoencoder" in references
    for number in re.findall(r"^\[(\d+)\]", references, flags=re.M):
        assert f"[{number}]" in body, f"reference [{number}] is never cited"
    assert MNIST_SHA256 in README


def test_a_failed_download_leaves_no_empty_cache_folder(tmp_path, monkeypatch):
    def offline(dest, dataset="mnist"):
        raise DataError("no network")

    monkeypatch.setattr(autoencoder.sources, "torchvision_download", offline)
    monkeypatch.delenv("FASHION_MNIST_DATA", raising=False)   # else the shared copy is read, no fetch
    cache = tmp_path / "data" / "fashion-mnist"
    with pytest.raises(DataError, match="could not get Fashion-MNIST"):
        load_dataset("fashion-mnist", cache=cache, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_prepare_data_with_data_checks_the_files_and_copies_them_into_the_cache(tmp_path, monkeypatch, capsys):
    train, valid, test = tiny_splits()
    given = write_mnist_pickle(tmp_path / "given.pkl.gz", [train, (valid[0][:12], valid[1][:12]), test])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNIST_DATA", raising=False)
    assert auto_encoder.main(["--prepare-data", "--data", str(given), "--output-dir", "out"]) == 0
    assert "MNIST ready (data/, copied from" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    cached, original = load_dataset(cache="data", log=lambda line: None), read_dataset(given)
    for name in ("train_x", "train_y", "valid_x", "valid_y", "test_x", "test_y"):
        assert np.array_equal(getattr(cached, name), getattr(original, name)), name


def test_prepare_data_refuses_to_cache_a_split_the_cache_cannot_keep(tiny_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert auto_encoder.main(["--prepare-data", "--data", str(tiny_mnist)]) == 2
    assert "pass it with --data each time instead" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_every_reference_run_in_docs_results_names_its_dataset():
    infos = sorted((ROOT / "docs" / "results").rglob("*_info.pkl.gz"))
    assert infos
    for path in infos:
        assert dataset_of_info(load_info(path)) in ("mnist", "fashion-mnist"), path


def test_the_readmes_command_redraws_the_reference_loss_figures(tmp_path):
    """`python plot_training.py --output-dir docs/results/...` on a copy: the 2016 recipe's runs."""
    folder = tmp_path / "original-recipe"
    shutil.copytree(ROOT / "docs" / "results" / "original-recipe", folder)
    for figure in folder.glob("*_training.*"):
        figure.unlink()
    assert plot_training.main(["--output-dir", str(folder)]) == 0
    assert {f.name for f in folder.glob("*_training.jpg")} == {"3D_training.jpg", "4x4_training.jpg"}


def rounded(row: dict) -> dict:
    """A table row with its floats to 9 decimals: what stays put when the thread count changes."""
    return {key: round(value, 9) if isinstance(value, float) else value for key, value in row.items()}


def test_the_code_size_pages_command_redraws_its_committed_table_from_the_committed_runs(tmp_path):
    """`python plot_training.py --sweep --output-dir docs/results/code-size` on a copy gives the
    committed sweep.txt byte for byte and sweep.json's numbers (PCA's last digits move with the
    thread count), and docs/code-size.md shows that table."""
    if not (os.environ.get("MNIST_DATA") and os.environ.get("FASHION_MNIST_DATA")):
        pytest.skip("MNIST_DATA and FASHION_MNIST_DATA are not set (PCA needs both datasets)")
    committed = ROOT / "docs" / "results" / "code-size"
    folder = tmp_path / "code-size"
    shutil.copytree(committed, folder, ignore=shutil.ignore_patterns("sweep.*"))
    assert plot_training.main(["--sweep", "--output-dir", str(folder)]) == 0
    assert (folder / "sweep.txt").read_bytes() == (committed / "sweep.txt").read_bytes()
    redrawn, kept = ([rounded(row) for row in json.loads((f / "sweep.json").read_text())["rows"]]
                     for f in (folder, committed))
    assert redrawn == kept
    table = (folder / "sweep.txt").read_text().split("\n\n", 1)[1].strip()
    assert table in (ROOT / "docs" / "code-size.md").read_text()
