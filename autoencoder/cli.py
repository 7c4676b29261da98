"""What every script's command line shares: option types, the data options, and one-line errors."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable

from .datasets import DATASETS
from .errors import UserError
from .files import DEFAULT_DATASET, default_output_dir


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


def seed_value(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2 ** 64:  # the range torch.manual_seed accepts for every generator
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64-1, not {text}")
    return value


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
        args.output_dir = default_output_dir(args.dataset)
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
