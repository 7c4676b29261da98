"""The plot scripts: every figure of the original and the new ones, from tiny trained runs."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import plot_3D
import plot_4x4
import plot_training
from autoencoder.analysis import PCA, knn_accuracy
from autoencoder.datasets import dataset_spec
from autoencoder.figures import pyplot, use_file_backend
from autoencoder.files import OutputPaths, load_info
from autoencoder.reference import original_run
from autoencoder.trained_run import train_command
from conftest import train

# The original project's output/ folder (its logs and Python 2 loss pickles), where one is at hand.
ORIGINAL_OUTPUT = Path(os.environ.get("ORIGINAL_OUTPUT", "/nonexistent"))
FIGURES_3D = ["3D_in", "3D_out_1", "3D_out_2", "3D_code_1", "3D_code_2", "3D_code_xy_1", "3D_code_xy_2", "3D_manifold"]
FIGURES_4x4 = ["4x4_in", "4x4_code_1", "4x4_code_2", "4x4_out_1", "4x4_out_2", "4x4_interpolation"]


def run(script, output_dir: Path, data: Path, *extra: str) -> int:
    return script.main(["--output-dir", str(output_dir), "--data", str(data), "--device", "cpu", *extra])


def assert_written(folder: Path, names: list[str], formats: tuple[str, ...] = ("jpg", "eps")) -> None:
    for name in names:
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            assert path.is_file() and path.stat().st_size > 0, f"{path.name} was not written"


@pytest.fixture
def outputs(tmp_path: Path, trained_output: Path) -> Path:
    """A private folder holding links to the shared tiny run, so figures land apart from it."""
    for path in trained_output.iterdir():
        (tmp_path / path.name).symlink_to(path)
    return tmp_path


@pytest.fixture(scope="module")
def sweep_output(tmp_path_factory: pytest.TempPathFactory, tiny_mnist: Path, trained_output: Path) -> Path:
    """2D and 2x2 trained for one tiny epoch, beside the info pickles of the 3D and 4x4 run."""
    out = tmp_path_factory.mktemp("sweep")
    assert train(out, tiny_mnist, "--model", "2D,2x2", "--epochs", "1") == 0
    for model in ("3D", "4x4"):
        shutil.copy(OutputPaths.of(trained_output, model).info, out)
    return out


class Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: str as latin-1 byte strings, NumPy's old module names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        header = (
            pickle.SHORT_BINSTRING + bytes([len(data)])
            if len(data) < 256
            else pickle.BINSTRING + struct.pack("<i", len(data))
        )
        self.write(header + data)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def write_python2_info(path: Path, info: dict) -> Path:
    with gzip.open(path, "wb") as f:
        Python2Pickler(f, protocol=2).dump(info)
    return path


@pytest.mark.slow
def test_plot_training_draws_each_models_losses_and_the_code_quality_table(outputs, tiny_mnist):
    assert run(plot_training, outputs, tiny_mnist) == 0
    assert_written(outputs, ["3D_training", "4x4_training"])
    table = json.loads((outputs / "code_quality.json").read_text())
    assert [row["model"] for row in table["rows"]] == ["3D", "4x4"]
    for row in table["rows"]:
        assert 0 <= row["knn_accuracy"] <= 1 and 0 <= row["pca_knn_accuracy"] <= 1
        assert row["test_mse"] > 0 and row["pca_test_mse"] > 0
    assert "| model | units | test MSE |" in (outputs / "code_quality.txt").read_text()


@pytest.mark.slow
def test_plot_3D_writes_every_figure_of_the_original_and_the_new_ones(outputs, tiny_mnist):
    assert run(plot_3D, outputs, tiny_mnist) == 0
    assert_written(outputs, FIGURES_3D)
    assert (outputs / "3D_code_evolution.gif").read_bytes()[:4] == b"GIF8"


@pytest.mark.slow
def test_figures_drawn_twice_from_the_same_outputs_are_byte_identical(outputs, tiny_mnist):
    formats = ("jpg", "eps", "png", "pdf", "svg", "gif")

    def draw() -> dict[str, bytes]:
        for script in (plot_3D, plot_training):
            assert run(script, outputs, tiny_mnist, "--format", ",".join(formats[:-1])) == 0
        return {p.name: p.read_bytes() for p in sorted(outputs.iterdir()) if p.suffix[1:] in formats}

    first, second = draw(), draw()
    assert len(first) == (len(FIGURES_3D) + 2) * 5 + 1  # 3D figures, 3D_ and 4x4_training in 5 formats, the GIF
    assert first == second
    assert b".tmp" not in first["3D_in.eps"] and b"%%CreationDate: Thu Jan 01 00:00:00 1970" in first["3D_in.eps"]


@pytest.mark.slow
def test_plot_4x4_writes_every_figure_in_each_format_asked_for(outputs, tiny_mnist):
    assert run(plot_4x4, outputs, tiny_mnist, "--format", "jpg,eps,png") == 0
    assert_written(outputs, FIGURES_4x4, ("jpg", "eps", "png"))


@pytest.mark.parametrize("script, model", [(plot_training, "both"), (plot_3D, "3D"), (plot_4x4, "4x4")])
def test_missing_training_outputs_name_the_command_to_run_first(script, model, tmp_path, tiny_mnist, capsys):
    assert run(script, tmp_path, tiny_mnist) == 2
    err = capsys.readouterr().err
    command = train_command(model, tmp_path)
    assert err.startswith("error: ") and err.count("\n") == 1 and f"`{command}` first" in err


@pytest.mark.slow
@pytest.mark.parametrize("script, model", [(plot_3D, "4x4"), (plot_3D, "10D"), (plot_4x4, "3D")])
def test_a_script_refuses_a_code_it_cannot_draw_in_one_line(script, model, outputs, tiny_mnist, capsys):
    assert run(script, outputs, tiny_mnist, "--model", model) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and model in err


@pytest.mark.slow
def test_a_python2_loss_pickle_is_read_and_drawn(tmp_path, tiny_mnist):
    losses = {
        "training loss": [np.float64(0.09), np.float64(0.05)],
        "validation loss": [np.float64(0.08), np.float64(0.04)],
    }
    path = write_python2_info(tmp_path / "auto_encoder_3D_info.pkl.gz", losses)
    assert b"numpy.core.multiarray" in gzip.decompress(path.read_bytes())
    info = load_info(path)
    assert info == {"training loss": [0.09, 0.05], "validation loss": [0.08, 0.04]}
    assert all(type(v) is float for v in info["training loss"])
    figures = tmp_path / "figures"
    assert run(plot_training, figures, tiny_mnist, "--info", str(path)) == 0
    assert_written(figures, ["3D_training"])


@pytest.mark.slow
@pytest.mark.skipif(not ORIGINAL_OUTPUT.is_dir(), reason="set ORIGINAL_OUTPUT to the original project's output/")
def test_the_2016_losses_kept_here_are_the_original_pickles_as_true_means(outputs, tiny_mnist):
    for model in ("3D", "4x4"):
        info = load_info(ORIGINAL_OUTPUT / f"auto_encoder_{model}_info.pkl.gz")
        kept = original_run(model)
        assert kept["training loss"] == pytest.approx([v * 101 / 100 for v in info["training loss"]], rel=1e-9)
        assert kept["validation loss"] == pytest.approx([v * 21 / 20 for v in info["validation loss"]], rel=1e-9)
    original = ORIGINAL_OUTPUT / "auto_encoder_3D_info.pkl.gz"
    assert run(plot_training, outputs, tiny_mnist, "--model", "3D", "--info", str(original)) == 0
    assert_written(outputs, ["3D_training"])


def test_the_2016_curves_are_drawn_under_the_3D_and_4x4_models_unless_left_out():
    ours = {"training loss": [0.06, 0.04], "validation loss": [0.06, 0.05], "test mse": 0.05}
    labels = lambda fig: [line.get_label() for line in fig.axes[0].lines]
    assert "validation (2016 original)" in labels(plot_training.plot_training("3D model", ours, [original_run("3D")]))
    assert original_run("10D") is None
    args = plot_training.parse_args(["--no-2016"])
    assert args.original is False and plot_training.parse_args([]).original is True


def test_pca_keeps_the_largest_variance_first_and_reports_what_it_leaves_out():
    u, v = torch.eye(784)[3], torch.eye(784)[500]
    a, b = torch.tensor([3.0, 3, -3, -3]), torch.tensor([1.0, -1, 1, -1])
    x = 0.5 + a[:, None] * u + b[:, None] * v  # a plane; variance 9 along u, 1 along v
    pca = PCA(x)
    mse = pca.mse_by_components(x)
    assert mse[:3] == pytest.approx([10 / 784, 1 / 784, 0], abs=1e-9)
    assert torch.allclose(pca.decode(pca.encode(x, 2)), x, atol=1e-5)
    assert torch.allclose(pca.encode(x, 1).abs().squeeze(), a.abs())


def test_knn_votes_for_the_majority_of_the_five_nearest_codes():
    train_codes = torch.tensor([[0.0], [1], [2], [10], [11], [12], [13]])
    train_labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    test_codes = torch.tensor([[0.5], [12.5], [9.0]])  # of the 5 nearest: 3 say 0; 4 say 1; 4 say 1

    def accuracy(truth: list[int]) -> float:
        return knn_accuracy(train_codes, train_labels, test_codes, torch.tensor(truth))

    assert accuracy([0, 1, 1]) == 1
    assert accuracy([1, 1, 0]) == pytest.approx(1 / 3)


def test_a_tied_knn_vote_goes_to_the_class_of_the_nearest_code():
    train_codes = torch.tensor([[0.0], [3], [1], [4]])
    train_labels = torch.tensor([0, 0, 1, 1])
    for test, nearest_label in ((-0.1, 0), (1.1, 1)):
        assert knn_accuracy(train_codes, train_labels, torch.tensor([[test]]), torch.tensor([nearest_label]), k=4) == 1


@pytest.mark.slow
def test_sweep_draws_test_mse_against_code_size_next_to_pca(sweep_output, tiny_mnist):
    assert run(plot_training, sweep_output, tiny_mnist, "--sweep") == 0
    assert_written(sweep_output, ["sweep"])
    rows = json.loads((sweep_output / "sweep.json").read_text())["rows"]
    ours = [r for r in rows if r["code"] != "reference"]
    assert [(r["model"], r["code"], r["units"]) for r in ours] == [
        ("2D", "vector", 2),
        ("3D", "vector", 3),
        ("2x2", "image", 4),
        ("4x4", "image", 16),
    ]
    pca = [r["pca_test_mse"] for r in sorted(ours, key=lambda r: r["units"])]
    assert pca == sorted(pca, reverse=True)
    assert all(r["per_image"] == pytest.approx(784 * r["test_mse"]) for r in rows)
    header = (
        "| dataset | model | seed | epochs | training images | MSE per pixel | squared error per image | PSNR (dB) | "
        "5-NN accuracy | PCA MSE per pixel |"
    )
    assert header in (sweep_output / "sweep.txt").read_text()
    references = [r for r in rows if r["code"] == "reference"]
    assert [round(r["per_image"] / (255 / 256) ** 2, 2) for r in references] == [3.00, 8.01, 13.87]


@pytest.mark.slow
def test_image_figures_work_for_any_image_code_size(sweep_output, tiny_mnist):
    assert run(plot_4x4, sweep_output, tiny_mnist, "--model", "2x2") == 0
    assert_written(sweep_output, [name.replace("4x4", "2x2") for name in FIGURES_4x4])


# -- The figures a trial run makes: titles inside the figure, the evolution's scale, what is reported --

LONG_WHEN = "after 500 epochs on the first 50,000 training images (--limit)"


def growing_trace(epochs: int = 3, images: int = 200) -> np.ndarray:
    """Codes of `images` test images whose spread grows tenfold an epoch, as a 3D run's trace."""
    cloud = np.random.default_rng(0).normal(size=(images, 3)) * np.array([1.0, 2.0, 0.5])
    return np.stack([cloud * 10.0**epoch for epoch in range(epochs + 1)])


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "kmnist"])
def test_a_limited_runs_3d_code_title_fits_inside_the_figure(dataset):
    use_file_backend()
    spec = dataset_spec(dataset)
    title = (
        f"3D code of the 10,000 {spec.test_set}, {LONG_WHEN} (test MSE 0.0609)\naxes span the central 99% of each unit"
    )
    fig = plot_3D.plot_code_3d(growing_trace()[-1], np.arange(200) % 10, title, spec)
    fig.canvas.draw()
    shown = fig.axes[0].title.get_window_extent()
    assert fig.bbox.x0 <= shown.x0 and shown.x1 <= fig.bbox.x1 and shown.y1 <= fig.bbox.y1
    assert "--limit" in fig.axes[0].get_title()
    pyplot().close(fig)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_each_frame_of_the_code_evolution_says_its_scale_against_the_last_frame(dataset):
    use_file_backend()
    trace = growing_trace()
    fig, draw = plot_3D.code_evolution(trace, np.arange(200) % 10, "3D code of 200 test images", dataset_spec(dataset))
    ax, legend = fig.axes[0], fig.legends[0]
    spans, titles = [], []
    for epoch in range(len(trace)):
        draw(epoch)
        fig.canvas.draw()
        spans.append(np.array([np.diff(limits())[0] for limits in (ax.get_xlim, ax.get_ylim, ax.get_zlim)]))
        titles.append(ax.get_title())
        z_axis = ax.zaxis.get_tightbbox(fig.canvas.get_renderer())  # its tick labels and its label
        assert not z_axis.overlaps(legend.get_window_extent()), f"the legend covers the z axis at epoch {epoch}"
    for span, title in zip(spans[:-1], titles):
        said = float(re.search(r"axes (\S+)x as wide as in the last frame", title).group(1))
        assert said == pytest.approx(np.exp(np.mean(np.log(span / spans[-1]))), rel=0.05)
    assert "axes 0.001x as wide" in titles[0] and "central 99%" in titles[-1]
    pyplot().close(fig)


def assert_reported(folder: Path, before: set[Path], printed: str) -> None:
    """Every file a script wrote into `folder` is named, with its format, in what it printed."""
    written = set(folder.iterdir()) - before
    assert written
    for path in written:
        assert path.stem in printed and path.suffix[1:] in printed, f"{path.name} was written but not reported"


def test_plot_training_names_every_loss_figure_it_writes(tmp_path, capsys):
    folder = tmp_path / "original-recipe"
    shutil.copytree(
        Path(__file__).parents[1] / "docs" / "results" / "original-recipe",
        folder,
        ignore=shutil.ignore_patterns("*_training.*"),
    )
    before = set(folder.iterdir())
    assert plot_training.main(["--output-dir", str(folder), "--format", "jpg,png"]) == 0
    assert_reported(folder, before, capsys.readouterr().out)


@pytest.mark.slow
def test_plot_training_names_every_figure_and_table_it_writes(outputs, tiny_mnist, capsys):
    before = set(outputs.iterdir())
    assert run(plot_training, outputs, tiny_mnist) == 0
    assert_reported(outputs, before, capsys.readouterr().out)
