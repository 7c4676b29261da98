"""The code-size table: every trained model below a folder, beside exact PCA with as many
components, in the field's units (squared error per image, PSNR), with Hinton & Salakhutdinov's
2006 numbers at 30 units as reference rows."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .analysis import KNN_NEIGHBOURS, KNN_TRAIN, PCA, fit_pca, knn_accuracy
from .datasets import DATASETS, DEFAULT_DATASET, Splits
from .errors import UserError
from .figures import pyplot
from .files import INFO_SUFFIX, PREFIX, OutputPaths, load_info
from .model import CodeSpec, parse_code
from .recipes import image_sets

PIXELS = 784
# Hinton & Salakhutdinov, "Reducing the dimensionality of data with neural networks", Science
# 313:504 (2006), Fig. 2 caption: MNIST test set, 30 units, average squared error per image,
# pixels byte/255 (a 784-1000-500-250-30 autoencoder, RBM pretraining, 60,000 training images).
HINTON_2006 = (("deep autoencoder", 3.00), ("logistic PCA", 8.01), ("PCA", 13.87))
HINTON_2006_UNITS = 30
HINTON_2006_TRAINING_IMAGES = 60_000
BYTE_255_TO_256 = (255 / 256) ** 2  # a squared error in byte/255 pixels, in this project's byte/256


def per_image(mse: float) -> float:
    """Mean squared error per pixel -> squared error summed over the image's 784 pixels."""
    return mse * PIXELS


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB, the peak taken as 1 (a pixel is byte/256, at most 255/256)."""
    return 10 * math.log10(1 / mse)


@dataclass(frozen=True)
class FinishedRun:
    """One trained model found below the table's folder."""

    folder: Path
    spec: CodeSpec
    info: dict
    knn_accuracy: float | None  # from code_quality.json beside it, if plot_training.py wrote one

    @property
    def dataset(self) -> str:
        return str(self.info["config"]["dataset"])

    @property
    def seed(self) -> int:
        return int(self.info["config"]["seed"])

    @property
    def with_validation(self) -> bool:
        """Whether it trained on the training and validation images together (a final run)."""
        return bool(self.info["config"].get("train_on_validation"))

    @property
    def baseline(self) -> tuple[str, bool]:
        """Its PCA's key: fitted on the images it trained on, with or without the validation images."""
        return self.dataset, self.with_validation


def _knn_of(folder: Path, model: str) -> float | None:
    table = folder / "code_quality.json"
    if not table.is_file():
        return None
    rows = [r for r in json.loads(table.read_text())["rows"] if r["model"] == model]
    return rows[0]["knn_accuracy"] if rows else None


def find_runs(folder: Path) -> list[FinishedRun]:
    """Every finished run whose info pickle lies in `folder` or below it: by dataset, vector
    codes before image codes, by size, final runs (on the validation images too) last, then by seed."""
    runs = []
    for path in folder.rglob(f"{PREFIX}*{INFO_SUFFIX}"):
        name = OutputPaths.model_of(path)
        if name is None:  # auto_encoder__info.pkl.gz names no model
            continue
        try:
            spec = parse_code(name)
        except UserError:
            continue
        info = load_info(path)
        if spec.name == name and "test mse" in info and "config" in info:
            runs.append(FinishedRun(path.parent, spec, info, _knn_of(path.parent, spec.name)))
    return sorted(
        runs,
        key=lambda r: (
            list(DATASETS).index(r.dataset),
            r.spec.is_image,
            r.spec.units,
            r.with_validation,
            r.seed,
            str(r.folder),
        ),
    )


@dataclass
class PcaBaseline:
    """Exact PCA of one dataset's training images: test error by number of components, and the
    k-NN accuracy of as many components as a code has units."""

    pca: PCA
    n_train: int
    mse: np.ndarray  # entry k: test MSE per pixel with k components
    splits: Splits
    knn_by_units: dict[int, float] = field(default_factory=dict)

    def knn(self, units: int) -> float:
        if units not in self.knn_by_units:
            train, test = (torch.from_numpy(x) for x in (self.splits.train_x[:KNN_TRAIN], self.splits.test_x))
            self.knn_by_units[units] = knn_accuracy(
                self.pca.encode(train, units),
                torch.from_numpy(self.splits.train_y[:KNN_TRAIN]),
                self.pca.encode(test, units),
                torch.from_numpy(self.splits.test_y),
            )
        return self.knn_by_units[units]


def pca_baseline(splits: Splits, runs: list[FinishedRun]) -> PcaBaseline:
    """PCA of the images `runs` (one dataset's, all final runs or none) trained on."""
    pca, n_train = fit_pca(splits, [r.info for r in runs])
    return PcaBaseline(pca, n_train, pca.mse_by_components(torch.from_numpy(splits.test_x)), splits)


def training_images(run: FinishedRun, splits: Splits) -> int:
    """How many images the run trained on (its --limit of the training images, or of both sets)."""
    return splits.training_count(run.info["config"].get("limit"), run.with_validation)


