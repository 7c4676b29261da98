"""A trained run's outputs, loaded for the plot scripts, and what to say when they are missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoints, describe_saved_run
from .cli import training_command
from .datasets import DEFAULT_DATASET, DatasetSpec, Splits, dataset_spec
from .device import encode_all, pick_device, reconstruction_mse
from .errors import UserError
from .files import OutputPaths, load_info, torch_load
from .model import AutoEncoder, CodeSpec, load_model
from .run_files import epochs_text
from .sources import load_dataset


def train_command(model: str, output_dir: str | os.PathLike, dataset: str = DEFAULT_DATASET) -> str:
    """The training command that writes `model`'s files into `output_dir`."""
    spec = dataset_spec(dataset)
    command = "python auto_encoder.py" + spec.option + ("" if model == "both" else f" --model {model}")
    return command + ("" if Path(output_dir) == spec.output_dir else f" --output-dir {output_dir}")


def require_outputs(
    files: list[Path], model: str, output_dir: str | os.PathLike, dataset: str = DEFAULT_DATASET
) -> None:
    """Refuse, naming the command that makes them, when a model's files are missing: the command
    that finishes an unfinished run in the folder, else the one that trains it."""
    missing = [f for f in files if not f.is_file()]
    if not missing:
        return
    checkpoint = OutputPaths.of(output_dir, model).checkpoint
    if model != "both" and checkpoint.is_file():
        saved = Checkpoints(checkpoint, 0).read("cpu")
        raise UserError(
            f"{missing[0]} is missing: {checkpoint} holds an unfinished run, "
            f"{describe_saved_run(saved)}; finish it with "
            f"`{training_command(saved['config'], '--resume')}` first"
        )
    raise UserError(f"{missing[0]} is missing: run `{train_command(model, output_dir, dataset)}` first")


def check_one_run(
    paths: OutputPaths, model: str, info: dict, models: list[AutoEncoder], codes_run_id: str | None = None
) -> None:
    """Refuse a folder whose files of one model come from two runs (each file names its run; files
    written before runs had ids name none, and are taken as one run)."""
    ids = {
        paths.info.name: info.get("run_id", ""),
        paths.init.name: models[0].run_id,
        paths.weights.name: models[1].run_id,
    }
    if codes_run_id is not None:
        ids[paths.codes.name] = codes_run_id
    if len(set(ids.values())) > 1:
        runs = "; ".join(f"{name}: run {run_id[:8] or 'without an id'}" for name, run_id in ids.items())
        config = info.get("config")
        fix = f"`{training_command(config, '--restart')}`" if config else "the training command with --restart"
        raise UserError(
            f"{paths.log.parent}/ holds files of two runs of the {model} model ({runs}): train it again with {fix}"
        )


def check_same_data(splits: Splits, info: dict, source: str) -> None:
    """Refuse to draw a run with other images than it trained on."""
    trained_on = info.get("config", {}).get("data_sha256")
    if trained_on and trained_on != splits.sha256:
        raise UserError(
            f"the run in {source} trained on other images (sha256 {trained_on[:12]}...) than "
            f"{splits.source} holds ({splits.sha256[:12]}...): pass the files it trained on with --data"
        )


def dataset_of_info(info: dict) -> str:
    """The dataset a training-info dict was made on. Only the 2016 original's pickles have no
    configuration, and it trained on MNIST."""
    return info["config"]["dataset"] if "config" in info else DEFAULT_DATASET


def load_run_info(path: Path, dataset: str) -> dict:
    """A training-info pickle, refused if another dataset made it."""
    info = load_info(path)
    made_by = dataset_of_info(info)
    if made_by != dataset:
        raise UserError(f"{path} was trained on {made_by}, not {dataset}: pass --dataset {made_by}")
    return info


@dataclass
class Stage:
    """One model evaluated on the test set, before or after training. Its figures' names end in
    `figure_suffix`, as the original's did: 1 before training, 2 after."""

    figure_suffix: int
    model: AutoEncoder
    when: str
    codes: torch.Tensor  # (N, units) test codes
    test_mse: float


@dataclass
class TrainedRun:
    """A trained model's outputs, loaded, and the test data on the same device."""

    spec: CodeSpec
    dataset: DatasetSpec
    paths: OutputPaths
    info: dict
    stages: list[Stage]
    test_x: torch.Tensor
    test_y: np.ndarray
    splits: Splits  # the whole dataset, for what needs the training images too


def load_trained_run(
    output_dir: str | os.PathLike,
    spec: CodeSpec,
    dataset: str = DEFAULT_DATASET,
    data: str | None = None,
    device: str | None = None,
    needs_codes: bool = False,
) -> TrainedRun:
    """Load the weights before and after training, the info and the dataset (read from `data`,
    else as `load_dataset` finds it), for a plot script or a notebook.

    The training outputs are checked first, so a missing run (or one of another dataset) is
    reported before any data is read. Each stage's test codes and test MSE are computed once.
    """
    paths = OutputPaths.of(output_dir, spec.name)
    needed = [paths.info, paths.init, paths.weights] + ([paths.codes] if needs_codes else [])
    require_outputs(needed, spec.name, output_dir, dataset)
    torch_device = pick_device(device)
    info = load_run_info(paths.info, dataset)
    models = [load_model(p, torch_device, spec.name, dataset) for p in (paths.init, paths.weights)]
    codes_run_id = torch_load(paths.codes, "cpu", "train the model again").get("run_id", "") if needs_codes else None
    check_one_run(paths, spec.name, info, models, codes_run_id)
    splits = load_dataset(dataset, data)
    check_same_data(splits, info, str(paths.info))
    test_x = torch.from_numpy(splits.test_x).to(torch_device)
    stages = []
    for suffix, model, when in zip((1, 2), models, ("before training", f"after {epochs_text(info)}")):
        codes = encode_all(model, test_x)
        stages.append(Stage(suffix, model, when, codes, reconstruction_mse(model, test_x, codes=codes)))
    return TrainedRun(spec, dataset_spec(dataset), paths, info, stages, test_x, splits.test_y, splits)
