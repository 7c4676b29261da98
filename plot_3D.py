"""Figures of the 3D model: its inputs, outputs and code space, before and after training.

    python plot_3D.py                          # reads output/auto_encoder_3D_*
    python plot_3D.py --output-dir runs/a --format jpg,eps,png
    python plot_3D.py --dataset fashion-mnist  # reads output/fashion-mnist/auto_encoder_3D_*

Writes into --output-dir: 3D_in (the first ten test images), 3D_out_1 / 3D_out_2 (their
reconstructions before / after training), 3D_code_1 / 3D_code_2 (the codes of the test set
in 3-D, coloured by class), 3D_code_xy_1 / 3D_code_xy_2 (their three 2-D projections),
3D_manifold (images decoded from a grid through the code space), 3D_code_evolution.gif (the
codes of 2,000 test images at every epoch, each frame saying its scale against the last) and
3D_explorer.html (a page to turn and probe the code in a browser, docs/explorer.md). Any 3-unit
vector code works, given with --model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers import (
    DIGIT_CMAP,
    DatasetSpec,
    Stage,
    TrainedRun,
    UserError,
    add_explorer_option,
    atomic_path,
    class_colors,
    class_legend,
    decode_all,
    figure_parser,
    fill_output_dir,
    load_trained_run,
    mosaic,
    parse_code,
    pyplot,
    run_plot_script,
    save_explorer,
    save_figure,
    save_input_output_rows,
    torch_load,
    wrapped,
)

PROJECTIONS = ((0, 1), (1, 2), (0, 2))  # the original's: 1st & 2nd, 2nd & 3rd, 1st & 3rd units
MANIFOLD_GRID = 13  # images along each side of a manifold slice
MANIFOLD_SLICES = (10, 50, 90)  # percentiles of the 3rd unit the slices sit at
GIF_FRAMES = 60  # at most; long runs show evenly spaced epochs
GIF_FPS = 5
CENTRAL = (0.005, 0.995)  # the quantiles of each unit the code figures' axes span
POINT_SIZE = 5
TITLE_WIDTH = 70  # characters a line of the 3-D scatter's title fits in
Z_LABEL_ROOM = 0.1  # of the GIF's width: the z axis's labels, right of its axes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = figure_parser(__doc__)
    p.add_argument("--model", default="3D", help="a vector code of 3 units (default: 3D)")
    add_explorer_option(p)
    return fill_output_dir(p.parse_args(argv))


def unit_label(i: int) -> str:
    return f"code unit {i + 1}"


def code_limits(codes: np.ndarray) -> np.ndarray:
    """(2, units): axis limits around the central 99% of each unit, so a few outliers
    do not shrink the rest of the code into a corner."""
    low, high = np.quantile(codes, CENTRAL, axis=0)
    margin = 0.05 * (high - low) + 1e-6
    return np.stack([low - margin, high + margin])


def scatter_codes(ax: Any, codes: np.ndarray, labels: np.ndarray, dims: tuple[int, ...], size: float) -> Any:
    """The codes' `dims` coordinates within `code_limits`, coloured by class.

    Points are rasterized so EPS files stay small; those outside the limits are left out
    (3-D axes would draw them outside the box).
    """
    limits = code_limits(codes)[:, dims]
    shown = codes[:, dims]
    inside = ((shown >= limits[0]) & (shown <= limits[1])).all(1)
    colors = np.array(class_colors())[labels[inside]]
    depth = {"depthshade": False} if len(dims) == 3 else {}  # the same colours as the 2-D figures
    points = ax.scatter(*shown[inside].T, c=colors, s=size, linewidths=0, rasterized=True, **depth)
    setters = [(ax.set_xlabel, ax.set_xlim), (ax.set_ylabel, ax.set_ylim)]
    setters += [(ax.set_zlabel, ax.set_zlim)] if len(dims) == 3 else []
    for i, (low, high), (set_label, set_lim) in zip(dims, limits.T, setters):
        set_label(unit_label(i))
        set_lim(low, high)
    return points


def axes_3d(fig: Any, rect: tuple[float, ...] | None = None) -> Any:
    """3-D axes (filling `rect` if given) with opaque panes: EPS has no transparency."""
    ax = fig.add_axes(rect, projection="3d") if rect else fig.add_subplot(projection="3d")
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((0.95, 0.95, 0.95, 1))
    ax.locator_params(nbins=6)  # fewer, unclipped tick labels
    return ax


def plot_code_3d(codes: np.ndarray, labels: np.ndarray, title: str, dataset: DatasetSpec) -> Any:
    fig = pyplot().figure(figsize=(8, 6.5), layout="constrained")
    ax = axes_3d(fig)
    scatter_codes(ax, codes, labels, (0, 1, 2), POINT_SIZE)
    ax.set_title(wrapped(title, TITLE_WIDTH))  # a --limit run's title is wider than the figure
    class_legend(fig, dataset, loc="outside right center")
    return fig


def plot_code_projections(codes: np.ndarray, labels: np.ndarray, title: str, dataset: DatasetSpec) -> Any:
    fig, axes = pyplot().subplots(1, len(PROJECTIONS), figsize=(16, 5.4), layout="constrained")
    for ax, dims in zip(axes, PROJECTIONS):
        scatter_codes(ax, codes, labels, dims, POINT_SIZE)
        ax.set_title(f"units {dims[0] + 1} & {dims[1] + 1}")
        ax.grid(True, color="0.9")
        ax.set_axisbelow(True)  # the grid under the points
    fig.suptitle(title)
    class_legend(fig, dataset, loc="outside right center")
    return fig


def save_code_figures(run: TrainedRun, stage: Stage, output_dir: Path, formats: list[str]) -> None:
    """M_code_N (3-D scatter) and M_code_xy_N (its projections) for one stage."""
    codes, name = stage.codes.cpu().numpy(), run.spec.name
    title = (
        f"{name} code of the {len(codes):,} {run.dataset.test_set}, {stage.when} "
        f"(test MSE {stage.test_mse:.4f})\naxes span the central 99% of each unit"
    )
    save_figure(
        plot_code_3d(codes, run.test_y, title, run.dataset), output_dir, f"{name}_code_{stage.figure_suffix}", formats
    )
    save_figure(
        plot_code_projections(codes, run.test_y, title, run.dataset),
        output_dir,
        f"{name}_code_xy_{stage.figure_suffix}",
        formats,
    )


def plot_manifold(stage: Stage) -> Any:
    """Decode a grid over units 1 & 2 (the test codes' 1st to 99th percentile) at three values of unit 3."""
    codes = stage.codes.cpu()
    low, high = codes.quantile(0.01, dim=0), codes.quantile(0.99, dim=0)
    steps = torch.linspace(0, 1, MANIFOLD_GRID)
    xs, ys = low[0] + steps * (high[0] - low[0]), high[1] - steps * (high[1] - low[1])  # top row: high
    fig, axes = pyplot().subplots(1, len(MANIFOLD_SLICES), figsize=(16, 6), layout="constrained")
    for ax, percentile in zip(axes, MANIFOLD_SLICES):
        z = codes[:, 2].quantile(percentile / 100)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([grid_x, grid_y, torch.full_like(grid_x, z.item())], dim=-1)
        images = decode_all(stage.model, grid.reshape(-1, 3).to(stage.codes.device))
        sheet = mosaic(images.reshape(MANIFOLD_GRID, MANIFOLD_GRID, 28, 28).cpu().numpy())
        ax.imshow(
            sheet,
            cmap=DIGIT_CMAP,
            vmin=0,
            vmax=1,
            interpolation="none",
            extent=(xs[0].item(), xs[-1].item(), ys[-1].item(), ys[0].item()),
        )
        ax.set_aspect("auto")
        ax.set(
            xlabel=unit_label(0), ylabel=unit_label(1), title=f"unit 3 = {z.item():.3g} (its {percentile}th percentile)"
        )
    fig.suptitle(
        f"What the decoder draws across the code space, {stage.when}: "
        f"a {MANIFOLD_GRID}x{MANIFOLD_GRID} grid over units 1 & 2 at three values of unit 3"
    )
    return fig


def save_gif(animation: Any, path: Path, fps: int) -> None:
    """Write an animation with Pillow, atomically (Pillow needs the .gif name to pick the format)."""
    from matplotlib.animation import PillowWriter

    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        gif = Path(scratch) / path.name
        animation.save(gif, writer=PillowWriter(fps=fps))
        os.replace(gif, tmp)


def load_code_trace(run: TrainedRun) -> np.ndarray:
    """The stored codes (epochs+1, images, 3), checked before any figure is drawn."""
    saved = torch_load(run.paths.codes, "cpu", "rerun the training with --resume to rewrite it")
    trace = saved.get("codes") if isinstance(saved, dict) else None
    if not (isinstance(trace, torch.Tensor) and trace.ndim == 3 and trace.shape[2] == 3):
        raise UserError(f"{run.paths.codes} is not a trace of 3-unit codes (epochs+1, images, 3)")
    return trace.float().numpy()


def scale_against(codes: np.ndarray, last: np.ndarray) -> float:
    """How wide the axes of `codes` are against those of `last`: the geometric mean over the units."""
    spans = [np.diff(code_limits(c), axis=0)[0] for c in (codes, last)]
    return float(np.exp(np.mean(np.log(spans[0] / spans[1]))))


def code_evolution(trace: np.ndarray, labels: np.ndarray, heading: str, dataset: DatasetSpec) -> tuple[Any, Any]:
    """The figure of the code evolution and the function that draws epoch N into it.

    Each frame spans its own codes (the trained cloud is often several times smaller than the
    first epoch's, and one scale for all would shrink it to a dot), so each says its scale.
    """
    fig = pyplot().figure(figsize=(6.4, 5.6), dpi=80)
    legend = class_legend(fig, dataset, loc="center right")
    beside = 1 - legend.get_window_extent(fig.canvas.get_renderer()).width / fig.bbox.width
    ax = axes_3d(fig, (0, 0.02, beside - Z_LABEL_ROOM, 0.84))  # fixed, so the axes never jump
    last = len(trace) - 1

    def draw(epoch: int) -> None:
        for points in list(ax.collections):
            points.remove()
        scatter_codes(ax, trace[epoch], labels, (0, 1, 2), POINT_SIZE)
        when = "before training" if epoch == 0 else f"after epoch {epoch} of {last}"
        scale = (
            "axes span the central 99% of each unit"
            if epoch == last
            else f"axes {scale_against(trace[epoch], trace[last]):.2g}x as wide as in the last frame"
        )
        ax.set_title(f"{heading}\n{when}\n{scale}")

    return fig, draw


def save_code_evolution(run: TrainedRun, trace: np.ndarray, output_dir: Path) -> None:
    """M_code_evolution.gif: the stored codes of the first test images, epoch by epoch."""
    from matplotlib.animation import FuncAnimation

    heading = f"{run.spec.name} code of {trace.shape[1]:,} {run.dataset.test_set}"
    fig, draw = code_evolution(trace, run.test_y[: trace.shape[1]], heading, run.dataset)
    frames = np.unique(np.linspace(0, len(trace) - 1, min(len(trace), GIF_FRAMES)).round().astype(int))
    path = output_dir / f"{run.spec.name}_code_evolution.gif"
    save_gif(FuncAnimation(fig, draw, frames=frames), path, GIF_FPS)
    pyplot().close(fig)


def plot(args: argparse.Namespace) -> None:
    spec = parse_code(args.model)
    if spec.is_image or spec.units != 3:
        raise UserError(
            f"plot_3D.py draws 3-unit vector codes, not {spec.name}: use plot_4x4.py for "
            "image codes and plot_training.py for any model"
        )
    run = load_trained_run(args.output_dir, spec, args.dataset, args.data, args.device, needs_codes=True)
    trace = load_code_trace(run)
    save_input_output_rows(run, args.output_dir, args.format)
    for stage in run.stages:
        save_code_figures(run, stage, args.output_dir, args.format)
    save_figure(plot_manifold(run.stages[-1]), args.output_dir, f"{spec.name}_manifold", args.format)
    save_code_evolution(run, trace, args.output_dir)
    print(f"{spec.name}: figures written to {args.output_dir}/ ({', '.join(args.format)} and gif)")
    if args.explorer:
        save_explorer(run, args.output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_plot_script(parse_args, plot, argv)


if __name__ == "__main__":
    sys.exit(main())
