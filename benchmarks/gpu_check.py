"""The GPU check's measurements and verdicts (benchmarks/gpu_check.sh runs the training first).

    python benchmarks/gpu_check.py --default-dir D --original-dir O --json RESULT.json

Times the 3D model's modern training step for one epoch (100 batches of 500) eagerly and
under torch.compile (its default mode, and reduce-overhead, which replays CUDA graphs),
against the 25 ms target; checks the default run's test MSE in D against the reference run
in docs/results (within 5 %) and the original recipe's in O against the 2016 result (within
10 %); writes every figure to RESULT.json and ends with one summary line. Exit 0 if all pass.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: helpers.py is one folder up

from autoencoder.cli import OneLineParser, positive_int, run_main
from autoencoder.datasets import DEFAULT_DATASET
from autoencoder.device import cuda_tf32, pick_device, resolve_precision
from autoencoder.files import OutputPaths, load_info, write_text_atomic
from autoencoder.recipes import TrainConfig
from autoencoder.reference import original_test_mse
from autoencoder.sources import load_dataset
from autoencoder.training import data_tensors, train_epoch
from timing import device_name, new_state, seconds_of

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_RUN = ROOT / "docs" / "results"  # the default run on the 2-core CPU
DEFAULT_TOLERANCE = 0.05
ORIGINAL_TOLERANCE = 0.10
EPOCH_TARGET_MS = 25.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--default-dir", type=Path, required=True, help="outputs of `python auto_encoder.py`")
    p.add_argument(
        "--original-dir",
        type=Path,
        required=True,
        help="outputs of `python auto_encoder.py --recipe original --model 3D --precision fp32`",
    )
    p.add_argument("--json", type=Path, required=True, help="where the results go")
    p.add_argument("--device", help="default: the best available (cuda)")
    p.add_argument("--data", help="MNIST (default: $MNIST_DATA, the data/ cache, a download)")
    p.add_argument("--timed-epochs", type=positive_int, default=3, help="epochs timed after the warm-up one")
    p.add_argument("--train-images", type=positive_int, default=50_000, help="images an epoch (default 50000)")
    p.add_argument(
        "--compile-modes",
        default="none,default,reduce-overhead",
        help="torch.compile modes to time, none for eager (default none,default,reduce-overhead)",
    )
    return p.parse_args(argv)


def step_timings(data: dict, device: torch.device, epochs: int, modes: list[str]) -> list[dict]:
    """ms per epoch of the 3D modern step, eager and compiled; the first epoch (compiling) apart."""
    rows = []
    for mode in modes:
        config = TrainConfig(
            "3D",
            device=str(device),
            precision=resolve_precision("auto", device),
            compile=mode,
            output_dir=tempfile.gettempdir(),
        )
        torch.compiler.reset()
        state = new_state(config, len(data["train"]))
        with cuda_tf32(device):
            epoch = functools.partial(train_epoch, state, data["train"])
            first = seconds_of(epoch, device)
            seconds = [seconds_of(epoch, device) for _ in range(epochs)]
        ms = 1000 * statistics.median(seconds)
        rows.append(
            {
                "compile": mode,
                "ms_per_epoch": ms,
                "first_epoch_seconds": first,
                "epoch_seconds": seconds,
                "target_ms": EPOCH_TARGET_MS,
                "met": ms <= EPOCH_TARGET_MS,
            }
        )
    return rows


def mse_check(folder: Path, model: str, reference: float, tolerance: float) -> dict:
    """The test MSE of `model` in `folder` against `reference`, within a relative tolerance."""
    path = OutputPaths.of(folder, model).info
    mse = load_info(path)["test mse"] if path.is_file() else None
    low, high = reference * (1 - tolerance), reference * (1 + tolerance)
    return {
        "model": model,
        "folder": str(folder),
        "test_mse": mse,
        "reference": reference,
        "band": [low, high],
        "met": mse is not None and low <= mse <= high,
    }


def check(args: argparse.Namespace) -> int:
    original_mse = original_test_mse("3D")
    if original_mse is None:
        raise RuntimeError("the 2016 logs (autoencoder/original_2016.json) have no 3D run")
    device = pick_device(args.device)
    splits = load_dataset(DEFAULT_DATASET, args.data)
    data = data_tensors(splits, min(args.train_images, len(splits.train_x)), device)
    results: dict[str, Any] = {
        "device": device_name(device),
        "torch": torch.__version__,
        "steps": step_timings(data, device, args.timed_epochs, args.compile_modes.split(",")),
        "default_run": [
            mse_check(
                args.default_dir, m, load_info(OutputPaths.of(REFERENCE_RUN, m).info)["test mse"], DEFAULT_TOLERANCE
            )
            for m in ("3D", "4x4")
        ],
        "original_recipe": mse_check(args.original_dir, "3D", original_mse, ORIGINAL_TOLERANCE),
    }
    checks = [*results["default_run"], results["original_recipe"]]
    best = min(results["steps"], key=lambda row: row["ms_per_epoch"])
    results["passed"] = all(c["met"] for c in checks) and best["met"]
    write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    mses = "; ".join(
        f"{c['model']} {_mse(c['test_mse'])} (reference {c['reference']:.4f}, {'ok' if c['met'] else 'OUT OF BAND'})"
        for c in checks
    )
    steps = ", ".join(f"{r['compile']} {r['ms_per_epoch']:.1f}" for r in results["steps"])
    print(
        f"gpu_check: {'PASS' if results['passed'] else 'FAIL'} on {results['device']}: test MSE {mses}; "
        f"ms per epoch {steps} (target {EPOCH_TARGET_MS:g}); results in {args.json}"
    )
    return 0 if results["passed"] else 1


def _mse(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: check(args))


if __name__ == "__main__":
    sys.exit(main())
