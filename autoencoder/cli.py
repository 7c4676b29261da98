"""What every script's command line shares: option types, the data options, and one-line errors."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable

from .datasets import DATASETS, DEFAULT_DATASET
from .errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one `error:` line, like every other error, pointing at
    --help instead of printing the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message}; see python {self.prog} --help\n")


def _number(text: str, kind: type, ok: Callable[[float], bool], what: str) -> float:
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
    return _number(text, int, lambda v: 0 <= v < 2 ** 64, "an integer from 0 to 2**64-1")


def add_data_options(p: argparse.ArgumentParser, output_help: str, data_default: str = "") -> None:
    """--dataset, --data, --device and --output-dir, as every script takes them."""
    p.add_argument("--dataset", choices=list(DATASETS), default=DEFAULT_DATASET,
                   help="mnist (default), fashion-mnist or kmnist")
    p.add_argument("--data", help="the dataset's files: a folder of the four IDX files (gzipped or not), "
                   "a Keras-style .npz, or for MNIST its mnist.pkl.gz; default: $MNIST_DATA "
                   f"($FASHION_MNIST_DATA, $KMNIST_DATA), {data_default}the data/ cache, then a download")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--output-dir", type=Path,
                   help=f"{output_help} (default: output/ for mnist, output/DATASET/ for the others)")


def fill_output_dir(args: argparse.Namespace) -> argparse.Namespace:
    """Give --output-dir its default, which depends on --dataset."""
    if args.output_dir is None:
        args.output_dir = DATASETS[args.dataset].output_dir
    return args


def run_main(body: Callable[[], int | None], write_hint: str = "",
             interrupted: str = "Interrupted; every file written so far is whole.") -> int:
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
        print(f"error: cannot write {e.filename or 'an output file'} ({e.strerror or e})"
              + (f"; {write_hint}" if write_hint else ""), file=sys.stderr)
        return 1
