"""Benchmark the trainer against a typical PyTorch port, side by side in one process.

    python benchmarks/bench_train.py --quick     # about a minute on a 2-core CPU: 3D throughput, between epochs
    python benchmarks/bench_train.py             # throughput, time to quality, scaling, loss curves, between epochs
    python benchmarks/bench_train.py --parts precision   # the original recipe, bf16 against fp32 and 2016
    python benchmarks/bench_train.py --levers    # which speed levers pay on this machine

Parts (--parts): throughput (the project's step against a typical port: per-sample uint8
Dataset, DataLoader, fp32, default AdamW, one .item() per step; a few steps extrapolated to a
50,000-image epoch), quality (the training clock until the test MSE first reaches the
original's), scaling (batch and data size), curves (modern recipe: the fast step's loss curve
against fp32's, three seeds), between (what happens between two epochs, each part timed, split
into what a faster device speeds up and what it does not), precision (original recipe: bf16
against fp32, two seeds, beside the 2016 curve; long: not in the default set).

Prints tables and writes the same figures to output/benchmarks/<device>.json, where git ignores
them (--results-dir to change it); the measured results the docs quote are in benchmarks/results/,
where no run writes unless told to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: helpers.py is one folder up

from autoencoder.cli import OneLineParser, positive_float, positive_int, run_main
from autoencoder.datasets import DATASETS, DEFAULT_DATASET
from autoencoder.device import pick_device, resolve_precision
from autoencoder.files import write_text_atomic
from autoencoder.model import parse_models
from autoencoder.recipes import RECIPES
from autoencoder.sources import load_dataset
from autoencoder.training import data_tensors
from curves import loss_curves, original_precision
from report import print_report
from studies import between_epochs, eval_levers, scaling, step_levers, throughput, time_to_quality
from timing import BATCH, as_uint8, device_name, results_path, threads

PARTS = ("throughput", "quality", "scaling", "curves", "between", "precision")
DEFAULT_PARTS = ("throughput", "quality", "scaling", "curves", "between")
RESULTS_DIR = Path("output") / "benchmarks"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3D throughput and between epochs, few steps (~1 min on CPU)")
    p.add_argument("--levers", action="store_true", help="measure the speed levers instead")
    p.add_argument("--compile", action="store_true", help="with --levers: also time torch.compile")
    p.add_argument("--parts", default=",".join(DEFAULT_PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    p.add_argument("--models", default="both", help="models for throughput and quality (default both)")
    p.add_argument("--steps", type=positive_int, help="timed steps a repeat (default 10; quick 2)")
    p.add_argument("--repeats", type=positive_int, help="timed repeats (default 5; quick 3)")
    p.add_argument("--batch-sizes", default="128,256,512,1024,2048,4096", help="for scaling")
    p.add_argument("--train-sizes", default="10000,25000,50000", help="for scaling (batch 500)")
    p.add_argument("--recipes", default="modern,original", help="recipes for time to quality (default modern,original)")
    p.add_argument(
        "--time-limit",
        type=positive_float,
        default=300.0,
        help="seconds of training allowed to each time-to-quality run (default 300)",
    )
    p.add_argument(
        "--curve-epochs",
        type=positive_int,
        default=8,
        help="epochs of each loss-curve run, a whole one-cycle schedule (default 8)",
    )
    p.add_argument(
        "--curve-images",
        type=positive_int,
        default=10_000,
        help="training images of each loss-curve run (default 10000)",
    )
    p.add_argument(
        "--precision-epochs",
        type=positive_int,
        default=10,
        help="epochs of each run of the precision part (default 10)",
    )
    p.add_argument(
        "--eval-images", type=positive_int, default=10_000, help="test images for the evaluation levers (default 10000)"
    )
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="the project's precision (default auto, as the trainer)",
    )
    p.add_argument("--dataset", choices=list(DATASETS), default=DEFAULT_DATASET, help=f"default: {DEFAULT_DATASET}")
    p.add_argument("--data", help="the dataset's files (default: $MNIST_DATA, the data/ cache, a download)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="default: output/benchmarks/")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.steps = args.steps or (2 if args.quick else 10)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.parts = ["throughput", "between"] if args.quick else [s.strip() for s in args.parts.split(",") if s.strip()]
    if args.quick:
        args.models = "3D"
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s) {', '.join(sorted(unknown))}; use {', '.join(PARTS)}")
    try:
        args.batch_sizes = [int(s) for s in args.batch_sizes.split(",")]
        args.train_sizes = [int(s) for s in args.train_sizes.split(",")]
    except ValueError:
        p.error("--batch-sizes and --train-sizes take comma-separated integers")
    if min(args.batch_sizes + args.train_sizes) <= 0:
        p.error("--batch-sizes and --train-sizes must be positive")
    epochs = RECIPES["modern"].epochs
    if args.repeats >= epochs:
        p.error(
            f"--repeats must be below {epochs}: each repeat is one (short) epoch of the "
            f"trainer's {epochs}-epoch schedule"
        )
    return args


def measure(args: argparse.Namespace, device: torch.device, precision: str, results: dict) -> None:
    """Run the parts asked for, each adding its figures to `results`."""
    specs = parse_models(args.models)
    splits = load_dataset(args.dataset, args.data, log=lambda line: print(line, file=sys.stderr))
    results["data"] = splits.source
    data = data_tensors(splits, None, device)
    if args.levers:
        images = as_uint8(splits.train_x)
        results["levers"] = {
            "model": specs[0].name,
            "step": step_levers(specs[0], data, images, device, precision, args),
            "eval": eval_levers(specs[0], data, device, precision, args.eval_images),
        }
        return
    if "throughput" in args.parts:
        results["throughput"] = throughput(specs, data, as_uint8(splits.train_x), device, precision, args)
    if "between" in args.parts:
        results["between"] = {
            recipe: between_epochs(specs[0], recipe, data, device, precision, args.repeats)
            for recipe in ("modern", "original")
        }
    if "quality" in args.parts:
        results["quality"] = {
            recipe: {s.name: time_to_quality(s, recipe, data, device, precision, args.time_limit) for s in specs}
            for recipe in args.recipes.split(",")
        }
    if "curves" in args.parts:
        results["curves"] = loss_curves(specs[0], data, device, precision, args)
    if "precision" in args.parts:
        results["original_precision"] = original_precision(specs[0], data, device, args)
    if "scaling" in args.parts:
        del data  # scaling loads its own training sets; free the full one first
        results["scaling"] = scaling(specs[0], splits, device, precision, args)


def run_benchmark(args: argparse.Namespace) -> tuple[dict, Path]:
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    suffix = "-levers" if args.levers else "-quick" if args.quick else ""
    suffix += "" if DATASETS[args.dataset].is_default else f"-{args.dataset}"
    results = {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "steps": args.steps,
        "repeats": args.repeats,
        "batch_size": BATCH,
        "load_average": list(os.getloadavg()),
        "command": " ".join(["python benchmarks/bench_train.py", *args.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "dataset": args.dataset,
    }
    start = time.perf_counter()
    measure(args, device, precision, results)
    results["benchmark_seconds"] = time.perf_counter() - start
    results["load_average_end"] = list(os.getloadavg())
    if "throughput" in results and "3D" in results["throughput"]:
        results["speedup_vs_typical_port"] = results["throughput"]["3D"]["speedup"]
    path = results_path(args.results_dir, device, suffix)
    write_text_atomic(path, json.dumps(merged_with_earlier(path, results), indent=2) + "\n")
    return results, path


def merged_with_earlier(path: Path, results: dict) -> dict:
    """Keep the parts (and recipes) of an earlier run on this device that this run did not measure."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    quality = {**earlier.get("quality", {}), **results.get("quality", {})}
    return {**earlier, **results, **({"quality": quality} if quality else {})}


def benchmark_and_report(args: argparse.Namespace) -> None:
    with threads(args.threads):
        results, path = run_benchmark(args)
    print_report(results)
    print(f"\nwrote {path}")
    if "speedup_vs_typical_port" in results:
        print(f"speedup_vs_typical_port: {results['speedup_vs_typical_port']:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: benchmark_and_report(args))


if __name__ == "__main__":
    sys.exit(main())
