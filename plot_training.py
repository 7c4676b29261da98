"""Loss curves of the trained models, the code-quality table, and the code-size sweep.

    python plot_training.py                    # M_training for every model in output/, code_quality
    python plot_training.py --info runs/a/auto_encoder_3D_info.pkl.gz
                                               # another run's curves, drawn under this run's 3D curves
    python plot_training.py --sweep            # sweep: test MSE against code size, next to PCA

M_training: validation (red) and training (green) loss per epoch; for the 3D and 4x4 models on
MNIST, the 2016 run's curves (from its published logs, as true means) dashed underneath and its
final test MSE as a dashed grey line. The y axis spans 0 to 0.1 as the original's did, unless
most of this run's losses lie above that: then it spans them. The legend sits below the axes.
code_quality (.txt, .json): for each model with weights, its test MSE and k-NN class accuracy
(k=5) next to PCA with as many components. sweep (figure, .txt, .json): every trained model below
--output-dir, any dataset, beside exact PCA with as many components, in MSE per pixel, squared
error per image and PSNR, with Hinton & Salakhutdinov's 2006 numbers as reference rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from helpers import (
    KNN_NEIGHBOURS,
    KNN_TRAIN,
    SWEEP_COLUMNS,
    CodeSpec,
    OutputPaths,
    UserError,
    check_same_data,
    code_quality,
    dataset_spec,
    epochs_text,
    figure_parser,
    fill_output_dir,
    find_runs,
    fit_pca,
    image_sets,
    load_dataset,
    load_model,
    load_run_info,
    original_run,
    parse_code,
    parse_models,
    pca_baseline,
    pca_training_set,
    pick_device,
    plot_code_sizes,
    positive_int,
    pyplot,
    require_outputs,
    run_plot_script,
    save_figure,
    table_note,
    table_rows,
    train_command,
    wrapped,
    write_table,
)

SWEEP_MODELS = "2D,3D,8D,16D,2x2,4x4"  # suggested in the message when no model is found
LOSS_TOP = 0.1  # the original's y range: 0 to 0.1
TITLE_WIDTH = 100  # characters a line of the loss figure's title fits in
OTHER_STYLES = [dict(linestyle="--", linewidth=1), dict(linestyle=":", linewidth=1.2)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = figure_parser(__doc__)
    p.add_argument("--model", help="models to draw, e.g. 3D or 3D,4x4 (default: every model in --output-dir)")
    p.add_argument(
        "--info",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="another run's info pickle (the original's Python 2 ones too), drawn dashed "
        "under this run's curves of the same model; may be repeated",
    )
    p.add_argument(
        "--no-2016",
        dest="original",
        action="store_false",
        help="leave out the 2016 run's curves (drawn under MNIST's 3D and 4x4 models by default)",
    )
    p.add_argument(
        "--sweep", action="store_true", help="draw test MSE against code size for every trained model instead"
    )
    p.add_argument(
        "--knn-train",
        type=positive_int,
        default=KNN_TRAIN,
        metavar="N",
        help=f"fit the k-NN classifier on the codes of the first N training images (default {KNN_TRAIN})",
    )
    return fill_output_dir(p.parse_args(argv))


def trained_models(output_dir: Path) -> list[CodeSpec]:
    """Every model with an info pickle in `output_dir`: vector codes, then image codes, by size."""
    specs = []
    for path in output_dir.glob(OutputPaths.of("", "*").info.name):
        name = OutputPaths.model_of(path)
        if name is None:  # auto_encoder__info.pkl.gz names no model
            continue
        try:
            spec = parse_code(name)
        except UserError:
            continue
        if spec.name == name:
            specs.append(spec)
    return sorted(specs, key=lambda s: (s.is_image, s.units))


def model_of_info(path: Path) -> str:
    """The model an --info pickle is drawn beside: by its name if it is a training run's, else
    the name without its extensions."""
    return OutputPaths.model_of(path) or path.name.split(".")[0]


def draw_losses(ax: Any, info: dict, suffix: str = "", **style: Any) -> None:
    epochs = np.arange(1, len(info["training loss"]) + 1)
    marker = "o" if len(epochs) <= 20 else None
    if info["validation loss"]:  # none where the run trained on the validation images (--train-on-validation)
        ax.plot(epochs, info["validation loss"], color="red", marker=marker, label=f"validation{suffix}", **style)
    ax.plot(epochs, info["training loss"], color="green", marker=marker, label=f"training{suffix}", **style)


def describe(info: dict) -> str:
    config = info.get("config", {})
    parts = [epochs_text(info)]
    if "recipe" in config:
        parts.append(f"{config['recipe']} recipe")
    if "test mse" in info:
        parts.append(f"test MSE {info['test mse']:.4f}")
    return ", ".join(parts)


def source_of(info: dict) -> str:
    return info.get("source") or ("other run" if "config" in info else "2016 original")


def plot_training(title: str, ours: dict | None, others: list[dict]) -> Any:
    """Validation (red) and training (green) loss per epoch; other runs dashed or dotted underneath.

    With a run of ours, the axis spans its epochs; a longer run's final test MSE is then a
    grey line, so that a 46-epoch run is not squeezed against 500 epochs.
    """
    fig, ax = pyplot().subplots(figsize=(8, 5.5), layout="constrained")
    lines = [] if ours is None else [f"this run: {describe(ours)}"]
    for other, style in zip(others, OTHER_STYLES):
        source = source_of(other)
        draw_losses(ax, other, f" ({source})", **style)
        lines.append(f"{'dashed' if style['linestyle'] == '--' else 'dotted'}: {source} ({describe(other)})")
        longer = ours is not None and len(other["training loss"]) > len(ours["training loss"])
        if longer and "test mse" in other:
            ax.axhline(
                other["test mse"],
                color="0.5",
                linewidth=1,
                **{k: v for k, v in style.items() if k == "linestyle"},
                label=f"test MSE after {epochs_text(other)} ({source})",
            )
    if ours is not None:
        draw_losses(ax, ours)
        ax.set_xlim(0, len(ours["training loss"]) + 1)
    else:
        ax.set_xlim(left=0)
    shown = [
        v
        for info in ([ours] if ours is not None else others)
        for key in ("training loss", "validation loss")
        for v in info[key]
    ]
    top = LOSS_TOP if np.median(shown) <= LOSS_TOP else 1.05 * max(shown)
    ax.set(xlabel="epoch", ylabel="loss (mean squared error per pixel)", ylim=(0, top))
    off_scale = sum(v > top for v in shown)
    if off_scale:
        note = f"off the scale (above {top:g}): {off_scale} value{'s' * (off_scale != 1)}"
        ax.text(0.99, 0.01, note, ha="right", va="bottom", transform=ax.transAxes, fontsize=9, color="0.4")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, color="0.9")
    fig.legend(loc="outside lower center", ncols=3, framealpha=1, fontsize=9)  # never over a curve
    ax.set_title(wrapped(f"{title}: loss per epoch\n" + "\n".join(lines), TITLE_WIDTH), fontsize=10)
    return fig


def save_training_figures(args: argparse.Namespace, specs: list[CodeSpec]) -> None:
    """M_training for each model in `specs` or given with --info; one line names them."""
    given = {model_of_info(path): path for path in args.info}
    dataset, written = dataset_spec(args.dataset), []
    for name in dict.fromkeys([s.name for s in specs] + list(given)):
        ours_path = OutputPaths.of(args.output_dir, name).info
        ours = load_run_info(ours_path, args.dataset) if ours_path.is_file() else None
        originals = [original_run(name)] if args.original and dataset.has_2016_run else []
        others = [o for o in originals if o is not None]
        if name in given:
            others.insert(0, load_run_info(given[name], args.dataset))
        heading = f"{name} model{dataset.on_title}"
        save_figure(
            plot_training(heading, ours, others[: len(OTHER_STYLES)]), args.output_dir, f"{name}_training", args.format
        )
        written.append(f"{name}_training")
    print(f"loss curves: {', '.join(written)} written to {args.output_dir}/ ({', '.join(args.format)})")


def info_of(args: argparse.Namespace, spec: CodeSpec) -> dict:
    return load_run_info(OutputPaths.of(args.output_dir, spec.name).info, args.dataset)


def save_code_quality(args: argparse.Namespace, specs: list[CodeSpec]) -> None:
    with_weights = [s for s in specs if OutputPaths.of(args.output_dir, s.name).weights.is_file()]
    if not with_weights:
        print(f"code_quality: no weights in {args.output_dir}/, table not written")
        return
    device = pick_device(args.device)
    models = [
        load_model(OutputPaths.of(args.output_dir, s.name).weights, device, s.name, args.dataset) for s in with_weights
    ]
    infos = [info_of(args, s) for s in with_weights]
    splits = load_dataset(args.dataset, args.data)
    for spec, info in zip(with_weights, infos):
        check_same_data(splits, info, str(OutputPaths.of(args.output_dir, spec.name).info))
    pca, n_pca = fit_pca(splits, infos)
    rows = [code_quality(model, splits, pca, device, args.knn_train) for model in models]
    n_knn, dataset = min(args.knn_train, len(splits.train_x)), dataset_spec(args.dataset)
    note = (
        f"Code quality on the {len(splits.test_x):,} {dataset.test_set}. Test MSE: mean squared error per "
        f"pixel of the reconstruction. k-NN: {dataset.legend_title} accuracy of a {KNN_NEIGHBOURS}-nearest-"
        f"neighbour vote among the codes of the first {n_knn:,} {dataset.training_set}. PCA: the same with "
        f"as many principal components as the code has units, fitted on {n_pca:,} "
        f"{image_sets(pca_training_set(infos)[1])}."
    )
    write_table(
        args.output_dir,
        "code_quality",
        note,
        rows,
        [
            ("model", "model", ""),
            ("units", "units", "d"),
            ("test_mse", "test MSE", ".4f"),
            ("pca_test_mse", "PCA test MSE", ".4f"),
            ("knn_accuracy", "k-NN accuracy", ".3f"),
            ("pca_knn_accuracy", "PCA k-NN accuracy", ".3f"),
        ],
    )
    print(f"code_quality: {len(rows)} model(s) written to {args.output_dir}/code_quality.txt and .json")


def sweep(args: argparse.Namespace) -> None:
    """The code-size table and figure of every run below --output-dir, each dataset beside its PCA."""
    runs = find_runs(args.output_dir)
    if not runs:
        raise UserError(
            f"no trained model in {args.output_dir}/ or below: run "
            f"`{train_command(SWEEP_MODELS, args.output_dir, args.dataset)}` first"
        )
    baselines = {}
    for dataset in dict.fromkeys(run.dataset for run in runs):
        theirs = [run for run in runs if run.dataset == dataset]
        splits = load_dataset(dataset, args.data if dataset == args.dataset else None)
        for run in theirs:
            check_same_data(splits, run.info, str(run.folder))
        for key in sorted({run.baseline for run in theirs}):  # the training images' PCA first
            baselines[key] = pca_baseline(splits, [run for run in theirs if run.baseline == key])
    rows = table_rows(runs, baselines, args.output_dir)
    save_figure(plot_code_sizes(rows, baselines), args.output_dir, "sweep", args.format)
    write_table(args.output_dir, "sweep", table_note(baselines), rows, SWEEP_COLUMNS)
    print(f"sweep: {len(runs)} model(s) written to {args.output_dir}/sweep.*")


def plot(args: argparse.Namespace) -> None:
    if args.sweep:
        sweep(args)
        return
    if args.model:
        specs = parse_models(args.model)
        for spec in specs:
            require_outputs([OutputPaths.of(args.output_dir, spec.name).info], spec.name, args.output_dir, args.dataset)
    else:
        specs = trained_models(args.output_dir)
    if not specs and not args.info:
        raise UserError(
            f"no trained model in {args.output_dir}/: run "
            f"`{train_command('both', args.output_dir, args.dataset)}` first"
        )
    save_training_figures(args, specs)
    save_code_quality(args, specs)


def main(argv: list[str] | None = None) -> int:
    return run_plot_script(parse_args, plot, argv)


if __name__ == "__main__":
    sys.exit(main())
