"""Benchmark the trainer against a typical PyTorch port, side by side in one process.

    python benchmarks/bench_train.py --quick     # under a minute on a 2-core CPU: 3D throughput only
    python benchmarks/bench_train.py             # throughput, time to the original's quality, scaling
    python benchmarks/bench_train.py --levers    # which speed levers pay on this machine

1. Throughput: the project's step (auto_encoder.Run.train_epoch: device-resident data, index
   batches, its precision and optimizer) against a typical port (per-sample Dataset of uint8
   images, DataLoader, fp32, default AdamW, one .item() per step), same model and settings.
   Each timing runs a few steps and is extrapolated to a 50,000-image epoch.
2. Time to quality: the training clock (model build plus epochs, evaluation excluded) until the
   test MSE, evaluated after each epoch, first reaches the original's final test MSE.
3. Scaling: seconds per epoch and peak memory for several batch sizes and training-set sizes.
4. Loss curves: the project's fast step (its precision, fused AdamW) against the reference step
   (fp32, default AdamW) over a whole short schedule, three seeds each: the gap between their
   mean validation losses is set against two standard errors of the seed-to-seed noise.

Prints a table and writes the same figures to benchmarks/results/<device>.json.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import auto_encoder  # noqa: E402
from helpers import (AutoEncoder, CodeSpec, cuda_tf32, load_mnist, parse_models, run_script,  # noqa: E402
                     pick_device, reconstruction_mse, resolve_precision,
                     write_text_atomic)

TARGET_MSE = {"3D": 0.0332, "4x4": 0.0197}  # the original's final test MSE (its README logs)
EPOCH_IMAGES = 50_000                       # a full training epoch, for extrapolation
BATCH = 500
PARTS = ("throughput", "quality", "scaling", "curves")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3D throughput only, few steps (< 1 min on CPU)")
    p.add_argument("--levers", action="store_true", help="measure the speed levers instead")
    p.add_argument("--compile", action="store_true", help="with --levers: also time torch.compile")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    p.add_argument("--models", default="both", help="models for throughput and quality (default both)")
    p.add_argument("--steps", type=auto_encoder.positive_int, help="timed steps a repeat (default 10; quick 2)")
    p.add_argument("--repeats", type=auto_encoder.positive_int, help="timed repeats (default 5; quick 3)")
    p.add_argument("--batch-sizes", default="128,256,512,1024,2048,4096", help="for scaling")
    p.add_argument("--train-sizes", default="10000,25000,50000", help="for scaling (batch 500)")
    p.add_argument("--recipes", default="modern,original",
                   help="recipes for time to quality (default modern,original)")
    p.add_argument("--time-limit", type=auto_encoder.positive_float, default=300.0,
                   help="seconds of training allowed to each time-to-quality run (default 300)")
    p.add_argument("--curve-epochs", type=auto_encoder.positive_int, default=8,
                   help="epochs of each loss-curve run, a whole one-cycle schedule (default 8)")
    p.add_argument("--curve-images", type=auto_encoder.positive_int, default=10_000,
                   help="training images of each loss-curve run (default 10000)")
    p.add_argument("--eval-images", type=auto_encoder.positive_int, default=10_000,
                   help="test images for the evaluation levers (default 10000)")
    p.add_argument("--threads", type=auto_encoder.positive_int, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="the project's precision (default auto, as the trainer)")
    p.add_argument("--data", help="MNIST file or folder (default: $MNIST_DATA, the data/ cache, download)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="default: benchmarks/results/")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.steps = args.steps or (2 if args.quick else 10)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.parts = ["throughput"] if args.quick else [s.strip() for s in args.parts.split(",") if s.strip()]
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
    epochs = auto_encoder.RECIPE_DEFAULTS["modern"]["epochs"]
    if args.repeats >= epochs:
        p.error(f"--repeats must be below {epochs}: each repeat is one (short) epoch of the "
                f"trainer's {epochs}-epoch schedule")
    return args


# ---------------------------------------------------------------------------
# Machine, clocks and memory
# ---------------------------------------------------------------------------

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def results_path(results_dir: Path, device: torch.device, suffix: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")
    return results_dir / f"{device.type}-{slug}{suffix}.json"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: Linux resets VmHWM on `echo 5 > clear_refs`; CUDA has its own."""
    gc.collect()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak process RSS since the last reset (MB), and on CUDA the peak allocated memory."""
    try:
        status = Path("/proc/self/status").read_text()
        peak = {"peak_rss_mb": int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024}
    except (OSError, AttributeError):  # no /proc: the lifetime peak is the best there is
        import resource
        scale = 1 if sys.platform == "darwin" else 1024
        peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20}
    if device.type == "cuda":
        peak["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    saved = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


# A timer runs one repeat (a short epoch or a few steps) and returns (images, loss or None).
Timer = Callable[[], "tuple[int, float | None]"]


def interleave(timers: dict[str, Timer], repeats: int, device: torch.device) -> dict[str, dict]:
    """One warm-up repeat each, then timed repeats taken in turn, so that a change in the
    machine's load (the CPU here is shared) hits every contender alike; medians per contender."""
    names = list(timers)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    losses: dict[str, list] = {name: [] for name in names}
    images: dict[str, int] = {}
    for repeat in range(repeats + 1):
        turn = repeat % len(names)
        for name in names[turn:] + names[:turn]:
            torch.manual_seed(repeat)  # every contender's repeat draws the same dropout masks
            sync(device)
            start = time.perf_counter()
            images[name], loss = timers[name]()
            sync(device)
            seconds[name].append(time.perf_counter() - start)
            losses[name].append(loss)
    out = {}
    for name in names:
        median = statistics.median(seconds[name][1:])
        out[name] = {"seconds_per_epoch": median / images[name] * EPOCH_IMAGES,
                     "images_per_s": images[name] / median, "warmup_seconds": seconds[name][0],
                     "repeat_seconds": seconds[name][1:], "images_per_repeat": images[name]}
        if losses[name][-1] is not None:
            out[name]["losses"] = losses[name]
    return out


