"""The benchmark's clocks and contenders: the project's step, timed as the trainer runs it, and
a typical PyTorch port of the same model, timed in turn on the same machine."""

from __future__ import annotations

import contextlib
import gc
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from autoencoder.device import cuda_tf32
from autoencoder.model import AutoEncoder, CodeSpec
from autoencoder.recipes import TrainConfig, make_optimizer
from autoencoder.training import TrainingState, new_training_state, train_epoch, train_step

EPOCH_IMAGES = 50_000  # a full training epoch, for extrapolation
BATCH = 500

# A timer runs one repeat (a short epoch or a few steps) and returns (images, loss or None).
Timer = Callable[[], "tuple[int, float | None]"]
T = TypeVar("T")


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
        found = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    except OSError:
        found = None
    if found:
        peak = {"peak_rss_mb": int(found.group(1)) / 1024}
    else:  # no /proc: the lifetime peak is the best there is
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


def timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """Wall seconds of one call, the device synchronised before and after, and what it returned."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def seconds_of(fn: Callable[[], object], device: torch.device) -> float:
    return timed(fn, device)[0]


def interleave(timers: dict[str, Timer], repeats: int, device: torch.device) -> dict[str, dict]:
    """One warm-up repeat each, then timed repeats taken in turn, so that a change in the
    machine's load hits every contender alike; medians per contender."""
    names = list(timers)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    losses: dict[str, list] = {name: [] for name in names}
    images: dict[str, int] = {}
    for repeat in range(repeats + 1):
        turn = repeat % len(names)
        for name in names[turn:] + names[:turn]:
            torch.manual_seed(repeat)  # every contender's repeat draws the same dropout masks
            took, (images[name], loss) = timed(timers[name], device)
            seconds[name].append(took)
            losses[name].append(loss)
    out = {}
    for name in names:
        median = statistics.median(seconds[name][1:])
        out[name] = {
            "seconds_per_epoch": median / images[name] * EPOCH_IMAGES,
            "images_per_s": images[name] / median,
            "warmup_seconds": seconds[name][0],
            "repeat_seconds": seconds[name][1:],
            "images_per_repeat": images[name],
        }
        if losses[name][-1] is not None:
            out[name]["losses"] = losses[name]
    return out


# -- The project's step ----------------------------------------------------------------


def bench_config(spec: CodeSpec, device: torch.device, precision: str, **settings: Any) -> TrainConfig:
    """The trainer's configuration for `spec` on this device (its outputs go nowhere: the
    benchmark calls only train_epoch and evaluate, which write nothing)."""
    return TrainConfig(
        spec.name, **{"device": str(device), "precision": precision, "output_dir": tempfile.gettempdir(), **settings}
    )


def new_state(config: TrainConfig, n_train: int) -> TrainingState:
    """The trainer's state for `config`, seeded as the trainer seeds it."""
    torch.manual_seed(config.seed)
    return new_training_state(config, n_train)


@dataclass
class ShortRun:
    """A training state whose epoch is a few batches: `train`, the first steps*batch images."""

    state: TrainingState
    train: torch.Tensor


def short_run(config: TrainConfig, data: dict[str, torch.Tensor], steps: int) -> ShortRun:
    train = data["train"][: steps * config.batch_size]
    return ShortRun(new_state(config, len(train)), train)


def project_timer(
    run: ShortRun, sync_every_step: bool = False, n_threads: int | None = None, allow_tf32: bool = True
) -> Timer:
    """One short epoch of train_epoch, as the trainer runs it (TF32 on, as its main sets)."""

    def once() -> tuple[int, float]:
        with threads(n_threads), cuda_tf32(run.state.device, allow_tf32):
            loss = sync_steps(run) if sync_every_step else train_epoch(run.state, run.train)[0]
        return len(run.train), loss

    return once


def sync_steps(run: ShortRun) -> float:
    """train_step over one epoch of batches, with an .item() after each step."""
    state = run.state
    perm = torch.randperm(len(run.train), generator=state.shuffle).to(state.device)
    total = sum(train_step(state, run.train[idx]).item() * len(idx) for idx in perm.split(state.config.batch_size))
    return total / len(run.train)


# -- The typical port ------------------------------------------------------------------


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
    """The same model, loss and optimizer settings as the modern recipe, trained plainly: per-sample
    DataLoader batches, fp32, PyTorch's default AdamW, one .item() per step."""

    def __init__(self, spec: CodeSpec, images: np.ndarray, device: torch.device, batch: int = BATCH, seed: int = 0):
        config = bench_config(spec, device, "fp32", batch_size=batch, adamw="default")
        torch.manual_seed(seed)
        self.device = device
        self.model = AutoEncoder(spec, "modern", config.dropout).to(device)
        self.optimizer, self.scheduler = make_optimizer(self.model.parameters(), config, -(-len(images) // batch))
        self.loader = DataLoader(UInt8Images(images), batch_size=batch, shuffle=True)

    def step(self, x: torch.Tensor) -> float:
        x = x.to(self.device)
        loss = torch.nn.functional.mse_loss(self.model(x).flatten(1), x)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:  # the modern recipe's one-cycle schedule
            self.scheduler.step()
        return loss.item()


def loader_timer(step: Callable[[torch.Tensor], object], loader: DataLoader, steps: int, device: torch.device) -> Timer:
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
