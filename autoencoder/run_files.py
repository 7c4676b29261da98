"""What a run writes beside its checkpoint: the log, the initial and final weights, the info
pickle and the code trace. A finished run keeps only these: they are its results, and all that
`--resume` of a finished model reads."""
from __future__ import annotations

import datetime
import math
import time

import torch

from .datasets import DATASETS
from .errors import UserError
from .files import OutputPaths, load_info, save_info, torch_load, torch_save_atomic, write_text_atomic
from .model import count_parameters, save_model
from .recipes import TrainConfig
from .training import History, TrainingState

LOG_INTERVAL = 1.0              # seconds between rewrites of the log: a fast device's epochs share one


def render_log(paths: OutputPaths, config: TrainConfig, parameters: int, history: History,
               test_mse: float | None) -> str:
    """The original's log layout, with the recipe, device and (other than MNIST) dataset added."""
    row = "{:<10}{:<20}{:<20}{:<20}\n"
    dataset = DATASETS[config.dataset]
    data = "Data OK." if dataset.is_default else f"Data OK: {dataset.title}."
    limit = f"Limit: the first {config.limit} training images (--limit {config.limit}).\n" if config.limit else ""
    text = (f"Started: {history.started}.\n>>> {paths.log}\n"
            f"Recipe: {config.recipe} ({config.optimizer_name}, lr {config.lr:g}, batch {config.batch_size}, "
            f"{config.precision}) on {config.device}\n{limit}"
            f"Autoencoder OK.\n{parameters} parameters\n{data}\n"
            f"Training over {config.epochs} Epochs...\n" + row.format("Epoch", "TL", "VL", "Time"))
    for epoch, losses in enumerate(zip(history.training_loss, history.validation_loss,
                                       history.epoch_time), start=1):
        text += row.format(epoch, *(f"{v:.6g}" for v in losses))
    if test_mse is not None:
        text += (f"Finished training.\nMSE on test data: {test_mse:.6g}.\n"
                 f"Completed: {datetime.datetime.now()}.\n")
    return text


class RunFiles:
    """The files one model's run writes into its output folder (the output contract)."""

    def __init__(self, config: TrainConfig, log_interval: float = LOG_INTERVAL):
        self.config, self.log_interval = config, log_interval
        self.paths = OutputPaths.of(config.output_dir, config.model)
        self.log_written_at = -math.inf

    def write_start(self, state: TrainingState) -> None:
        """The initial weights, which the plots draw as 'before training'."""
        save_model(self.paths.init, state.model, self.config.dataset)

    def write_log(self, state: TrainingState, test_mse: float | None = None, durable: bool = True) -> None:
        write_text_atomic(self.paths.log, render_log(self.paths, self.config, count_parameters(state.model),
                                                     state.history, test_mse), durable=durable)
        self.log_written_at = time.monotonic()

    def write_log_when_due(self, state: TrainingState, force: bool = False) -> None:
        """Rewrite the log at most every `log_interval` seconds (always when `force`). Not flushed
        to the disk: it is whole after a crash of the process anyway, and the flush would cost
        more than a fast device's epoch."""
        if force or time.monotonic() - self.log_written_at >= self.log_interval:
            self.write_log(state, durable=False)

    def write_results(self, state: TrainingState, test_mse: float) -> None:
        """The final weights, the code trace, the info pickle and the full log."""
        save_model(self.paths.weights, state.model, self.config.dataset)
        if state.code_trace:
            torch_save_atomic({"codes": torch.stack(state.code_trace), "config": self.config.as_dict()},
                              self.paths.codes)
        info = {"training loss": state.history.training_loss,
                "validation loss": state.history.validation_loss,
                "epoch time": state.history.epoch_time, "test mse": test_mse,
                "parameters": count_parameters(state.model), "config": self.config.as_dict(),
                "started": state.history.started, "finished": str(datetime.datetime.now())}
        save_info(self.paths.info, info)
        self.write_log(state, test_mse)

    def finished_run(self) -> dict | None:
        """The info of the finished run in the folder (its results are there), else None."""
        if not (self.paths.info.is_file() and self.paths.weights.is_file()):
            return None
        info = load_info(self.paths.info)
        if "config" not in info or len(info["training loss"]) != info["config"].get("epochs"):
            return None
        return info

    def restore_finished(self, state: TrainingState, info: dict) -> None:
        """Put `state` where the finished run in the folder ended: its weights, losses and code trace."""
        saved = torch_load(self.paths.weights, state.device, "delete the run's files to start over")
        try:
            state.model.load_state_dict(saved["state_dict"])
            trace = torch_load(self.paths.codes, "cpu", "rerun without --resume")["codes"] \
                if self.paths.codes.is_file() else []
        except (KeyError, RuntimeError, TypeError) as e:
            raise UserError(f"{self.paths.weights} does not hold this run's model ({str(e).splitlines()[0]}); "
                            "rerun without --resume to train it again") from None
        state.history = History(info["training loss"], info["validation loss"], info["epoch time"],
                                info["started"])
        state.code_trace = list(trace)