# ---------------------------------------------------------------------------
# The project's step
# ---------------------------------------------------------------------------

def project_run(spec: CodeSpec, data: dict[str, torch.Tensor], device: torch.device, precision: str,
                *options: str) -> auto_encoder.Run:
    """The trainer's own Run, built from its own command line (it writes no files here)."""
    args = auto_encoder.parse_args(["--model", spec.name, "--output-dir", tempfile.gettempdir(),
                                    "--device", str(device), *options])
    return auto_encoder.Run(args, spec, data, device, precision, auto_encoder.StopFlag())


def short_run(spec: CodeSpec, data: dict[str, torch.Tensor], device: torch.device, precision: str,
              steps: int, batch: int = BATCH, *options: str) -> auto_encoder.Run:
    """A Run whose epoch is `steps` batches: its training set is the first steps*batch images."""
    short = {**data, "train": data["train"][:steps * batch]}
    return project_run(spec, short, device, precision, "--batch-size", str(batch), *options)


def fresh_epoch(run: auto_encoder.Run) -> float:
    """A new epoch of Run.train_epoch (no log or checkpoint); returns its mean training loss."""
    run.partial = None
    return run.train_epoch(tqdm(disable=True))


def fp32_mse(run: auto_encoder.Run, x: torch.Tensor) -> float:
    """The run's reconstruction MSE on `x` in fp32, without dropout; the run keeps training after."""
    run.model.eval()
    mse = reconstruction_mse(run.model, x, "fp32")
    run.model.train()
    return mse


def project_timer(run: auto_encoder.Run, sync_every_step: bool = False, n_threads: int | None = None,
                  allow_tf32: bool = True) -> Timer:
    """One short epoch of Run.train_epoch, as the trainer runs it (TF32 on, as its main sets)."""
    def once() -> tuple[int, float]:
        with threads(n_threads), cuda_tf32(run.device, allow_tf32):
            loss = sync_steps(run) if sync_every_step else fresh_epoch(run)
        return len(run.data["train"]), loss
    return once


def sync_steps(run: auto_encoder.Run) -> float:
    """Run.train_step over the same batches as train_epoch, with an .item() after each step."""
    train = run.data["train"]
    perm = torch.randperm(len(train), generator=run.generator).to(run.device)
    total = sum(run.train_step(train[idx]).item() * len(idx) for idx in perm.split(run.args.batch_size))
    return total / len(train)


