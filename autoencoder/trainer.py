"""One model's run, from its configuration to its results: the loop over epochs (training.py's
steps, epochs and evaluations below it) and what it drives between epochs, the checkpoint
(checkpoint.py) and the run's files (run_files.py).

    torch.manual_seed(config.seed)                  # the caller seeds: initial weights, dropout
    test_mse = train_model(config, data)            # trains, or resumes with resume=True
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .checkpoint import Checkpoints, check_settings, describe_saved_run
from .datasets import dataset_spec
from .errors import UserError, diverged
from .model import count_parameters
from .progress import Progress
from .recipes import TrainConfig
from .run_files import RunFiles
from .training import (Interrupted, StopFlag, TrainingState, evaluate, new_training_state, record_epoch,
                       trace_codes, train_epoch)


def describe(state: TrainingState) -> str:
    """'3D model: 23,326,369 parameters, recipe modern, 46 epochs, batch 500, bf16 on cpu'."""
    c = state.config
    limit = f", the first {c.limit} training images (--limit)" if c.limit else ""
    return (f"{c.model} model{dataset_spec(c.dataset).on_title}: {count_parameters(state.model):,} parameters, "
            f"recipe {c.recipe}, {c.epochs} epoch{'' if c.epochs == 1 else 's'}, batch {c.batch_size}{limit}, "
            f"{c.precision} on {c.device}")


def refuse_unfinished(configs: list[TrainConfig], resume: bool, restart: bool) -> None:
    """Before anything trains: an unfinished run's checkpoint is the user's work, never overwritten
    unless they say so."""
    if resume or restart:
        return
    for config in configs:
        checkpoints = Checkpoints(RunFiles(config).paths.checkpoint, config.checkpoint_interval)
        if checkpoints.path.is_file():
            saved = checkpoints.read("cpu")
            if saved["epoch"] < saved["config"]["epochs"]:
                raise UserError(f"{checkpoints.path} holds an unfinished run, {describe_saved_run(saved)}: "
                                "continue it with --resume, discard it with --restart, or choose another "
                                "--output-dir")


def open_run(state: TrainingState, files: RunFiles, checkpoints: Checkpoints, test_x: torch.Tensor,
             resume: bool, restart: bool, say: Callable[[str], None]) -> None:
    """Resume from the checkpoint or from the finished run's files, or start afresh."""
    name, folder = state.config.model, state.config.output_dir
    if resume and checkpoints.path.is_file():
        checkpoints.restore(state, checkpoints.read(state.device))
    elif resume and (finished := files.finished_run()) is not None:
        check_settings(state.config, finished["config"], files.paths.info)
        files.restore_finished(state, finished)
    if state.finished:
        say(f"{name}: already trained for {state.config.epochs} epochs; --resume only re-evaluates it and "
            "rewrites its results")
        return
    if state.epochs_done or state.partial:
        step = f", step {state.partial.step}" if state.partial else ""
        say(f"{name}: resuming from {checkpoints.path} at epoch {state.epochs_done + 1}{step}")
        return
    if resume:
        say(f"{name}: --resume found no checkpoint and no finished run in {folder}/: starting from scratch "
            f"(epoch 1 of {state.config.epochs})")
    elif files.paths.info.is_file() or checkpoints.path.is_file():
        say(f"{name}: overwriting the earlier run in {folder}/" + (" (--restart)" if restart else ""))
    files.write_start(state)
    trace_codes(state, test_x)


def fit(state: TrainingState, data: dict[str, torch.Tensor], checkpoints: Checkpoints, files: RunFiles,
        stop: StopFlag | None = None, progress: Progress | None = None) -> None:
    """Train from where `state` is to its last epoch, validating, tracing the codes, rewriting the
    log and saving the checkpoint (when due) after each epoch. On a stop signal the checkpoint is
    saved and Interrupted raised; a loss that is not finite raises TrainingDiverged."""
    progress = progress or Progress()
    state.model.train()
    progress.model_started(state.config.model, state.config.epochs, state.epochs_done)
    try:
        for _ in range(state.epochs_done, state.config.epochs):
            train_loss, seconds = train_epoch(state, data["train"], stop, progress)
            valid_loss = evaluate(state.model, data["valid"], state.config.precision)
            trace_codes(state, data["test"])
            if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
                raise diverged(state.config.model, state.epochs_done + 1,
                               f"the loss became {train_loss:g} (validation {valid_loss:g})", checkpoints.kept_in)
            record_epoch(state, train_loss, valid_loss, seconds)
            files.write_log_when_due(state, force=checkpoints.due(state))
            progress.epoch_ended(state.epochs_done, train_loss, valid_loss, seconds)
            checkpoints.save_when_due(state)
    except Interrupted:
        checkpoints.save(state)
        raise
    finally:
        progress.model_ended()


def train_model(config: TrainConfig, data: dict[str, torch.Tensor], resume: bool = False, restart: bool = False,
                stop: StopFlag | None = None, progress: Progress | None = None) -> float:
    """Train one model as its configuration says (the caller seeds torch); returns its test MSE."""
    progress = progress or Progress()
    state = new_training_state(config, len(data["train"]))
    files = RunFiles(config)
    checkpoints = Checkpoints(files.paths.checkpoint, config.checkpoint_interval)
    progress.message(describe(state))
    open_run(state, files, checkpoints, data["test"], resume, restart, progress.message)
    fit(state, data, checkpoints, files, stop, progress)
    test_mse = evaluate(state.model, data["test"], "fp32")
    files.write_results(state, test_mse)
    checkpoints.remove()  # the results are all a finished run needs, --resume included
    return test_mse
