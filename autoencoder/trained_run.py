"""A trained run's outputs, loaded for the plot scripts, and what to say when they are missing."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .datasets import DEFAULT_DATASET, DatasetSpec, Splits, dataset_spec
from .device import encode_all, pick_device, reconstruction_mse
from .errors import UserError
from .files import OutputPaths, load_info
from .model import AutoEncoder, CodeSpec, load_model
from .sources import load_dataset


def train_command(model: str, output_dir: str | os.PathLike, dataset: str = DEFAULT_DATASET) -> str:
    """The training command that writes `model`'s files into `output_dir`."""
    spec = dataset_spec(dataset)
    command = "python auto_encoder.py" + spec.option + ("" if model == "both" else f" --model {model}")
    return command + ("" if Path(output_dir) == spec.output_dir else f" --output-dir {output_dir}")


def require_outputs(files: list[Path], model: str, output_dir: str | os.PathLike,
                    dataset: str = DEFAULT_DATASET) -> None:
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]} is missing: run `{train_command(model, output_dir, dataset)}` first")


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


def data_path(data: str | None, dataset: str, info: dict) -> str | None:
    """Where the plots read the dataset: `data` (--data), its environment variable, else the files
    the training read if they are still there (else the cache, then a download)."""
    recorded = info.get("config", {}).get("data_source")
    if data or os.environ.get(dataset_spec(dataset).env_var) or not recorded:
        return data
    return recorded if Path(recorded).exists() else None


def epochs_text(info: dict) -> str:
    """'1 epoch', '50 epochs', '2 epochs on the first 5,000 training images (--limit)': how long,
    and on what, a run in `info` trained."""
    n = len(info["training loss"])
    limit = info.get("config", {}).get("limit")
    return f"{n} epoch{'' if n == 1 else 's'}" + (f" on the first {limit:,} training images (--limit)" if limit else "")


@dataclass
class Stage:
    """One model evaluated on the test set, before or after training. Its figures' names end in
    `figure_suffix`, as the original's did: 1 before training, 2 after."""

    figure_suffix: int
    model: AutoEncoder
    when: str
    codes: torch.Tensor   # (N, units) test codes
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
    splits: Splits        # the whole dataset, for what needs the training images too


def load_trained_run(output_dir: str | os.PathLike, spec: CodeSpec, dataset: str = DEFAULT_DATASET,
                     data: str | None = None, device: str | None = None, needs_codes: bool = False) -> TrainedRun:
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
    splits = load_dataset(dataset, data_path(data, dataset, info))
    test_x = torch.from_numpy(splits.test_x).to(torch_device)
    stages = []
    for suffix, model, when in zip((1, 2), models, ("before training", f"after {epochs_text(info)}")):
        codes = encode_all(model, test_x)
        stages.append(Stage(suffix, model, when, codes, reconstruction_mse(model, test_x, codes=codes)))
    return TrainedRun(spec, dataset_spec(dataset), paths, info, stages, test_x, splits.test_y, splits)
