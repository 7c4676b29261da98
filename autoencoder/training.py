"""The training loop: one model's run, its checkpoints, and what it writes.

`Run(config, data).train()` trains a model from scratch (or, with resume=True, from its
checkpoint) and returns its test MSE. The benchmark drives the same class one epoch at a
time with `train_epoch` and `evaluate`.
"""
from __future__ import annotations

import datetime
import math
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .datasets import DATASETS, Splits
from .device import autocast, map_batches, reconstruction_mse
from .errors import TrainingDiverged, UserError
from .files import OutputPaths, save_info, torch_save_atomic, write_text_atomic
from .model import AutoEncoder, count_parameters, save_model
from .progress import Progress
from .recipes import RESUME_KEYS, TrainConfig, make_optimizer, scale_learning_rate

TRACED_IMAGES = 2000            # test images whose codes are stored after every epoch
TRACED_MAX_UNITS = 3            # store them only for codes small enough to plot
LOG_INTERVAL = 1.0              # seconds between rewrites of the log: a fast device's epochs share one


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

    def __enter__(self) -> "StopFlag":
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
    """Per-epoch results; with the model, optimizer and RNG state it makes a checkpoint."""

    training_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    started: str = field(default_factory=lambda: str(datetime.datetime.now()))


@dataclass
class PartialEpoch:
    """An epoch under way: its batch order, the steps done, their summed loss, the time spent."""

    perm: torch.Tensor
    step: int = 0
    loss_sum: torch.Tensor | None = None
    elapsed: float = 0.0


def dropout_rng_state() -> dict:
    """The global RNG states that dropout draws from (shuffling has its own generator)."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_dropout_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def render_log(paths: OutputPaths, config: TrainConfig, parameters: int, history: History,
               test_mse: float | None) -> str:
    """The original's log layout, with the recipe, device and (other than MNIST) dataset added."""
    row = "{:<10}{:<20}{:<20}{:<20}\n"
    data = "Data OK." if config.dataset == "mnist" else f"Data OK: {DATASETS[config.dataset].title}."
    text = (f"Started: {history.started}.\n>>> {paths.log}\n"
            f"Recipe: {config.recipe} ({config.optimizer_name}, lr {config.lr:g}, "
            f"batch {config.batch_size}, {config.precision}) on {config.device}\n"
            f"Autoencoder OK.\n{parameters} parameters\n{data}\n"
            f"Training over {config.epochs} Epochs...\n" + row.format("Epoch", "TL", "VL", "Time"))
    for epoch, losses in enumerate(zip(history.training_loss, history.validation_loss,
                                       history.epoch_time), start=1):
        text += row.format(epoch, *(f"{v:.6g}" for v in losses))
    if test_mse is not None:
        text += (f"Finished training.\nMSE on test data: {test_mse:.6g}.\n"
                 f"Completed: {datetime.datetime.now()}.\n")
    return text


