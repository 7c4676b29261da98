"""What a run writes beside its checkpoint: the log, the initial and final weights, the info
pickle and the code trace. A finished run keeps only these: they are its results, and all that
`--resume` of a finished model reads."""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path

import torch

from .datasets import dataset_spec
from .errors import UserError
from .files import OutputPaths, load_info, save_info, torch_load, torch_save_atomic, write_text_atomic
from .model import count_parameters, save_model
from .recipes import TrainConfig, trained_on
from .training import History, TrainingState

LOG_INTERVAL = 1.0  # seconds between rewrites of the log: a fast device's epochs share one


def changes_text(changes: list[dict]) -> str:
    """'lr 0.005 -> 0.01 from epoch 3 (step 4)': the settings a resumed run changed, and where."""
    return "; ".join(
        f"{c['setting']} {_value(c['from'])} -> {_value(c['to'])} from epoch {c['epoch']}"
        + (f" (step {c['step'] + 1})" if c["step"] else "")
        for c in changes
    )


def epochs_text(info: dict) -> str:
    """'1 epoch', '50 epochs', '2 epochs on the first 5,000 training images (--limit)', with any
    setting changed on --resume: how long, and on what, a run in `info` trained."""
    n = len(info["training loss"])
    images = trained_on(info.get("config", {}))
    text = f"{n} epoch{'' if n == 1 else 's'}" + (f" on {images}" if images else "")
    return text + (f", {changes_text(info['changes'])}" if info.get("changes") else "")


def _value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value}"


def render_log(paths: OutputPaths, history: History, parameters: int, test_mse: float | None) -> str:
    """The original's log layout, with the run's id, recipe, data, device and any change of settings on
    --resume added. The recipe line shows the settings the run started with."""
    c = history.settings
    dataset = dataset_spec(c["dataset"])
    if c.get("train_on_validation"):
        images = f"Trained on {trained_on(c)}: no validation loss was measured.\n"
    else:
        images = f"Limit: the first {c['limit']} training images (--limit {c['limit']}).\n" if c.get("limit") else ""
    changed = f"Changed on --resume: {changes_text(history.changes)}.\n" if history.changes else ""
    optimizer = c["optimizer"] + (", one-cycle" if c["schedule"] == "one-cycle" else "")
    run_id = history.run_id or "none (written before runs had ids)"
    text = (
        f"Started: {history.started}.\n>>> {paths.log.name}\nRun: {run_id}\n"
        f"Recipe: {c['recipe']} ({optimizer}, lr {c['lr']:g}, batch {c['batch_size']}, "
        f"{c['precision']}) on {c['device']}\n{changed}{images}"
        f"Autoencoder OK.\n{parameters} parameters\n"
        f"Data OK: {dataset.title}, images sha256 {c.get('data_sha256') or 'not recorded'}.\n"
        f"Training over {c['epochs']} Epochs...\n" + _epoch_table(history)
    )
    if test_mse is not None:
        text += f"Finished training.\nMSE on test data (fp32): {test_mse:.6g}.\nCompleted: {datetime.datetime.now()}.\n"
    return text


def _epoch_table(history: History) -> str:
    """The log's losses, one row an epoch; without the validation column where none was measured."""
    precision = history.settings["precision"]
    if history.settings.get("train_on_validation"):
        legend = f"(TL: training loss in {precision}; Time: seconds.)\n"
        columns = {"TL": history.training_loss, "Time": history.epoch_time}
    else:
        legend = f"(TL: training loss, VL: validation loss, both in {precision}; Time: seconds.)\n"
        columns = {"TL": history.training_loss, "VL": history.validation_loss, "Time": history.epoch_time}
    row = "{:<10}" + "{:<20}" * len(columns) + "\n"
    rows = [row.format(epoch, *(f"{v:.6g}" for v in values)) for epoch, values in enumerate(zip(*columns.values()), 1)]
    return legend + row.format("Epoch", *columns) + "".join(rows)


class RunFiles:
    """The files one model's run writes into its output folder (the output contract). Each carries
    the run's id; a new run removes the old run's files before it writes one of its own."""

    def __init__(self, config: TrainConfig, log_interval: float = LOG_INTERVAL):
        self.config, self.log_interval = config, log_interval
        self.paths = OutputPaths.of(config.output_dir, config.model)
        self.log_written_at = -math.inf

    def existing(self) -> list[Path]:
        """The run files of this model in the folder, in the order a new run removes them: first
        the two that make a run resumable (info: finished; checkpoint: unfinished), so that a crash
        while removing leaves nothing that --resume or a plot script would take for a run."""
        p = self.paths
        return [path for path in (p.info, p.checkpoint, p.weights, p.codes, p.init, p.log) if path.is_file()]

    def remove_all(self) -> None:
        for path in self.existing():
            path.unlink()

    def write_start(self, state: TrainingState) -> None:
        """The initial weights, which the plots draw as 'before training'."""
        save_model(self.paths.init, state.model, self.config.dataset, state.history.run_id)

    def write_log(self, state: TrainingState, test_mse: float | None = None, durable: bool = True) -> None:
        write_text_atomic(
            self.paths.log,
            render_log(self.paths, state.history, count_parameters(state.model), test_mse),
            durable=durable,
        )
        self.log_written_at = time.monotonic()

    def write_log_when_due(self, state: TrainingState, force: bool = False) -> None:
        """Rewrite the log at most every `log_interval` seconds (always when `force`). Not flushed
        to the disk: it is whole after a crash of the process anyway, and the flush would cost
        more than a fast device's epoch."""
        if force or time.monotonic() - self.log_written_at >= self.log_interval:
            self.write_log(state, durable=False)

    def write_results(self, state: TrainingState, test_mse: float) -> None:
        """The final weights, the code trace, the info pickle (last: it marks the run finished) and
        the full log. Each records the settings the run started with and its changes."""
        h = state.history
        save_model(self.paths.weights, state.model, self.config.dataset, h.run_id)
        if state.code_trace:
            torch_save_atomic(
                {"codes": torch.stack(state.code_trace), "config": h.settings, "run_id": h.run_id}, self.paths.codes
            )
        info = {
            "training loss": h.training_loss,
            "validation loss": h.validation_loss,
            "epoch time": h.epoch_time,
            "test mse": test_mse,
            "test mse precision": "fp32",
            "parameters": count_parameters(state.model),
            "config": h.settings,
            "changes": h.changes,
            "run_id": h.run_id,
            "started": h.started,
            "finished": str(datetime.datetime.now()),
        }
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
        """Put `state` where the finished run in the folder ended: its weights, history and code trace."""
        saved = torch_load(self.paths.weights, state.device, "train it again with --restart")
        try:
            state.model.load_state_dict(saved["state_dict"])
            trace = (
                torch_load(self.paths.codes, "cpu", "train it again with --restart")["codes"]
                if self.paths.codes.is_file()
                else []
            )
        except (KeyError, RuntimeError, TypeError) as e:
            raise UserError(
                f"{self.paths.weights} does not hold this run's model ({str(e).splitlines()[0]}); "
                "train it again with --restart"
            ) from None
        state.history = History(
            info["training loss"],
            info["validation loss"],
            info["epoch time"],
            info["started"],
            info.get("run_id", saved.get("run_id", "")),  # "": a run written before runs had ids
            info["config"],
            info.get("changes", []),
        )
        state.code_trace = list(trace)
