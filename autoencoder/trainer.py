"""One model's run, from its configuration to its results: the loop over epochs (training.py's
steps, epochs and evaluations below it) and what it drives between epochs, the checkpoint
(checkpoint.py) and the run's files (run_files.py).

    refuse_overwrite([config], resume=False, restart=False)   # an earlier run is replaced only on request
    torch.manual_seed(config.seed)                  # the caller seeds: initial weights, dropout
    test_mse = train_model(config, data)            # trains, or goes on with resume=True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import Checkpoints, check_settings, describe_saved_run
from .cli import training_command
from .datasets import dataset_spec
from .device import cuda_tf32
from .errors import UserError, diverged
from .model import count_parameters
from .progress import Progress
from .recipes import TrainConfig, trained_on
from .run_files import RunFiles, changes_text, epochs_text
from .training import (
    Interrupted,
    StopFlag,
    TrainingState,
    evaluate,
    folds_single_image_batch,
    new_training_state,
    recompute_batch_norm,
    record_epoch,
    trace_codes,
    train_epoch,
)


def describe(state: TrainingState) -> str:
    """'3D model: 23,326,369 parameters, recipe modern, 46 epochs, batch 500, bf16 on cpu'."""
    c = state.config
    images = trained_on(c.as_dict())
    limit = f", {images}" if images else ""
    return (
        f"{c.model} model{dataset_spec(c.dataset).on_title}: {count_parameters(state.model):,} parameters, "
        f"recipe {c.recipe}, {c.epochs} epoch{'' if c.epochs == 1 else 's'}, batch {c.batch_size}{limit}, "
        f"{c.precision} on {c.device}"
    )


def refuse_overwrite(configs: list[TrainConfig], resume: bool, restart: bool) -> None:
    """Before anything is written, for every model: an earlier run in its folder, finished or not,
    is the user's work, replaced only with --restart; --resume continues or re-evaluates it, and
    only with the settings and data it was made with."""
    for config in configs:
        _refuse_a_file_as_folder(Path(config.output_dir))
        if restart:
            continue
        files = RunFiles(config)
        checkpoint = files.paths.checkpoint
        if checkpoint.is_file():
            saved = Checkpoints(checkpoint, config.checkpoint_interval).read("cpu")
            if resume:
                check_settings(config, saved["config"], checkpoint)
                continue
            what = (
                "a run whose epochs are done but whose results are not all written"
                if saved["epoch"] >= saved["config"]["epochs"]
                else "an unfinished run"
            )
            raise UserError(
                f"{checkpoint} holds {what}, {describe_saved_run(saved)}: continue it with "
                f"`{training_command(saved['config'], '--resume')}`, discard it with "
                f"`{training_command(config.as_dict(), '--restart')}`, or choose another --output-dir"
            )
        finished = files.finished_run()
        if finished is not None and resume:
            check_settings(config, finished["config"], files.paths.info)
        elif finished is not None:
            raise UserError(
                f"{config.output_dir}/ holds a finished run of the {config.model} model "
                f"({epochs_text(finished)}, test MSE {finished['test mse']:.4g}): replace it with "
                f"`{training_command(config.as_dict(), '--restart')}`, or choose another --output-dir"
            )


def _refuse_a_file_as_folder(folder: Path) -> None:
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise UserError(f"--output-dir {folder}: {path} is a file, not a folder; choose another --output-dir")
            return


def check_trainable(config: TrainConfig, n_train: int) -> None:
    """Refuse a training set too small for the model (batch norm needs two images a batch)."""
    if config.architecture == "modern" and n_train < 2:
        raise UserError(
            f"--limit {n_train} leaves one training image; the modern recipe's batch norm needs at "
            "least two: use --limit 2 or more"
        )


def open_run(
    state: TrainingState,
    files: RunFiles,
    checkpoints: Checkpoints,
    test_x: torch.Tensor,
    resume: bool,
    say: Callable[[str], None],
) -> None:
    """Resume from the checkpoint or from the finished run's files, or start afresh: then the old
    run's files of this model go first, before the new run writes its own."""
    name, folder = state.config.model, state.config.output_dir
    if resume and checkpoints.path.is_file():
        checkpoints.restore(state, checkpoints.read(state.device))
    elif resume and (finished := files.finished_run()) is not None:
        check_settings(state.config, finished["config"], files.paths.info)
        files.restore_finished(state, finished)
    if state.finished:
        epochs = f"{state.config.epochs} epoch{'s' * (state.config.epochs != 1)}"
        say(
            f"{name}: already trained for {epochs}; --resume only re-evaluates it and rewrites its results, "
            "which keep the settings it was trained with"
        )
        return
    if state.epochs_done or state.partial:
        step = f", step {state.partial.step}" if state.partial else ""
        say(f"{name}: resuming from {checkpoints.path} at epoch {state.epochs_done + 1}{step}")
        if state.history.changes:
            say(f"{name}: recorded as changed from here: {changes_text(state.history.changes[-1:])}")
        return
    if resume:
        say(
            f"{name}: --resume found no checkpoint and no finished run in {folder}/: starting from scratch "
            f"(epoch 1 of {state.config.epochs})"
        )
    if old := files.existing():
        say(f"{name}: removing the earlier run's files in {folder}/ ({', '.join(p.name for p in old)})")
        files.remove_all()
    files.write_start(state)
    trace_codes(state, test_x)