def swap_adamw(run: auto_encoder.Run, **impl: bool) -> auto_encoder.Run:
    """Give a modern run an AdamW of another implementation with the same settings."""
    a = run.args
    run.optimizer = torch.optim.AdamW(run.model.parameters(), lr=a.lr, weight_decay=a.weight_decay, **impl)
    run.scheduler = torch.optim.lr_scheduler.OneCycleLR(
        run.optimizer, max_lr=a.lr, total_steps=a.epochs * run.steps_per_epoch,
        pct_start=auto_encoder.ONE_CYCLE_WARMUP)
    return run


# ---------------------------------------------------------------------------
# The typical port
# ---------------------------------------------------------------------------

class UInt8Images(Dataset):
    """MNIST the way most ports hold it: uint8 images, one float tensor made per sample."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i]).float() / 256  # the project's byte/256 scaling


def as_uint8(x: np.ndarray) -> np.ndarray:
    """The project's float images (byte/256) back to their bytes, exactly."""
    return np.round(x * 256).astype(np.uint8)


class TypicalPort:
    """The same model, loss and optimizer settings as the modern recipe, trained plainly."""

    def __init__(self, spec: CodeSpec, images: np.ndarray, device: torch.device, batch: int = BATCH,
                 seed: int = 0):
        settings = auto_encoder.settings_for(auto_encoder.parse_args([]), spec)
        torch.manual_seed(seed)
        self.device = device
        self.model = AutoEncoder(spec, "modern").to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr,
                                           weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=settings.lr, total_steps=settings.epochs * math.ceil(len(images) / batch),
            pct_start=auto_encoder.ONE_CYCLE_WARMUP)
        self.loader = DataLoader(UInt8Images(images), batch_size=batch, shuffle=True)

    def step(self, x: torch.Tensor) -> float:
        x = x.to(self.device)
        loss = torch.nn.functional.mse_loss(self.model(x).flatten(1), x)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()


def loader_timer(step: Callable[[torch.Tensor], object], loader: DataLoader, steps: int,
                 device: torch.device) -> Timer:
    """`steps` steps from a fresh iterator of `loader` (its epoch start included), fp32 matmuls."""
    def once() -> tuple[int, None]:
        images = 0
        with cuda_tf32(device, False):
            for _, x in zip(range(steps), loader):
                step(x.to(device))
                images += len(x)
        return images, None
    return once


def port_timer(spec: CodeSpec, images: np.ndarray, device: torch.device, steps: int) -> Timer:
    port = TypicalPort(spec, images, device)
    return loader_timer(port.step, port.loader, steps, device)


# ---------------------------------------------------------------------------
# The three parts
# ---------------------------------------------------------------------------

def throughput(specs: list[CodeSpec], data: dict, images: np.ndarray, device: torch.device,
               precision: str, args: argparse.Namespace) -> dict:
    out = {}
    for spec in specs:
        timed = interleave({"typical_port": port_timer(spec, images, device, args.steps),
                            "project": project_timer(short_run(spec, data, device, precision, args.steps))},
                           args.repeats, device)
        timed["speedup"] = timed["project"]["images_per_s"] / timed["typical_port"]["images_per_s"]
        out[spec.name] = timed
        gc.collect()
    return out


def time_to_quality(spec: CodeSpec, recipe: str, data: dict, device: torch.device, precision: str,
                    time_limit: float) -> dict:
    """Train with the recipe's defaults until the test MSE reaches the original's, or time runs out."""
    target = TARGET_MSE.get(spec.name)
    start = time.perf_counter()
    with cuda_tf32(device, True):
        run = project_run(spec, data, device, precision, "--recipe", recipe)
        clock, eval_clock, mses = time.perf_counter() - start, 0.0, []
        for _ in range(run.args.epochs):
            start = time.perf_counter()
            fresh_epoch(run)  # ends with .item(): the device is synchronised
            clock += time.perf_counter() - start
            start = time.perf_counter()
            mses.append(fp32_mse(run, data["test"]))
            eval_clock += time.perf_counter() - start
            if (target is not None and mses[-1] <= target) or clock >= time_limit:
                break
    reached = target is not None and mses[-1] <= target
    return {"target_mse": target, "reached": reached, "seconds": clock if reached else None,
            "epochs": len(mses), "train_seconds": clock, "eval_seconds": eval_clock,
            "best_mse": min(mses), "test_mse": mses, "time_limit": time_limit,
            "epochs_in_recipe": run.args.epochs}


