"""Figures of the 4x4 model (or any KxK image code): inputs, codes and outputs, before and after.

    python plot_4x4.py                         # reads output/auto_encoder_4x4_*
    python plot_4x4.py --model 8x8 --output-dir runs/a
    python plot_4x4.py --dataset fashion-mnist # reads output/fashion-mnist/auto_encoder_4x4_*

Writes into --output-dir, for the model M: M_in (the first ten test images), M_code_1 /
M_code_2 (their KxK code images before / after training), M_out_1 / M_out_2 (their
reconstructions before / after), M_interpolation (images decoded along straight lines in
code space between test images of different classes, and between class-mean codes) and
M_explorer.html (a page to probe the code in a browser, docs/explorer.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers import (
    DIGIT_CMAP,
    SHOWN_DIGITS,
    Stage,
    TrainedRun,
    UserError,
    add_explorer_option,
    decode_all,
    figure_parser,
    fill_output_dir,
    image_row,
    load_trained_run,
    mosaic,
    parse_code,
    pyplot,
    run_plot_script,
    save_explorer,
    save_figure,
    save_input_output_rows,
)

INTERPOLATION_STEPS = 10
INTERPOLATION_ROWS = 5
MOSAIC_PAD = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = figure_parser(__doc__)
    p.add_argument("--model", default="4x4", help="an image code KxK (default: 4x4)")
    add_explorer_option(p)
    return fill_output_dir(p.parse_args(argv))


def save_code_rows(run: TrainedRun, output_dir: Path, formats: list[str]) -> None:
    """M_code_1 / M_code_2: the code image of each shown test image, before / after training."""
    side = run.spec.side
    if side is None:
        raise ValueError(f"{run.spec.name} is a vector code: code rows are drawn for image codes (KxK)")
    for stage in run.stages:
        codes = stage.codes[:SHOWN_DIGITS].reshape(-1, side, side).cpu().numpy()
        title = f"{run.spec.name} code of each {run.dataset.noun}, {stage.when} (black = 1, white = 0)"
        save_figure(image_row(codes, title), output_dir, f"{run.spec.name}_code_{stage.figure_suffix}", formats)


def class_pairs(labels: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of different classes present in `labels`: 0-5, 1-6, 2-7, 3-8, 4-9 for MNIST."""
    classes = sorted(set(labels.tolist()))
    half = max(1, len(classes) // 2)
    return [(a, classes[(i + half) % len(classes)]) for i, a in enumerate(classes[:INTERPOLATION_ROWS])]


def interpolate(stage: Stage, starts: torch.Tensor, ends: torch.Tensor) -> np.ndarray:
    """Decode `INTERPOLATION_STEPS` evenly spaced codes on each line start -> end: (rows, steps, 28, 28)."""
    t = torch.linspace(0, 1, INTERPOLATION_STEPS, device=starts.device)[None, :, None]
    codes = starts[:, None] + t * (ends - starts)[:, None]
    images = decode_all(stage.model, codes.reshape(-1, codes.shape[-1]))
    return images.reshape(len(starts), INTERPOLATION_STEPS, 28, 28).cpu().numpy()


def plot_interpolation(run: TrainedRun, stage: Stage) -> Any:
    """Rows of images decoded between the codes of two classes: single test images, and class means."""
    pairs = class_pairs(run.test_y)
    classes = {d for pair in pairs for d in pair}
    masks = {d: torch.from_numpy(run.test_y == d).to(stage.codes.device) for d in classes}
    first_codes = {d: stage.codes[masks[d]][0] for d in classes}
    mean_codes = {d: stage.codes[masks[d]].mean(0) for d in classes}
    panels = (
        (f"between two {run.dataset.test_set}", first_codes),
        ("between the mean codes of the two classes", mean_codes),
    )
    fig, axes = pyplot().subplots(1, 2, figsize=(15, 7 * len(pairs) / INTERPOLATION_STEPS + 1.0), layout="constrained")
    tile, centre = 28 + MOSAIC_PAD, 14
    for ax, (what, code_of) in zip(axes, panels):
        starts, ends = (torch.stack([code_of[pair[i]] for pair in pairs]) for i in (0, 1))
        ax.imshow(
            mosaic(interpolate(stage, starts, ends), MOSAIC_PAD), cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="none"
        )
        names = run.dataset.classes
        ax.set_yticks(
            [tile * i + centre for i in range(len(pairs))], [f"{names[a]} \u2192 {names[b]}" for a, b in pairs]
        )
        ax.set_xticks([centre, tile * (INTERPOLATION_STEPS - 1) + centre], ["start", "end"])
        ax.set_title(what)
    fig.suptitle(f"{run.spec.name} model {stage.when}: {run.dataset.noun}s decoded along straight lines in code space")
    return fig


def plot(args: argparse.Namespace) -> None:
    spec = parse_code(args.model)
    if not spec.is_image:
        raise UserError(
            f"plot_4x4.py draws image codes (KxK), not {spec.name}: use plot_3D.py for 3D "
            "and plot_training.py for any model"
        )
    run = load_trained_run(args.output_dir, spec, args.dataset, args.data, args.device)
    save_input_output_rows(run, args.output_dir, args.format)
    save_code_rows(run, args.output_dir, args.format)
    save_figure(plot_interpolation(run, run.stages[-1]), args.output_dir, f"{spec.name}_interpolation", args.format)
    print(f"{spec.name}: figures written to {args.output_dir}/ ({', '.join(args.format)})")
    if args.explorer:
        save_explorer(run, args.output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_plot_script(parse_args, plot, argv)


if __name__ == "__main__":
    sys.exit(main())
