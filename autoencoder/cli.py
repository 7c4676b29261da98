"""What every script's command line shares: option types, the data options, one-line errors, and
the plot scripts' options and main()."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import Callable, TypeVar

from .datasets import DATASETS, DEFAULT_DATASET, dataset_spec
from .errors import UserError
from .figures import FIGURE_FORMATS, use_file_backend
from .model import parse_code
from .recipes import EARLIER_DEFAULTS, recipe_values


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one `error:` line, like every other error, pointing at
    --help instead of printing the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message}; see python {self.prog} --help\n")


Number = TypeVar("Number", int, float)


def _number(text: str, kind: Callable[[str], Number], ok: Callable[[Number], bool], what: str) -> Number:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def fraction(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")


def seed_value(text: str) -> int:
    # the range torch.manual_seed accepts for every generator
    return _number(text, int, lambda v: 0 <= v < 2**64, "an integer from 0 to 2**64-1")


def add_data_options(p: argparse.ArgumentParser, output_help: str, data_default: str = "") -> None:
    """--dataset, --data, --device and --output-dir, as every script takes them."""
    p.add_argument(
        "--dataset", choices=list(DATASETS), default=DEFAULT_DATASET, help="mnist (default), fashion-mnist or kmnist"
    )
    p.add_argument(
        "--data",
        help="the dataset's files: a folder of the four IDX files (gzipped or not), "
        "a Keras-style .npz, or for MNIST its mnist.pkl.gz; default: $MNIST_DATA "
        f"($FASHION_MNIST_DATA, $KMNIST_DATA), {data_default}the data/ cache, then a download",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument(
        "--output-dir", type=Path, help=f"{output_help} (default: output/ for mnist, output/DATASET/ for the others)"
    )


def training_command(settings: dict, *flags: str) -> str:
    """The `python auto_encoder.py` command that trains (or, with --resume, continues) the run
    whose configuration is `settings` (TrainConfig.as_dict()): its options that differ from the
    defaults, then `flags`."""
    spec = dataset_spec(settings["dataset"])
    defaults = recipe_values(settings["recipe"], parse_code(settings["model"]), settings["dataset"])
    options = [f"--model {settings['model']}"] + ([f"--dataset {spec.name}"] if not spec.is_default else [])
    options += [f"--recipe {settings['recipe']}"] if settings["recipe"] != "modern" else []
    for key in ("epochs", "batch_size", "lr", "weight_decay", "dropout"):
        if settings.get(key) is not None and settings[key] != defaults[key]:
            options.append(f"--{key.replace('_', '-')} {settings[key]}")  # repr: exact
    decay_1d = settings.get("decay_1d", EARLIER_DEFAULTS["decay_1d"])
    if decay_1d != defaults["decay_1d"]:
        options.append("--decay-1d" if decay_1d else "--no-decay-1d")
    options += [f"--seed {settings['seed']}"] if settings.get("seed") else []
    options += [f"--limit {settings['limit']}"] if settings.get("limit") else []
    options += ["--train-on-validation"] if settings.get("train_on_validation") else []
    if Path(settings["output_dir"]) != spec.output_dir:
        options.append(f"--output-dir {shlex.quote(str(settings['output_dir']))}")
    return " ".join(["python auto_encoder.py", *options, *flags])


def fill_output_dir(args: argparse.Namespace) -> argparse.Namespace:
    """Give --output-dir its default, which depends on --dataset."""
    if args.output_dir is None:
        args.output_dir = DATASETS[args.dataset].output_dir
    return args


def run_main(
    body: Callable[[], int | None],
    write_hint: str = "",
    interrupted: str = "Interrupted; every file written so far is whole.",
) -> int:
    """Run a script's body; a UserError or a failed write becomes one `error:` line and an exit code."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr)
        return 130
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(
            f"error: cannot write {e.filename or 'an output file'} ({e.strerror or e})"
            + (f"; {write_hint}" if write_hint else ""),
            file=sys.stderr,
        )
        return 1


def run_plot_script(
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    plot: Callable[[argparse.Namespace], None],
    argv: list[str] | None,
) -> int:
    """A plot script's main(): its options, the file backend, and one `error:` line for a problem."""
    args = parse_args(argv)
    use_file_backend()
    return run_main(lambda: plot(args))


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"use a comma-separated list of {', '.join(FIGURE_FORMATS)}")
    return list(dict.fromkeys(formats))


def figure_parser(description: str) -> argparse.ArgumentParser:
    """The options every plot script takes."""
    p = OneLineParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(
        p,
        "folder with the training outputs; figures are written there too",
        data_default="the files the training read, ",
    )
    p.add_argument(
        "--format",
        type=parse_formats,
        default=["jpg", "eps"],
        help=f"figure formats, comma-separated, from {', '.join(FIGURE_FORMATS)} (default: jpg,eps)",
    )
    return p
