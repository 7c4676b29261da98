"""Deep autoencoders for MNIST and its kin: the library behind auto_encoder.py and the plot scripts.

The names below are the API a notebook needs (docs/api.md has an example); everything else lives
in the modules, one concern each (docs/architecture.md):

    from autoencoder import load_trained_run, parse_code, encode_all, decode_all
    run = load_trained_run("output", parse_code("3D"))       # weights, info and test set of a run
    codes = encode_all(run.stages[-1].model, run.test_x)      # (10000, 3)
"""

from __future__ import annotations

from .analysis import PCA, knn_accuracy
from .datasets import DATASETS, Splits
from .device import decode_all, encode_all, reconstruction_mse
from .errors import DataError, TrainingDiverged, UserError
from .model import AutoEncoder, CodeSpec, load_model, parse_code, save_model
from .recipes import RECIPES, Recipe, TrainConfig
from .sources import load_dataset
from .trained_run import TrainedRun, load_trained_run
from .training import evaluate

__all__ = [
    "AutoEncoder",
    "CodeSpec",
    "parse_code",
    "load_model",
    "save_model",
    "TrainConfig",
    "RECIPES",
    "Recipe",
    "DATASETS",
    "Splits",
    "load_dataset",
    "encode_all",
    "decode_all",
    "reconstruction_mse",
    "evaluate",
    "TrainedRun",
    "load_trained_run",
    "PCA",
    "knn_accuracy",
    "UserError",
    "DataError",
    "TrainingDiverged",
]
