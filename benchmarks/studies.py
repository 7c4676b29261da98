"""What the benchmark measures: throughput against a typical port, time to the original's
quality, scaling with batch and data size, the speed levers one at a time, and the cost of
what happens between epochs."""

from __future__ import annotations

import argparse
import gc
import io
import math
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np
import torch

from autoencoder.checkpoint import Checkpoints
from autoencoder.datasets import Splits
from autoencoder.device import cuda_tf32, reconstruction_mse
from autoencoder.model import AutoEncoder, CodeSpec
from autoencoder.progress import BarProgress, LineProgress, Progress
from autoencoder.reference import original_test_mse
from autoencoder.run_files import LOG_INTERVAL, RunFiles
from autoencoder.training import (
    TRACED_IMAGES,
    TRACED_MAX_UNITS,
    History,
    data_tensors,
    evaluate,
    record_epoch,
    start_epoch,
    trace_codes,
    train_epoch,
    train_step,
)
from timing import (
    BATCH,
    EPOCH_IMAGES,
    ShortRun,
    Timer,
    TypicalPort,
    bench_config,
    interleave,
    loader_timer,
    new_state,
    peak_memory,
    port_timer,
    project_timer,
    reset_peak_memory,
    seconds_of,
    short_run,
    timed,
)

GPU_EPOCH_SECONDS = 0.050  # a fast GPU's epoch: the between-epoch budget is 10 % of it
BETWEEN_EPOCH_BUDGET = 0.005


def throughput(
    specs: list[CodeSpec],
    data: dict,
    images: np.ndarray,
    device: torch.device,
    precision: str,
    args: argparse.Namespace,
) -> dict:
    out = {}
    for spec in specs:
        run = short_run(bench_config(spec, device, precision), data, args.steps)
        timed = interleave(
            {"typical_port": port_timer(spec, images, device, args.steps), "project": project_timer(run)},
            args.repeats,
            device,
        )
        timed["speedup"] = timed["project"]["images_per_s"] / timed["typical_port"]["images_per_s"]
        out[spec.name] = timed
        gc.collect()
    return out


def time_to_quality(
    spec: CodeSpec, recipe: str, data: dict, device: torch.device, precision: str, time_limit: float
) -> dict:
    """Train with the recipe's defaults until the test MSE reaches the original's, or time runs out."""
    target = original_test_mse(spec.name)
    start = time.perf_counter()
    with cuda_tf32(device, True):
        state = new_state(bench_config(spec, device, precision, recipe=recipe), len(data["train"]))
        clock, eval_clock, mses = time.perf_counter() - start, 0.0, []
        for _ in range(state.config.epochs):
            clock += seconds_of(lambda: train_epoch(state, data["train"]), device)
            start = time.perf_counter()
            mses.append(evaluate(state.model, data["test"], "fp32"))
            eval_clock += time.perf_counter() - start
            if (target is not None and mses[-1] <= target) or clock >= time_limit:
                break
    reached = target is not None and mses[-1] <= target
    return {
        "target_mse": target,
        "reached": reached,
        "seconds": clock if reached else None,
        "epochs": len(mses),
        "train_seconds": clock,
        "eval_seconds": eval_clock,
        "best_mse": min(mses),
        "test_mse": mses,
        "time_limit": time_limit,
        "epochs_in_recipe": state.config.epochs,
    }