def data_tensors(splits: Splits, limit: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    """The whole dataset on the device; batches are then index permutations."""
    train = splits.train_x[:limit] if limit else splits.train_x
    return {name: torch.from_numpy(x).to(device)
            for name, x in (("train", train), ("valid", splits.valid_x), ("test", splits.test_x))}


def _setting(value: object) -> str:
    return "not set" if value is None else f"{value}"


class Run:
    """One model's training run: state, checkpointing and the epoch loop."""

    def __init__(self, config: TrainConfig, data: dict[str, torch.Tensor], stop: StopFlag | None = None,
                 progress: Progress | None = None):
        self.config, self.spec, self.data = config, config.spec, data
        self.device = torch.device(config.device)
        self.stop = stop or StopFlag()
        self.progress = progress or Progress()
        self.paths = OutputPaths.of(config.output_dir, self.spec.name)
        self.steps_per_epoch = math.ceil(len(data["train"]) / config.batch_size)
        torch.manual_seed(config.seed)
        self.model = AutoEncoder(self.spec, config.recipe).to(self.device)
        self.forward = self.model if config.compile == "none" else torch.compile(self.model, mode=config.compile)
        self.optimizer, self.scheduler = make_optimizer(self.model.parameters(), config, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history = History()
        self.partial: PartialEpoch | None = None
        self.checkpointed = False                 # whether this run saved or resumed a checkpoint
        self.checkpoint_clock = time.monotonic()  # when the last checkpoint was saved
        self.log_clock = -math.inf                 # when the log was last rewritten
        traced = TRACED_IMAGES if self.spec.units <= TRACED_MAX_UNITS and not self.spec.is_image else 0
        self.traced_x = data["test"][:traced]
        self.code_trace: list[torch.Tensor] = []

    @property
    def epochs_done(self) -> int:
        return len(self.history.training_loss)

    # -- checkpoints ------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.config.as_dict(), "epoch": self.epochs_done,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "generator": self.generator.get_state(), "dropout_rng": dropout_rng_state(),
                "history": vars(self.history), "partial": vars(self.partial) if self.partial else None,
                "code_trace": self.code_trace}

    def save_checkpoint(self) -> None:
        """Write the checkpoint, unless the weights diverged: then the last good one stays."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise self.diverged("the weights became infinite or NaN")
        torch_save_atomic(self.state(), self.paths.checkpoint)
        self.checkpointed = True
        self.checkpoint_clock = time.monotonic()

    def checkpoint_due(self) -> bool:
        """At the last epoch, and whenever the set interval has passed since the last checkpoint."""
        elapsed = time.monotonic() - self.checkpoint_clock
        return self.epochs_done == self.config.epochs or elapsed >= self.config.checkpoint_interval

    def check_settings(self, saved: dict) -> None:
        now = self.config.as_dict()
        saved = {"dataset": "mnist", **saved}  # checkpoints from before datasets were options
        mismatched = [f"{k} {_setting(saved.get(k))} (now {_setting(now[k])})"
                      for k in RESUME_KEYS if saved.get(k) != now[k]]
        if mismatched:
            raise UserError(f"{self.paths.checkpoint} was made with other settings: "
                            f"{', '.join(mismatched)}; rerun with those settings or without --resume")

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.config.lr != state["config"]["lr"]:
            scale_learning_rate(self.optimizer, self.config.lr / state["config"]["lr"])
        self.generator.set_state(state["generator"].cpu())
        set_dropout_rng_state(state["dropout_rng"])
        self.history = History(**state["history"])
        self.partial = PartialEpoch(**state["partial"]) if state["partial"] else None
        self.code_trace = list(state["code_trace"])

    def load_checkpoint(self) -> bool:
        """Restore from the checkpoint if there is one; False if there is none."""
        if not self.paths.checkpoint.is_file():
            return False
        try:
            state = torch.load(self.paths.checkpoint, map_location=self.device, weights_only=True)
            saved = dict(state["config"])
        except Exception as e:
            raise UserError(f"{self.paths.checkpoint} cannot be read ({str(e).splitlines()[0]}); "
                            "delete it to start over") from None
        self.check_settings(saved)
        try:
            self.restore(state)
        except Exception as e:  # loads, but is not a whole checkpoint of this model
            raise UserError(f"{self.paths.checkpoint} is damaged or from another tool "
                            f"({str(e).splitlines()[0]}); delete it to start over") from None
        self.checkpointed = True
        self.checkpoint_clock = time.monotonic()
        return True

    def diverged(self, what: str) -> TrainingDiverged:
        kept = (f"The last good checkpoint is kept in {self.paths.checkpoint}" if self.checkpointed
                else "No checkpoint was saved yet")
        return TrainingDiverged(f"{self.spec.name}: {what} at epoch {self.epochs_done + 1}; training "
                                f"stopped. {kept}: lower --lr and rerun with --resume.")

    # -- training ----------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.config.precision):
            recon = self.forward(x)
        loss = torch.nn.functional.mse_loss(recon.flatten(1), x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler:
            self.scheduler.step()
        return loss.detach()

    def begin_epoch(self) -> tuple[PartialEpoch, tuple[torch.Tensor, ...]]:
        """The epoch under way (a new one: a fresh shuffle) and its index batches on the device."""
        if self.partial is None:
            self.partial = PartialEpoch(torch.randperm(len(self.data["train"]), generator=self.generator),
                                        loss_sum=torch.zeros((), device=self.device))
        return self.partial, self.partial.perm.to(self.device).split(self.config.batch_size)

    def train_epoch(self) -> tuple[float, float]:
        """One pass over the shuffled training set (or the rest of a saved one).

        Returns its true mean loss and the seconds it took. On SIGINT/SIGTERM it stores the
        part-epoch in the checkpoint and raises Interrupted.
        """
        train, batch_size = self.data["train"], self.config.batch_size
        part, batches = self.begin_epoch()
        start = time.perf_counter() - part.elapsed
        self.progress.epoch_started(self.epochs_done + 1, len(batches), part.step)
        for step in range(part.step, len(batches)):
            x = train[batches[step]]
            part.loss_sum += self.train_step(x) * len(x)
            part.step, part.elapsed = step + 1, time.perf_counter() - start
            seen = min(part.step * batch_size, len(train))
            self.progress.step(part.step, lambda: part.loss_sum.item() / seen)
            if self.stop.signum is not None:
                self.save_checkpoint()
                raise Interrupted(self.stop.signum)
        self.partial = None
        return part.loss_sum.item() / len(train), part.elapsed

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, precision: str | None = None) -> float:
        """Reconstruction MSE of `x` without dropout (the run's precision unless given)."""
        self.model.eval()
        try:
            return reconstruction_mse(self.model, x, precision or self.config.precision)
        finally:
            self.model.train()

    def end_epoch(self, train_loss: float, seconds: float) -> None:
        """Validate, trace the codes, record the epoch and, when due, save the checkpoint."""
        valid_loss = self.evaluate(self.data["valid"])
        self.trace_codes()
        self.record_epoch(train_loss, valid_loss, seconds)
        if self.checkpoint_due():
            self.save_checkpoint()

    def record_epoch(self, train_loss: float, valid_loss: float, seconds: float) -> None:
        """Check the losses, add them to the history, rewrite the log and report the epoch."""
        if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
            raise self.diverged(f"the loss became {train_loss:g} (validation {valid_loss:g})")
        self.history.training_loss.append(train_loss)
        self.history.validation_loss.append(valid_loss)
        self.history.epoch_time.append(seconds)
        if time.monotonic() - self.log_clock >= LOG_INTERVAL or self.checkpoint_due():
            self.write_log()
        self.progress.epoch_ended(self.epochs_done, train_loss, valid_loss, seconds)

    def write_log(self) -> None:
        """Rewrite the log with the epochs so far. Not flushed to the disk: it is whole after a
        crash of the process anyway, and the flush would cost more than a fast device's epoch."""
        write_text_atomic(self.paths.log, render_log(self.paths, self.config, count_parameters(self.model),
                                                     self.history, None), durable=False)
        self.log_clock = time.monotonic()

    def trace_codes(self) -> None:
        if len(self.traced_x):
            self.model.eval()
            with autocast(self.device, self.config.precision):
                codes = map_batches(self.model.encode, self.traced_x)
            self.model.train()
            self.code_trace.append(codes.float().cpu().half())

    def start(self, resume: bool, say: Callable[[str], None]) -> None:
        """Resume from the checkpoint, or write the initial weights and codes."""
        if resume and self.load_checkpoint():
            if self.epochs_done == self.config.epochs:
                say(f"{self.spec.name}: already trained for {self.config.epochs} epochs; --resume only "
                    "re-evaluates it and rewrites its results")
            else:
                step = f", step {self.partial.step}" if self.partial else ""
                say(f"{self.spec.name}: resuming from {self.paths.checkpoint} at epoch "
                    f"{self.epochs_done + 1}{step}")
            return
        if resume:
            say(f"{self.spec.name}: no checkpoint in {self.config.output_dir}/, starting from scratch")
        save_model(self.paths.init, self.model, self.config.dataset)
        self.trace_codes()

    def train(self, resume: bool = False) -> float:
        """Train to the last epoch (from the checkpoint if resuming); returns the test MSE."""
        self.start(resume, self.progress.message)
        self.model.train()
        self.progress.model_started(self.spec.name, self.config.epochs, self.epochs_done)
        try:
            for _ in range(self.epochs_done, self.config.epochs):
                self.end_epoch(*self.train_epoch())
        finally:
            self.progress.model_ended()
        return self.finish()

    def finish(self) -> float:
        """Test MSE (fp32), the final weights, the code trace, the info pickle and the full log."""
        self.model.eval()
        test_mse = reconstruction_mse(self.model, self.data["test"], "fp32")
        parameters = count_parameters(self.model)
        save_model(self.paths.weights, self.model, self.config.dataset)
        if self.code_trace:
            torch_save_atomic(torch.stack(self.code_trace), self.paths.codes)
        info = {"training loss": self.history.training_loss,
                "validation loss": self.history.validation_loss,
                "epoch time": self.history.epoch_time, "test mse": test_mse,
                "parameters": parameters, "config": self.config.as_dict(),
                "started": self.history.started, "finished": str(datetime.datetime.now())}
        save_info(self.paths.info, info)
        write_text_atomic(self.paths.log, render_log(self.paths, self.config, parameters,
                                                     self.history, test_mse))
        return test_mse
