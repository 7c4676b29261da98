"""Training's lower layer: the state of a run, a step, an epoch of steps and an evaluation.

    torch.manual_seed(config.seed)                  # the caller seeds: initial weights, dropout
    state = new_training_state(config, len(data["train"]))
    train_loss, seconds = train_epoch(state, data["train"])
    valid_loss = evaluate(state.model, data["valid"], config.precision)

The loop over epochs, which also drives the checkpoint and the run's files, stands above this
module, in trainer.py.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable

import torch

from .datasets import Splits, dataset_spec
from .device import EVAL_BATCH, autocast, map_batches, reconstruction_mse
from .errors import UserError
from .model import AutoEncoder
from .progress import Progress
from .recipes import TrainConfig, image_sets, make_optimizer

TRACED_IMAGES = 2000  # test images whose codes are stored after every epoch
TRACED_MAX_UNITS = 3  # store them only for codes small enough to plot


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Records SIGINT/SIGTERM so the loop can stop after the current step and save.

    Used as a context manager: the previous handlers come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> StopFlag:
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum


@dataclass
class History:
    """What a run is and did: its id, the settings it started with, the settings changed on
    --resume (each with the epoch and step from which it took effect) and the per-epoch results.
    With the model, optimizer and RNG state it makes a checkpoint; every file of the run carries
    `run_id`, so that files of two runs are never taken for one."""

    training_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    started: str = field(default_factory=lambda: str(datetime.datetime.now()))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    settings: dict = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)


@dataclass
class PartialEpoch:
    """An epoch under way: its batch order, the steps done, their summed loss, the time spent."""

    perm: torch.Tensor
    step: int
    loss_sum: torch.Tensor
    elapsed: float = 0.0


@dataclass
class TrainingState:
    """One model's training as it stands: everything a checkpoint holds, and the forward pass
    the steps call (the model, or its torch.compile'd form)."""

    config: TrainConfig
    model: AutoEncoder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    shuffle: torch.Generator  # the batches' order; dropout draws from torch's global generator
    forward: Callable[[torch.Tensor], torch.Tensor]
    steps_per_epoch: int
    history: History = field(default_factory=History)
    partial: PartialEpoch | None = None
    code_trace: list[torch.Tensor] = field(default_factory=list)

    @property
    def epochs_done(self) -> int:
        return len(self.history.training_loss)

    @property
    def finished(self) -> bool:
        return self.epochs_done == self.config.epochs

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)


def folds_single_image_batch(config: TrainConfig, n_train: int) -> bool:
    """Whether an epoch's last batch would hold one image, which batch norm cannot train on: it
    then joins the batch before it (the modern architecture only; the original has no batch norm)."""
    return config.architecture == "modern" and n_train % config.batch_size == 1 and n_train > 1


def batch_count(config: TrainConfig, n_train: int) -> int:
    return math.ceil(n_train / config.batch_size) - folds_single_image_batch(config, n_train)


def new_training_state(config: TrainConfig, n_train: int) -> TrainingState:
    """A new model, its optimizer and schedule, and the shuffling generator (seeded with the run's
    seed). The weights are drawn from torch's global generator: the caller seeds it."""
    model = AutoEncoder(config.spec, config.architecture, config.dropout).to(config.device)
    forward = model if config.compile == "none" else torch.compile(model, mode=config.compile)
    steps_per_epoch = batch_count(config, n_train)
    optimizer, scheduler = make_optimizer(model.parameters(), config, steps_per_epoch)
    return TrainingState(
        config,
        model,
        optimizer,
        scheduler,
        torch.Generator().manual_seed(config.seed),
        forward,
        steps_per_epoch,
        History(settings=config.as_dict()),
    )


def data_tensors(
    splits: Splits, limit: int | None, device: torch.device | str, with_validation: bool = False
) -> dict[str, torch.Tensor]:
    """The whole dataset on the device; batches are then index permutations. Refuses a --limit
    beyond the training images there are."""
    train = splits.training_images(None, with_validation)
    if limit is not None and limit > len(train):
        images = image_sets(with_validation)
        raise UserError(
            f"--limit {limit} is more than the {len(train):,} {images} of "
            f"{dataset_spec(splits.dataset).title}: leave --limit out to train on all of them"
        )
    train = train[:limit] if limit else train
    return {
        name: torch.from_numpy(x).to(device)
        for name, x in (("train", train), ("valid", splits.valid_x), ("test", splits.test_x))
    }