def scaling(spec: CodeSpec, splits: Splits, device: torch.device, precision: str, args: argparse.Namespace) -> dict:
    """Per-epoch seconds (extrapolated from a few steps) and peak memory by batch and data size."""
    points = [(b, EPOCH_IMAGES) for b in args.batch_sizes] + [(BATCH, n) for n in args.train_sizes]
    rows = []
    for batch, wanted in points:
        reset_peak_memory(device)
        n_train = min(wanted, len(splits.train_x))  # a small dataset (the tests') has fewer
        data = data_tensors(splits, n_train, device)  # these n images stay resident
        steps = max(1, min(args.steps, math.ceil(4096 / batch)))
        run = short_run(bench_config(spec, device, precision, batch_size=batch), data, steps)
        timed = interleave({"project": project_timer(run)}, max(1, args.repeats // 2), device)["project"]
        timed.pop("losses")
        n = len(data["train"])
        rows.append(
            {
                "batch_size": batch,
                "train_images": n,
                **timed,
                "seconds_per_epoch": timed["seconds_per_epoch"] / EPOCH_IMAGES * n,
                **peak_memory(device),
            }
        )
        del data, run
    return {"model": spec.name, "rows": rows}


def step_levers(
    spec: CodeSpec, data: dict, images: np.ndarray, device: torch.device, precision: str, args: argparse.Namespace
) -> list[dict]:
    """Each lever changed alone from the project's step, all timed in turn; every run but the
    DataLoader ones starts from the same weights and sees the same batches, so losses compare."""
    other = "fp32" if precision != "fp32" else "bf16"

    def run(prec: str = precision, **settings: object) -> ShortRun:
        return short_run(bench_config(spec, device, prec, **settings), data, args.steps)

    loader_run = run()

    timers: dict[str, Timer] = {
        f"project step ({precision}, fused AdamW, index batches)": project_timer(run()),
        f"{other} instead of {precision}": project_timer(run(other)),
        "foreach AdamW instead of fused": project_timer(run(adamw="foreach")),
        "default AdamW instead of fused": project_timer(run(adamw="default")),
        ".item() after every step": project_timer(run(), sync_every_step=True),
        f"1 thread instead of {torch.get_num_threads()}": project_timer(run(), n_threads=1),
        "DataLoader per-sample batches instead of index batches": loader_timer(
            lambda x: train_step(loader_run.state, x), TypicalPort(spec, images, device).loader, args.steps, device
        ),
        "typical port (all of the above at once)": port_timer(spec, images, device, args.steps),
    }
    if device.type == "cuda":
        timers["fp32 without TF32 (fp32 project step)"] = project_timer(run("fp32"), allow_tf32=False)
        timers["fp32 with TF32 (fp32 project step)"] = project_timer(run("fp32"))
    if args.compile:
        timers["torch.compile (--compile; warm-up includes compiling)"] = project_timer(run(compile="default"))
    timed = interleave(timers, args.repeats, device)
    base = next(iter(timed.values()))
    rows = []
    for name, row in timed.items():
        row = {"lever": name, **row, "speed_vs_project": row["images_per_s"] / base["images_per_s"]}
        if "losses" in row:
            row["loss_change"] = row["losses"][-1] / base["losses"][-1] - 1
        if "compile" in name:
            row["compile_seconds"] = row["warmup_seconds"] - statistics.median(row["repeat_seconds"])
        rows.append(row)
    return rows


def eval_levers(spec: CodeSpec, data: dict, device: torch.device, precision: str, n_images: int) -> list[dict]:
    """Test-set evaluation: batches of 500 under no_grad (typical) against the trainer's way."""
    torch.manual_seed(0)
    model = AutoEncoder(spec).to(device).eval()
    x = data["test"][:n_images]

    def typical() -> float:
        with torch.no_grad():
            return float(sum(((model(b).flatten(1) - b) ** 2).sum().item() for b in x.split(BATCH)) / x.numel())

    ways = [
        ("eval: batches of 500, no_grad, fp32 (typical)", typical),
        ("eval: reconstruction_mse, inference_mode, fp32 (trainer)", lambda: reconstruction_mse(model, x, "fp32")),
        (f"eval: reconstruction_mse, inference_mode, {precision}", lambda: reconstruction_mse(model, x, precision)),
    ]
    rows: list[dict[str, Any]] = []
    for name, fn in ways:
        fn()  # warm-up
        seconds, mse = timed(fn, device)
        rows.append({"lever": name, "seconds": seconds, "images": len(x), "mse": mse})
    for row in rows:
        row["speed_vs_typical"] = rows[0]["seconds"] / row["seconds"]
    return rows


def forward_flops(model: AutoEncoder, encoder_only: bool = False) -> int:
    """Multiply-adds times two of one image's forward pass (convolution and dense layers)."""
    flops = 0
    for layer in model.lasagne_layers():
        assert isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)), layer
        if encoder_only and layer is model.code:
            flops += 2 * layer.weight.numel()
            break
        per_output = layer.weight[0].numel()
        outputs = 32 * 24 * 24 if isinstance(layer, torch.nn.Conv2d) else layer.weight.shape[0]
        flops += 2 * per_output * outputs
    return flops


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(seconds_of(fn, device) for _ in range(repeats))


