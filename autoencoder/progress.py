"""How training reports its progress: bars on a terminal, plain lines in a log file, or nothing.

A batch job's log (no terminal) gets one line per epoch and, within a long epoch, a line now
and then, so that `tail -f` and grep read cleanly; a terminal gets tqdm's bars. Neither asks the
device for the running loss (a host sync) more often than it shows it.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from tqdm import tqdm

BAR_LOSS_INTERVAL = 0.5  # seconds between updates of the loss shown on the batch bar
LINE_INTERVAL = 60.0  # seconds between lines within an epoch, in plain mode


class Progress:
    """The quiet reporter; the others override what they show."""

    def model_started(self, name: str, epochs: int, done: int) -> None:
        pass

    def epoch_started(self, epoch: int, batches: int, done: int) -> None:
        pass

    def step(self, done: int, running_loss: Callable[[], float]) -> None:
        pass

    def epoch_ended(self, epoch: int, train_loss: float, valid_loss: float | None, seconds: float) -> None:
        pass

    def model_ended(self) -> None:
        pass

    def message(self, text: str) -> None:
        print(text, flush=True)


class BarProgress(Progress):
    """An epochs bar and a batches bar, as tqdm draws them on a terminal."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file  # tqdm's default, stderr, when None
        self.epochs: tqdm | None = None
        self.batches: tqdm | None = None
        self.loss_shown_at = -float("inf")

    def model_started(self, name: str, epochs: int, done: int) -> None:
        self.epochs = tqdm(
            total=epochs, initial=done, desc=f"{name} epochs", unit="epoch", dynamic_ncols=True, file=self.file
        )
        self.batches = tqdm(desc="  batches", unit="batch", leave=False, dynamic_ncols=True, file=self.file)

    def epoch_started(self, epoch: int, batches: int, done: int) -> None:
        bar = _drawn(self.batches)
        bar.reset(total=batches)
        bar.update(done)
        self.loss_shown_at = -float("inf")

    def step(self, done: int, running_loss: Callable[[], float]) -> None:
        bar = _drawn(self.batches)
        bar.update()
        now = time.monotonic()
        if now - self.loss_shown_at >= BAR_LOSS_INTERVAL or done == bar.total:
            bar.set_postfix(loss=f"{running_loss():.4f}")
            self.loss_shown_at = now

    def epoch_ended(self, epoch: int, train_loss: float, valid_loss: float | None, seconds: float) -> None:
        bar = _drawn(self.epochs)
        bar.update()
        bar.set_postfix(train=f"{train_loss:.4f}", **({} if valid_loss is None else {"valid": f"{valid_loss:.4f}"}))

    def model_ended(self) -> None:
        for bar in (self.batches, self.epochs):
            if bar is not None:
                bar.close()
        self.epochs = self.batches = None

    def message(self, text: str) -> None:
        tqdm.write(text)


def _drawn(bar: tqdm | None) -> tqdm:
    """A bar of BarProgress, drawn by model_started: the calls of one model come after it."""
    if bar is None:
        raise RuntimeError("BarProgress.model_started() was not called")
    return bar


class LineProgress(Progress):
    """Plain lines: one per epoch, and one every LINE_INTERVAL seconds within an epoch."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.name, self.total, self.epoch, self.batches = "", 0, 0, 0
        self.line_at = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def model_started(self, name: str, epochs: int, done: int) -> None:
        self.name, self.total = name, epochs

    def epoch_started(self, epoch: int, batches: int, done: int) -> None:
        self.epoch, self.batches, self.line_at = epoch, batches, time.monotonic()

    def step(self, done: int, running_loss: Callable[[], float]) -> None:
        now = time.monotonic()
        if now - self.line_at >= LINE_INTERVAL and done < self.batches:
            self._print(
                f"{self.name} epoch {self.epoch}/{self.total}: batch {done}/{self.batches}, loss {running_loss():.5f}"
            )
            self.line_at = now

    def epoch_ended(self, epoch: int, train_loss: float, valid_loss: float | None, seconds: float) -> None:
        valid = "" if valid_loss is None else f"validation loss {valid_loss:.5f}, "
        self._print(f"{self.name} epoch {epoch}/{self.total}: training loss {train_loss:.5f}, {valid}{seconds:.1f} s")


def console_progress(stream: TextIO = sys.stderr) -> Progress:
    """How the trainer reports to the console: tqdm's bars when `stream` (stderr) is a terminal,
    plain lines when it is a file or a pipe, such as a batch job's log."""
    isatty = getattr(stream, "isatty", None)
    return BarProgress() if isatty is not None and isatty() else LineProgress()