def train_step(state: TrainingState, x: torch.Tensor) -> torch.Tensor:
    """One optimizer step on the batch `x`; returns its loss (on the device: no host sync)."""
    with autocast(state.device, state.config.precision):
        recon = state.forward(x)
    loss = torch.nn.functional.mse_loss(recon.flatten(1), x)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    if state.scheduler:
        state.scheduler.step()
    return loss.detach()


def start_epoch(state: TrainingState, n_train: int) -> tuple[PartialEpoch, tuple[torch.Tensor, ...]]:
    """The epoch under way (a new one: a fresh shuffle) and its index batches on the device."""
    if state.partial is None:
        state.partial = PartialEpoch(
            torch.randperm(n_train, generator=state.shuffle), step=0, loss_sum=torch.zeros((), device=state.device)
        )
    batches = state.partial.perm.to(state.device).split(state.config.batch_size)
    if folds_single_image_batch(state.config, n_train):
        batches = (*batches[:-2], torch.cat(batches[-2:]))
    return state.partial, batches


def train_epoch(
    state: TrainingState, train: torch.Tensor, stop: StopFlag | None = None, progress: Progress | None = None
) -> tuple[float, float]:
    """One pass over the shuffled training set (or the rest of the part-epoch `state` holds).

    Returns its true mean loss and the seconds it took. On SIGINT/SIGTERM (`stop`) it raises
    Interrupted after the current step, the part-epoch kept in `state` for the checkpoint.
    """
    progress = progress or Progress()
    part, batches = start_epoch(state, len(train))
    start = time.perf_counter() - part.elapsed
    progress.epoch_started(state.epochs_done + 1, len(batches), part.step)
    for step in range(part.step, len(batches)):
        x = train[batches[step]]
        part.loss_sum += train_step(state, x) * len(x)
        part.step, part.elapsed = step + 1, time.perf_counter() - start
        seen = min(part.step * state.config.batch_size, len(train)) if part.step < len(batches) else len(train)
        running_loss = lambda: part.loss_sum.item() / seen  # noqa: B023 (step() calls it before `seen` changes)
        progress.step(part.step, running_loss)
        if stop is not None and stop.signum is not None:
            raise Interrupted(stop.signum)
    state.partial = None
    return part.loss_sum.item() / len(train), part.elapsed


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode (no dropout, batch norm's running statistics); the caller's mode
    comes back afterwards, whatever happens."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: AutoEncoder, x: torch.Tensor, precision: str) -> float:
    """Reconstruction MSE of `x` in eval mode; the model is left in the mode it was in."""
    with eval_mode(model):
        return reconstruction_mse(model, x, precision)


@torch.no_grad()
def recompute_batch_norm(model: AutoEncoder, train_x: torch.Tensor, precision: str) -> None:
    """Batch norm's running statistics measured anew over the training images, as the trained
    model sees them at evaluation (no dropout), each batch of EVAL_BATCH images weighted equally
    (as torch.optim.swa_utils.update_bn does). Training's running averages lag the weights: after
    a short run they make eval-mode outputs far worse than the weights are."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    with eval_mode(model):
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average
            norm.train()
        with autocast(train_x.device, precision):
            for chunk in train_x.split(EVAL_BATCH):
                model(chunk)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def trace_codes(state: TrainingState, test_x: torch.Tensor) -> None:
    """Add the codes of the first TRACED_IMAGES test images to the trace, for vector codes of up
    to TRACED_MAX_UNITS units (the codes plot_3D.py animates); other codes are not traced."""
    spec = state.config.spec
    if spec.is_image or spec.units > TRACED_MAX_UNITS:
        return
    with eval_mode(state.model), autocast(state.device, state.config.precision):
        codes = map_batches(state.model.encode, test_x[:TRACED_IMAGES])
    state.code_trace.append(codes.float().cpu().half())


def record_epoch(state: TrainingState, train_loss: float, valid_loss: float | None, seconds: float) -> None:
    """Add an epoch's results; a run that trains on the validation images has no validation loss."""
    state.history.training_loss.append(train_loss)
    if valid_loss is not None:
        state.history.validation_loss.append(valid_loss)
    state.history.epoch_time.append(seconds)