def scaling(spec: CodeSpec, mnist, device: torch.device, precision: str, args: argparse.Namespace) -> dict:
    """Per-epoch seconds (extrapolated from a few steps) and peak memory by batch and data size."""
    points = [(b, EPOCH_IMAGES) for b in args.batch_sizes] + [(BATCH, n) for n in args.train_sizes]
    rows = []
    for batch, n_train in points:
        reset_peak_memory(device)
        data = auto_encoder.data_tensors(mnist, n_train, device)  # these n images stay resident
        steps = max(1, min(args.steps, math.ceil(4096 / batch)))
        run = short_run(spec, data, device, precision, steps, batch)
        timed = interleave({"project": project_timer(run)}, max(1, args.repeats // 2), device)["project"]
        timed.pop("losses")
        n = len(data["train"])
        rows.append({"batch_size": batch, "train_images": n, **timed,
                     "seconds_per_epoch": timed["seconds_per_epoch"] / EPOCH_IMAGES * n,
                     **peak_memory(device)})
        del data, run
    return {"model": spec.name, "rows": rows}


CURVE_SEEDS = (0, 1, 2)


def loss_curve(spec: CodeSpec, data: dict, device: torch.device, precision: str, seed: int,
               args: argparse.Namespace, reference: bool) -> dict[str, list[float]]:
    """Training and validation loss after each epoch of a short modern schedule."""
    run = project_run(spec, data, device, precision, "--epochs", str(args.curve_epochs), "--seed", str(seed))
    if reference:
        swap_adamw(run)
    curve: dict[str, list[float]] = {"training_loss": [], "validation_loss": []}
    with cuda_tf32(device, not reference):
        for _ in range(args.curve_epochs):
            curve["training_loss"].append(fresh_epoch(run))
            curve["validation_loss"].append(fp32_mse(run, data["valid"]))
    return curve


def curve_gap(project: list[float], reference: list[float]) -> dict[str, float]:
    """The gap between the two means over seeds, and two standard errors of that gap (from the
    seed-to-seed spread), both relative to the reference's mean."""
    scale = statistics.mean(reference)
    spread = math.sqrt((statistics.variance(project) + statistics.variance(reference)) / 2)
    return {"gap": statistics.mean(project) / scale - 1,
            "two_standard_errors": 2 * spread * math.sqrt(2 / len(project)) / scale}


def loss_curves(spec: CodeSpec, data: dict, device: torch.device, precision: str,
                args: argparse.Namespace) -> dict:
    """The project's step and the reference step, each from several seeds (one seed gives both the
    same weights, batches and dropout masks). The faster step keeps the curve when the gap between
    their mean validation losses stays within two standard errors of the seed-to-seed noise."""
    subset = {**data, "train": data["train"][:args.curve_images]}
    curves = {f"{name} seed {seed}": loss_curve(spec, subset, device, prec, seed, args, name == "reference")
              for name, prec in (("reference", "fp32"), ("project", precision)) for seed in CURVE_SEEDS}
    by_epoch = {name: list(zip(*(curves[f"{name} seed {s}"]["validation_loss"] for s in CURVE_SEEDS)))
                for name in ("project", "reference")}
    gaps = [curve_gap(p, r) for p, r in zip(by_epoch["project"], by_epoch["reference"])]
    outside = [epoch for epoch, g in enumerate(gaps, start=1) if abs(g["gap"]) > g["two_standard_errors"]]
    return {"model": spec.name, "epochs": args.curve_epochs, "train_images": len(subset["train"]),
            "project": f"{precision}, fused AdamW", "reference": "fp32, default AdamW", "curves": curves,
            "gaps": gaps, "within_noise_at_end": args.curve_epochs not in outside,
            "epochs_outside_noise": outside}


# ---------------------------------------------------------------------------
# Levers
# ---------------------------------------------------------------------------

def step_levers(spec: CodeSpec, data: dict, images: np.ndarray, device: torch.device, precision: str,
                args: argparse.Namespace) -> list[dict]:
    """Each lever changed alone from the project's step, all timed in turn; every run but the
    DataLoader ones starts from the same weights and sees the same batches, so losses compare."""
    steps = args.steps
    other = "fp32" if precision != "fp32" else "bf16"

    def run(prec: str = precision, *options: str) -> auto_encoder.Run:
        return short_run(spec, data, device, prec, steps, BATCH, *options)

    timers: dict[str, Timer] = {
        f"project step ({precision}, fused AdamW, index batches)": project_timer(run()),
        f"{other} instead of {precision}": project_timer(run(other)),
        "foreach AdamW instead of fused": project_timer(swap_adamw(run(), foreach=True)),
        "default AdamW instead of fused": project_timer(swap_adamw(run())),
        ".item() after every step": project_timer(run(), sync_every_step=True),
        f"1 thread instead of {torch.get_num_threads()}": project_timer(run(), n_threads=1),
        "DataLoader per-sample batches instead of index batches":
            loader_timer(run().train_step, TypicalPort(spec, images, device).loader, steps, device),
        "typical port (all of the above at once)": port_timer(spec, images, device, steps),
    }
    if device.type == "cuda":
        timers["fp32 without TF32 (fp32 project step)"] = project_timer(run("fp32"), allow_tf32=False)
        timers["fp32 with TF32 (fp32 project step)"] = project_timer(run("fp32"))
    if args.compile:
        timers["torch.compile (--compile; warm-up includes compiling)"] = project_timer(run(precision, "--compile"))
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
            return sum(((model(b).flatten(1) - b) ** 2).sum().item() for b in x.split(BATCH)) / x.numel()

    ways = [("eval: batches of 500, no_grad, fp32 (typical)", typical),
            ("eval: map_batches of 5000, inference_mode, fp32 (trainer)",
             lambda: reconstruction_mse(model, x, "fp32")),
            (f"eval: map_batches of 5000, inference_mode, {precision}",
             lambda: reconstruction_mse(model, x, precision))]
    rows = []
    for name, fn in ways:
        fn()  # warm-up
        sync(device)
        start = time.perf_counter()
        mse = fn()
        sync(device)
        seconds = time.perf_counter() - start
        rows.append({"lever": name, "seconds": seconds, "images": len(x), "mse": mse})
    for row in rows:
        row["speed_vs_typical"] = rows[0]["seconds"] / row["seconds"]
    return rows


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def print_report(results: dict) -> None:
    print(f"\n{results['device_name']} ({results['device']}, {results['threads']} threads, "
          f"project precision {results['precision']}, torch {results['torch']}); "
          f"load average {results['load_average'][0]:.2f} at start")
    if "throughput" in results:
        print(f"\nThroughput, batch {BATCH} ({results['steps']} steps x {results['repeats']} repeats, "
              f"median, extrapolated to {EPOCH_IMAGES:,} images):")
        print(f"{'model':<7}{'trainer':<15}{'s/epoch':>10}{'images/s':>10}{'speedup':>9}")
        for model, r in results["throughput"].items():
            print(f"{model:<7}{'typical port':<15}{r['typical_port']['seconds_per_epoch']:>10.2f}"
                  f"{r['typical_port']['images_per_s']:>10.0f}{1:>9.2f}")
            print(f"{model:<7}{'project':<15}{r['project']['seconds_per_epoch']:>10.2f}"
                  f"{r['project']['images_per_s']:>10.0f}{r['speedup']:>9.2f}")
    if "quality" in results:
        print("\nTime to the original's test MSE (training clock; evaluation excluded, shown apart):")
        print(f"{'model':<7}{'recipe':<10}{'target':>8}{'seconds':>9}{'epochs':>7}{'best MSE':>10}{'eval s':>8}")
        for recipe, models in results["quality"].items():
            for model, r in models.items():
                seconds = f"{r['seconds']:.1f}" if r["reached"] else f">{r['train_seconds']:.0f}"
                target = f"{r['target_mse']:.4f}" if r["target_mse"] else "-"
                print(f"{model:<7}{recipe:<10}{target:>8}{seconds:>9}{r['epochs']:>7}"
                      f"{r['best_mse']:>10.4f}{r['eval_seconds']:>8.1f}")
    if "scaling" in results:
        print(f"\nScaling, {results['scaling']['model']} model (a few steps, extrapolated per epoch):")
        print(f"{'batch':>6}{'images':>8}{'s/epoch':>10}{'images/s':>10}{'peak RSS MB':>13}{'CUDA MB':>9}")
        for r in results["scaling"]["rows"]:
            cuda = f"{r['cuda_peak_mb']:.0f}" if "cuda_peak_mb" in r else "-"
            print(f"{r['batch_size']:>6}{r['train_images']:>8}{r['seconds_per_epoch']:>10.2f}"
                  f"{r['images_per_s']:>10.0f}{r['peak_rss_mb']:>13.0f}{cuda:>9}")
    if "curves" in results:
        print_curves(results["curves"])
    if "levers" in results:
        print(f"\nLevers, {results['levers']['model']} model, batch {BATCH}, each changed alone "
              "from the project's step:")
        print(f"{'lever':<58}{'images/s':>9}{'speed':>7}{'loss change':>13}")
        for r in results["levers"]["step"]:
            change = f"{r['loss_change']:+.2%}" if "loss_change" in r else "-"
            extra = f"  (compile {r['compile_seconds']:.0f} s)" if "compile_seconds" in r else ""
            print(f"{r['lever']:<58}{r['images_per_s']:>9.0f}{r['speed_vs_project']:>7.2f}{change:>13}{extra}")
        for r in results["levers"]["eval"]:
            print(f"{r['lever']:<58}{r['images'] / r['seconds']:>9.0f}{r['speed_vs_typical']:>7.2f}"
                  f"{'MSE %.5f' % r['mse']:>13}")


def print_curves(c: dict) -> None:
    names = list(c["curves"])
    print(f"\nLoss curves, {c['model']} model, {c['epochs']}-epoch modern schedule on {c['train_images']:,} "
          f"images, validation MSE after each epoch; project = {c['project']}, reference = {c['reference']}; "
          "gap = project mean / reference mean - 1, noise = two standard errors of that gap:")
    print(f"{'epoch':>5}" + "".join(f"{name.replace(' seed ', ' s'):>13}" for name in names) + f"{'gap':>9}{'noise':>8}")
    for epoch, gap in enumerate(c["gaps"]):
        print(f"{epoch + 1:>5}" + "".join(f"{c['curves'][n]['validation_loss'][epoch]:>13.5f}" for n in names)
              + f"{gap['gap']:>+9.2%}{gap['two_standard_errors']:>8.2%}")
    verdict = "within" if c["within_noise_at_end"] else "OUTSIDE"
    outside = ", ".join(map(str, c["epochs_outside_noise"])) or "none"
    print(f"final validation MSE: {verdict} the noise; epochs outside it: {outside}")


def run_benchmark(args: argparse.Namespace) -> tuple[dict, Path]:
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    specs = parse_models(args.models)
    mnist = load_mnist(args.data, log=lambda line: print(line, file=sys.stderr))
    data = auto_encoder.data_tensors(mnist, None, device)
    images = as_uint8(mnist.train_x)
    suffix = "-levers" if args.levers else "-quick" if args.quick else ""
    results = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "precision": precision, "steps": args.steps,
               "repeats": args.repeats, "batch_size": BATCH, "load_average": list(os.getloadavg()),
               "command": " ".join(["python benchmarks/bench_train.py", *args.argv]),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "data": mnist.source}
    start = time.perf_counter()
    if args.levers:
        spec = specs[0]
        results["levers"] = {"model": spec.name, "step": step_levers(spec, data, images, device, precision, args),
                             "eval": eval_levers(spec, data, device, precision, args.eval_images)}
    else:
        if "throughput" in args.parts:
            results["throughput"] = throughput(specs, data, images, device, precision, args)
        if "quality" in args.parts:
            results["quality"] = {recipe: {s.name: time_to_quality(s, recipe, data, device, precision,
                                                                    args.time_limit) for s in specs}
                                  for recipe in args.recipes.split(",")}
        if "curves" in args.parts:
            results["curves"] = loss_curves(specs[0], data, device, precision, args)
        if "scaling" in args.parts:
            del data  # scaling loads its own training sets; free the full one first
            results["scaling"] = scaling(specs[0], mnist, device, precision, args)
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
    return run_script(benchmark_and_report, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
