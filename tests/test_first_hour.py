"""A newcomer's first hour: figures that say what they show, words that agree with the code, and a
data cache that keeps what --prepare-data promises and nothing a failed download left."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess

import numpy as np
import pytest

import auto_encoder
import autoencoder.sources
import plot_training
from autoencoder.datasets import read_dataset
from autoencoder.errors import DataError
from autoencoder.figures import pyplot, use_file_backend
from autoencoder.files import load_info
from autoencoder.reference import original_run
from autoencoder.sources import MNIST_SHA256, load_dataset
from autoencoder.trained_run import dataset_of_info
from conftest import ROOT, tiny_splits, write_mnist_pickle

README = (ROOT / "README.md").read_text()


def losses(*values: float) -> dict:
    return {
        "training loss": list(values),
        "validation loss": [v * 0.9 for v in values],
        "test mse": values[-1],
        "config": {"recipe": "modern", "dataset": "mnist", "limit": 5000},
    }


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
    assert (
        "final test MSE as a dashed grey line" in plot_training.__doc__ and "dotted line" not in plot_training.__doc__
    )
    fig = plot_training.plot_training("3D model", losses(0.05, 0.04), [original_run("3D")])
    lines = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("test MSE after")]
    assert [line.get_linestyle() for line in lines] == ["--"]
    pyplot().close(fig)


RUN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && python auto_encoder.py"
)
TEST_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements-dev.txt && python -m pytest -q"
)
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def commands(markdown: str) -> list[str]:
    """The lines of the indented code blocks, in order: what a reader copies."""
    return [line[4:] for line in markdown.splitlines() if line.startswith("    ") and line.strip()]


def test_the_readmes_first_commands_install_and_run_the_main_job_and_the_tests():
    assert commands(README)[:2] == [RUN_COMMAND, TEST_COMMAND]
    assert README.index(TEST_COMMAND) < README.index("\n## ")


def test_the_cpu_commands_are_the_same_one_liners_with_pytorchs_cpu_index():
    with_index = [c.replace("pip install ", f"pip install {CPU_INDEX} ") for c in (RUN_COMMAND, TEST_COMMAND)]
    assert commands(README)[2:4] == with_index
    assert README.index(with_index[1]) < README.index("\n## ")


def script_and_options(command: str) -> tuple[str, list[str]] | None:
    """('plot_3D', ['--output-dir', 'x']) for `python plot_3D.py --output-dir x`; None for other commands."""
    words = shlex.split(command)
    if words[:1] == ["python"] and len(words) > 1 and words[1].endswith(".py"):
        return words[1][:-3], words[2:]
    return None


def test_every_python_command_in_the_readme_is_accepted_by_its_script():
    scripts = [
        found for line in commands(README) for part in line.split("&&") if (found := script_and_options(part.strip()))
    ]
    assert {name for name, _ in scripts} >= {"auto_encoder", "plot_training", "plot_3D", "plot_4x4"}
    for name, options in scripts:
        importlib.import_module(name).parse_args(options)  # a bad option exits, failing the test


def test_the_short_trial_comes_first_and_its_figures_read_the_folder_it_trained_into():
    trial = README[README.index("## A short trial") : README.index("## The full run")]
    scripts = [script_and_options(line) for line in commands(trial)]
    assert [name for name, _ in scripts] == ["auto_encoder", "plot_training", "plot_3D", "plot_4x4"]
    trained = auto_encoder.parse_args(scripts[0][1])
    assert trained.limit and trained.epochs and "`--limit N`" in trial
    for name, options in scripts[1:]:
        assert importlib.import_module(name).parse_args(options).output_dir == trained.output_dir


def test_the_readme_stays_a_front_door_of_at_most_150_lines():
    assert len(README.splitlines()) <= 150, "move details to docs/results.md or another docs page"


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def local_targets(page: str) -> list[tuple[str, str]]:
    """Every relative link and image of `page` (Markdown or HTML) as (path from the repository root,
    #anchor or ''), and the requirement files its pip commands read."""
    text = (ROOT / page).read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'(?:src|href)="([^"]+)"', text)
    targets = []
    for link in links:
        if not re.match(r"[a-z]+:", link):  # not http:, https: or mailto:
            path, _, anchor = link.partition("#")
            targets.append(
                (os.path.normpath(os.path.join(os.path.dirname(page), path or os.path.basename(page))), anchor)
            )
    return targets + [(name, "") for name in re.findall(r"pip install .*?-r (\S+)", text)]


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_every_link_and_image_of_the_front_pages_is_a_tracked_file(page):
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = set(tracked.stdout.splitlines())
    targets = local_targets(page)
    assert targets
    for path, anchor in targets:
        assert path in files, f"{page} names {path}: not a tracked file"
        if anchor and path in files:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.MULTILINE)
            assert anchor in map(heading_anchor, headings), f"{page} links {path}#{anchor}: no such heading"


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
    monkeypatch.delenv("FASHION_MNIST_DATA", raising=False)  # else the shared copy is read, no fetch
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
    redrawn, kept = (
        [rounded(row) for row in json.loads((f / "sweep.json").read_text())["rows"]] for f in (folder, committed)
    )
    assert redrawn == kept
    table = (folder / "sweep.txt").read_text().split("\n\n", 1)[1].strip()
    assert table in (ROOT / "docs" / "code-size.md").read_text()
