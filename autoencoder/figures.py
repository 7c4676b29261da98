"""Figure helpers shared by plot_training.py, plot_3D.py and plot_4x4.py.

Matplotlib is imported on first use, so nothing else pays for it. The library never picks a
backend (a notebook keeps its own); the plot scripts choose Agg in main(), so no display is needed.
Every figure is written atomically and byte for byte the same when drawn again from the same inputs.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import DatasetSpec
from .files import atomic_path

FIGURE_FORMATS = ("jpg", "eps", "png", "pdf", "svg")
FIGURE_DPI = 100
DIGIT_CMAP = "gray_r"  # dark ink on white; every image is drawn on the fixed range 0..1
SHOWN_DIGITS = 10  # the first test images shown in the input/output rows
FIXED_DATE = "0"  # SOURCE_DATE_EPOCH for the files' metadata: 1970, not the time of drawing


def pyplot() -> Any:
    """matplotlib.pyplot, imported on first use."""
    import matplotlib.pyplot as plt

    return plt


def use_file_backend() -> None:
    """Draw to files only (Agg): for the plot scripts' main(), which need no display."""
    import matplotlib

    matplotlib.use("Agg")


def class_colors() -> list:
    """Ten distinguishable colours, one per class, the same in every figure."""
    import matplotlib

    # tab10 is a ListedColormap; matplotlib's stubs type every registered map as a Colormap
    return list(matplotlib.colormaps["tab10"].colors)  # type: ignore[attr-defined]


def class_legend(fig: Any, dataset: DatasetSpec, **kwargs: Any) -> Any:
    """One legend of the ten class colours for the whole figure."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, markersize=7, label=name)
        for name, c in zip(dataset.classes, class_colors())
    ]
    return fig.legend(handles=handles, title=dataset.legend_title, framealpha=1, **kwargs)  # EPS has no alpha


@contextlib.contextmanager
def reproducible_metadata() -> Iterator[None]:
    """A fixed creation date (matplotlib reads SOURCE_DATE_EPOCH) and fixed SVG ids while saving."""
    import matplotlib

    saved = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = FIXED_DATE
    try:
        with matplotlib.rc_context({"svg.hashsalt": "mnist-autoencoder"}):
            yield
    finally:
        if saved is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved


def save_figure(fig: Any, output_dir: str | os.PathLike, name: str, formats: list[str]) -> None:
    """Write `fig` as output_dir/name.FORMAT for each format (each atomically), then close it.

    Each is written through a file object: given a path, the EPS writer would record the
    temporary file's name as the title.
    """
    try:
        with reproducible_metadata():
            for fmt in formats:
                with atomic_path(Path(output_dir) / f"{name}.{fmt}") as tmp, open(tmp, "wb") as f:
                    extra = {"pil_kwargs": {"quality": 92}} if fmt == "jpg" else {}
                    fig.savefig(f, format=fmt, dpi=FIGURE_DPI, facecolor="white", **extra)
    finally:
        pyplot().close(fig)


def image_row(images: np.ndarray, title: str, captions: list[str] | None = None) -> Any:
    """One row of grayscale images (N, H, W) on the fixed range 0..1."""
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(images), figsize=(1.2 * len(images), 1.9 if captions else 1.7), layout="constrained", squeeze=False
    )
    for i, (ax, image) in enumerate(zip(axes[0], images)):
        ax.imshow(image, cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="none")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.8")
        if captions:
            ax.set_title(captions[i], fontsize=10 if max(len(c) for c in captions) < 10 else 8)
    fig.suptitle(title)
    return fig


def mosaic(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """Images (rows, cols, H, W) -> one sheet with `pad` blank pixels between them."""
    rows, cols, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (0, pad), (0, pad)))
    sheet = padded.transpose(0, 2, 1, 3).reshape(rows * (h + pad), cols * (w + pad))
    trimmed: np.ndarray = sheet[: -pad or None, : -pad or None]
    return trimmed


def wrapped(title: str, width: int) -> str:
    """`title` with each line broken at spaces to at most `width` characters (flags such as
    --limit kept whole)."""
    return "\n".join(textwrap.fill(line, width, break_on_hyphens=False) for line in title.splitlines())