def between_epochs(spec: CodeSpec, recipe: str, data: dict, device: torch.device, precision: str, repeats: int) -> dict:
    """What the trainer does between two epochs, each part timed alone on this machine (median of
    `repeats`), and split into what a faster device speeds up and what it does not."""
    with tempfile.TemporaryDirectory() as out:
        config = bench_config(spec, device, precision, recipe=recipe, output_dir=out)
        state = new_state(config, EPOCH_IMAGES)
        train_step(state, data["train"][: config.batch_size])  # the optimizer's state, as the checkpoint holds it
        epochs = config.epochs
        done = epochs - 2
        state.history = History([0.05] * done, [0.05] * done, [1.0] * done, settings=config.as_dict())
        batches = math.ceil(EPOCH_IMAGES / config.batch_size)  # the next epoch is the last but one
        loss_sum = torch.zeros((), device=device)
        files = RunFiles(config)
        checkpoints = Checkpoints(files.paths.checkpoint, config.checkpoint_interval)
        quiet_files = RunFiles(config, log_interval=math.inf)  # the log and checkpoint are timed
        quiet_checkpoints = Checkpoints(files.paths.checkpoint, math.inf)  # apart, below

        def progress_epoch(progress: Progress) -> None:
            progress.model_started(spec.name, epochs, 0)
            progress.epoch_started(epochs, batches, 0)
            for step in range(1, batches + 1):
                progress.step(step, lambda: loss_sum.item())
            progress.epoch_ended(epochs, 0.05, 0.05, 1.0)
            progress.model_ended()

        def record() -> None:
            record_epoch(state, 0.05, 0.05, 1.0)
            quiet_files.write_log_when_due(state, force=quiet_checkpoints.due(state))
            LineProgress(io.StringIO()).epoch_ended(epochs - 1, 0.05, 0.05, 1.0)
            quiet_checkpoints.save_when_due(state)
            del state.history.training_loss[-1], state.history.validation_loss[-1], state.history.epoch_time[-1]

        def new_epoch() -> None:
            state.partial = None
            start_epoch(state, EPOCH_IMAGES)

        checkpoint = median_seconds(lambda: checkpoints.save(state), device, max(1, repeats // 2))
        log_write = median_seconds(lambda: files.write_log(state, durable=False), device, repeats)
        checkpoint_bytes = checkpoints.path.stat().st_size
        fixed = {
            "start of an epoch: shuffle, indices to the device": median_seconds(new_epoch, device, repeats),
            "losses to the host (.item() of the loss sum)": median_seconds(loss_sum.item, device, repeats),
            "history and the epoch's line": median_seconds(record, device, repeats),
            f"log rewrite ({epochs} epochs, {log_write * 1000:.1f} ms here) every {LOG_INTERVAL:g} s, per "
            f"{GPU_EPOCH_SECONDS * 1000:.0f} ms epoch": log_write * min(1, GPU_EPOCH_SECONDS / LOG_INTERVAL),
            f"progress, {batches} steps: plain lines": median_seconds(
                lambda: progress_epoch(LineProgress(io.StringIO())), device, repeats
            ),
            f"checkpoint ({checkpoint_bytes / 1e6:.0f} MB, {checkpoint:.2f} s here) every "
            f"{config.checkpoint_interval:g} s, per {GPU_EPOCH_SECONDS * 1000:.0f} ms epoch": checkpoint
            * GPU_EPOCH_SECONDS
            / config.checkpoint_interval,
        }
        bars = median_seconds(lambda: progress_epoch(BarProgress(io.StringIO())), device, repeats)
        model = state.model
        train_flops = 3 * forward_flops(model) * EPOCH_IMAGES
        traced = 0 if spec.is_image or spec.units > TRACED_MAX_UNITS else min(TRACED_IMAGES, len(data["test"]))
        scaled = {
            "validation": (
                median_seconds(lambda: evaluate(model, data["valid"], precision), device, repeats),
                forward_flops(model) * len(data["valid"]),
            ),
            "code trace": (
                median_seconds(lambda: trace_codes(state, data["test"]), device, repeats),
                forward_flops(model, encoder_only=True) * traced,
            ),
        }
    gpu_rate = train_flops / GPU_EPOCH_SECONDS
    return {
        "model": spec.name,
        "recipe": recipe,
        "epochs": epochs,
        "batches_per_epoch": batches,
        "fixed_seconds": fixed,
        "fixed_total_seconds": sum(fixed.values()),
        "progress_bars_seconds": bars,
        "budget_seconds": BETWEEN_EPOCH_BUDGET,
        "training_epoch_flops": train_flops,
        "gpu_epoch_seconds": GPU_EPOCH_SECONDS,
        "scaled": {
            name: {"seconds_here": s, "flops": f, "seconds_at_gpu_rate": f / gpu_rate}
            for name, (s, f) in scaled.items()
        },
    }
