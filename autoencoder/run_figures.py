"""The figures every trained run gets, whatever its code (plot_3D.py and plot_4x4.py both draw
them): the first test images, and their reconstructions before and after training."""

from __future__ import annotations

from pathlib import Path

from .device import decode_all
from .figures import SHOWN_DIGITS, image_row, save_figure
from .trained_run import TrainedRun


def save_input_output_rows(run: TrainedRun, output_dir: Path, formats: list[str]) -> None:
    """M_in (the first test images) and M_out_1 / M_out_2 (their reconstructions before/after)."""
    x = run.test_x[:SHOWN_DIGITS]
    name = run.spec.name
    captions = [run.dataset.caption(label) for label in run.test_y[:SHOWN_DIGITS]]
    save_figure(
        image_row(x.reshape(-1, 28, 28).cpu().numpy(), f"Input: the first {len(x)} {run.dataset.test_set}", captions),
        output_dir,
        f"{name}_in",
        formats,
    )
    for stage in run.stages:
        images = decode_all(stage.model, stage.codes[:SHOWN_DIGITS]).reshape(-1, 28, 28).cpu().numpy()
        title = f"{name} model output, {stage.when} (test MSE {stage.test_mse:.4f})"
        save_figure(image_row(images, title), output_dir, f"{name}_out_{stage.figure_suffix}", formats)