def table_rows(runs: list[FinishedRun], baselines: dict[tuple[str, bool], PcaBaseline], top: Path) -> list[dict]:
    """One row a run, PCA fitted on the same images beside it; then the 2006 reference rows
    (MNIST, 30 units)."""
    rows = []
    for run in runs:
        base = baselines[run.baseline]
        mse, pca_mse = float(run.info["test mse"]), float(base.mse[run.spec.units])
        rows.append(
            {
                "dataset": DATASETS[run.dataset].title,
                "model": run.spec.name,
                "units": run.spec.units,
                "code": "image" if run.spec.is_image else "vector",
                "seed": run.seed,
                "epochs": len(run.info["training loss"]),
                "training_images": training_images(run, base.splits),
                "with_validation": run.with_validation,
                "run": os.path.relpath(run.folder, top),
                "test_mse": mse,
                "per_image": per_image(mse),
                "psnr": psnr(mse),
                "knn_accuracy": run.knn_accuracy,
                "pca_test_mse": pca_mse,
                "pca_per_image": per_image(pca_mse),
                "pca_psnr": psnr(pca_mse),
                "pca_knn_accuracy": base.knn(run.spec.units),
                "pca_ratio": pca_mse / mse,
            }
        )
    if any(dataset == DEFAULT_DATASET for dataset, _ in baselines):
        rows += [
            {
                "dataset": "MNIST",
                "model": f"2006 {name} ({value:.2f} byte/255)",
                "units": HINTON_2006_UNITS,
                "code": "reference",
                "training_images": HINTON_2006_TRAINING_IMAGES,
                "per_image_byte_255": value,
                "per_image": value * BYTE_255_TO_256,
                "test_mse": value * BYTE_255_TO_256 / PIXELS,
            }
            for name, value in HINTON_2006
        ]
    return rows


SWEEP_COLUMNS = [
    ("dataset", "dataset", ""),
    ("model", "model", ""),
    ("seed", "seed", "d"),
    ("epochs", "epochs", "d"),
    ("training_images", "training images", ","),
    ("test_mse", "MSE per pixel", ".5f"),
    ("per_image", "squared error per image", ".3f"),
    ("psnr", "PSNR (dB)", ".2f"),
    ("knn_accuracy", "5-NN accuracy", ".3f"),
    ("pca_test_mse", "PCA MSE per pixel", ".5f"),
    ("pca_per_image", "PCA squared error per image", ".3f"),
    ("pca_psnr", "PCA PSNR (dB)", ".2f"),
    ("pca_knn_accuracy", "PCA 5-NN accuracy", ".3f"),
    ("pca_ratio", "PCA / autoencoder", ".2f"),
    ("run", "folder", ""),
]


def table_note(baselines: dict[tuple[str, bool], PcaBaseline]) -> str:
    fitted = ", ".join(f"{DATASETS[d].title} on {b.n_train:,} {image_sets(both)}" for (d, both), b in baselines.items())
    return (
        f"Reconstruction of the 10,000 test images against code size, each model beside exact PCA with as "
        f"many components (fitted: {fitted}). Pixels are byte/256; squared error per image = MSE per "
        f"pixel x {PIXELS}; PSNR with peak 1. 5-NN: class accuracy of a {KNN_NEIGHBOURS}-nearest-neighbour "
        f"vote among the codes of the first {KNN_TRAIN:,} training images (from code_quality.json beside "
        f"each run; - where the weights were gone). Reference rows: Hinton & Salakhutdinov (2006), Science "
        f"313:504, 30 units, squared error per image as published (byte/255) and x (255/256)^2 here."
    )


def _marks(ax: Any, rows: list[dict], color: str, marker: str, label: str) -> None:
    if rows:
        ax.plot(
            [r["units"] for r in rows],
            [r["per_image"] for r in rows],
            color=color,
            marker=marker,
            linestyle="none",
            label=label,
        )


def plot_code_sizes(rows: list[dict], baselines: dict[tuple[str, bool], PcaBaseline]) -> Any:
    """Squared error per image against code size, log-log: each dataset's autoencoders (vector
    codes joined through their seeds' mean, image codes as squares, final runs on the training and
    validation images as diamonds) and PCA, the 2006 points marked."""
    fig, ax = pyplot().subplots(figsize=(8.5, 6), layout="constrained")
    colors = dict(zip(DATASETS, ("tab:blue", "tab:orange", "tab:green")))
    top = max(r["units"] for r in rows)
    for dataset in dict.fromkeys(d for d, _ in baselines):
        base = baselines.get((dataset, False)) or baselines[dataset, True]
        title, color = DATASETS[dataset].title, colors[dataset]
        ks = np.arange(1, min(len(base.mse) - 1, 2 * top) + 1)
        ax.plot(ks, base.mse[ks] * PIXELS, color=color, linestyle="--", linewidth=1, label=f"{title}: PCA")
        theirs = [r for r in rows if r["dataset"] == title and r["code"] != "reference"]
        ours = [r for r in theirs if r["code"] == "vector" and not r["with_validation"]]
        units = sorted({r["units"] for r in ours})
        means = [np.mean([r["per_image"] for r in ours if r["units"] == u]) for u in units]
        if ours:
            ax.plot(units, means, color=color, marker="o", label=f"{title}: autoencoder, vector code (ND)")
        images = [r for r in theirs if r["code"] == "image" and not r["with_validation"]]
        _marks(ax, images, color, "s", f"{title}: autoencoder, image code (KxK)")
        finals = [r for r in theirs if r["with_validation"]]
        _marks(ax, finals, color, "D", f"{title}: autoencoder trained on training + validation images")
    for row, marker in zip([r for r in rows if r["code"] == "reference"], ("*", "^", "X")):
        ax.plot(
            [row["units"]],
            [row["per_image"]],
            marker=marker,
            color="black",
            markersize=10,
            linestyle="none",
            label=f"MNIST, Hinton & Salakhutdinov 2006: {row['model'].split(' (')[0][5:]}",
        )
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="code units (PCA components)", ylabel="test squared error per image (pixels byte/256)")
    ax.set_title("Reconstruction error against code size: autoencoders against PCA", fontsize=11)
    ax.grid(True, which="both", color="0.9")
    fig.legend(loc="outside lower center", ncols=2, framealpha=1, fontsize=8)
    return fig
