"""Whole loss curves: does the fast step learn like float32? Two studies share one curve runner.

- `curves`: the modern recipe, the project's step (its precision, fused AdamW) against the
  reference step (fp32, default AdamW) over a whole short one-cycle schedule, three seeds each.
- `precision`: the original recipe, bf16 autocast against fp32 throughout (as in 2016), two
  seeds each, full data, beside the 2016 run's validation curve (as true means).

One seed gives both sides the same initial weights, batches and dropout masks; the gap between
their mean validation losses is set against two standard errors of the seed-to-seed noise.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from autoencoder.device import cuda_tf32
from autoencoder.model import CodeSpec
from autoencoder.recipes import TrainConfig
from autoencoder.reference import original_run
from autoencoder.training import evaluate, train_epoch
from timing import bench_config, new_state

CURVE_SEEDS = (0, 1, 2)
PRECISION_SEEDS = (0, 1)


def loss_curve(config: TrainConfig, data: dict, epochs: int, tf32: bool) -> dict[str, list[float]]:
    """Training loss, fp32 validation MSE and seconds of each of the first `epochs` epochs."""
    state = new_state(config, len(data["train"]))
    curve: dict[str, list[float]] = {"training_loss": [], "validation_loss": [], "epoch_seconds": []}
    with cuda_tf32(state.device, tf32):
        for _ in range(epochs):
            start = time.perf_counter()
            curve["training_loss"].append(train_epoch(state, data["train"])[0])
            curve["epoch_seconds"].append(time.perf_counter() - start)
            curve["validation_loss"].append(evaluate(state.model, data["valid"], "fp32"))
    return curve


def curve_gap(project: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """The gap between the two means over seeds, and two standard errors of that gap (from the
    seed-to-seed spread), both relative to the reference's mean."""
    scale = statistics.mean(reference)
    spread = math.sqrt((statistics.variance(project) + statistics.variance(reference)) / 2)
    return {
        "gap": statistics.mean(project) / scale - 1,
        "two_standard_errors": 2 * spread * math.sqrt(2 / len(project)) / scale,
    }


def compare(sides: dict[str, tuple[TrainConfig, bool]], seeds: tuple[int, ...], data: dict, epochs: int) -> dict:
    """Each side's curve from each seed; the first side is set against the second, epoch by epoch."""
    curves = {
        f"{name} seed {seed}": loss_curve(replace(config, seed=seed), data, epochs, tf32)
        for name, (config, tf32) in sides.items()
        for seed in seeds
    }
    first, second = sides
    by_epoch = {
        name: list(zip(*(curves[f"{name} seed {s}"]["validation_loss"] for s in seeds))) for name in (first, second)
    }
    gaps = [curve_gap(a, b) for a, b in zip(by_epoch[first], by_epoch[second])]
    outside = [epoch for epoch, g in enumerate(gaps, start=1) if abs(g["gap"]) > g["two_standard_errors"]]
    return {
        "epochs": epochs,
        "train_images": len(data["train"]),
        "curves": curves,
        "gaps": gaps,
        "within_noise_at_end": epochs not in outside,
        "epochs_outside_noise": outside,
    }


def loss_curves(spec: CodeSpec, data: dict, device: torch.device, precision: str, args: argparse.Namespace) -> dict:
    """The modern recipe: the faster step keeps the curve when the gap between the mean
    validation losses stays within two standard errors of the seed-to-seed noise."""
    subset = {**data, "train": data["train"][: args.curve_images]}
    epochs = args.curve_epochs
    sides = {
        "project": (bench_config(spec, device, precision, epochs=epochs), True),
        "reference": (bench_config(spec, device, "fp32", epochs=epochs, adamw="default"), False),
    }
    result = compare(sides, CURVE_SEEDS, subset, epochs)
    result["curves"] = {
        name: result["curves"][name]
        for name in [f"{side} seed {s}" for side in ("reference", "project") for s in CURVE_SEEDS]
    }
    return {"model": spec.name, "project": f"{precision}, fused AdamW", "reference": "fp32, default AdamW", **result}


def original_precision(spec: CodeSpec, data: dict, device: torch.device, args: argparse.Namespace) -> dict:
    """The original recipe in bf16 autocast (with TF32 on CUDA, as the trainer runs it) against
    fp32 throughout, beside the 2016 run's validation losses (true means)."""
    sides = {
        "bf16": (bench_config(spec, device, "bf16", recipe="original"), True),
        "fp32": (bench_config(spec, device, "fp32", recipe="original"), False),
    }
    result = compare(sides, PRECISION_SEEDS, data, args.precision_epochs)
    run_2016 = original_run(spec.name)
    result["original_2016_validation_loss"] = run_2016["validation loss"][: args.precision_epochs] if run_2016 else None
    return {"model": spec.name, **result}