def fit(
    state: TrainingState,
    data: dict[str, torch.Tensor],
    checkpoints: Checkpoints,
    files: RunFiles,
    stop: StopFlag | None = None,
    progress: Progress | None = None,
) -> None:
    """Train from where `state` is to its last epoch, validating (unless the run trains on the
    validation images too), tracing the codes, rewriting the log and saving the checkpoint (when
    due) after each epoch. On a stop signal the checkpoint is saved and Interrupted raised; a loss
    that is not finite raises TrainingDiverged."""
    progress = progress or Progress()
    state.model.train()
    progress.model_started(state.config.model, state.config.epochs, state.epochs_done)
    try:
        for _ in range(state.epochs_done, state.config.epochs):
            train_loss, seconds = train_epoch(state, data["train"], stop, progress)
            valid_loss = (
                None
                if state.config.train_on_validation
                else evaluate(state.model, data["valid"], state.config.precision)
            )
            trace_codes(state, data["test"])
            if not all(math.isfinite(loss) for loss in (train_loss, valid_loss) if loss is not None):
                validation = "" if valid_loss is None else f" (validation {valid_loss:g})"
                raise diverged(
                    state.config.model,
                    state.epochs_done + 1,
                    f"the loss became {train_loss:g}{validation}",
                    checkpoints.kept_in,
                )
            record_epoch(state, train_loss, valid_loss, seconds)
            files.write_log_when_due(state, force=checkpoints.due(state))
            progress.epoch_ended(state.epochs_done, train_loss, valid_loss, seconds)
            checkpoints.save_when_due(state)
    except Interrupted:
        checkpoints.save(state)
        raise
    finally:
        progress.model_ended()


def train_model(
    config: TrainConfig,
    data: dict[str, torch.Tensor],
    resume: bool = False,
    stop: StopFlag | None = None,
    progress: Progress | None = None,
) -> float:
    """Train one model as its configuration says (the caller seeds torch, and refuses to overwrite
    an earlier run with `refuse_overwrite`); returns its test MSE, measured in fp32.

    After the last epoch batch norm's statistics are measured anew over the training images, so
    that eval-mode outputs are honest after a run of any length."""
    progress = progress or Progress()
    n_train = len(data["train"])
    check_trainable(config, n_train)
    state = new_training_state(config, n_train)
    files = RunFiles(config)
    checkpoints = Checkpoints(files.paths.checkpoint, config.checkpoint_interval)
    progress.message(describe(state))
    if folds_single_image_batch(config, n_train):
        progress.message(
            f"{config.model}: the last batch of each epoch would hold one image, which batch norm "
            f"cannot train on; it joins the batch before it ({config.batch_size + 1} images)"
        )
    open_run(state, files, checkpoints, data["test"], resume, progress.message)
    fit(state, data, checkpoints, files, stop, progress)
    with cuda_tf32(state.device, enabled=False):  # true fp32, also on CUDA
        recompute_batch_norm(state.model, data["train"], "fp32")
        test_mse = evaluate(state.model, data["test"], "fp32")
    files.write_results(state, test_mse)
    checkpoints.remove()  # the results are all a finished run needs, --resume included
    return test_mse
