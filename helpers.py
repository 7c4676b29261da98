"""What the four scripts (auto_encoder.py, plot_training.py, plot_3D.py, plot_4x4.py) import, and
no more: the library itself is the package `autoencoder` (its API: docs/api.md). Nothing here
imports matplotlib: figures import it on first use."""

from __future__ import annotations

from autoencoder.analysis import KNN_NEIGHBOURS, KNN_TRAIN, code_quality, fit_pca, pca_training_set, write_table
from autoencoder.cli import (
    OneLineParser,
    add_data_options,
    figure_parser,
    fill_output_dir,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    run_main,
    run_plot_script,
    seed_value,
)
from autoencoder.code_size import SWEEP_COLUMNS, find_runs, pca_baseline, plot_code_sizes, table_note, table_rows
from autoencoder.datasets import DATASETS, DatasetSpec, dataset_spec
from autoencoder.device import cuda_tf32, decode_all, pick_device, resolve_precision
from autoencoder.errors import UserError
from autoencoder.explorer import add_explorer_option, save_explorer
from autoencoder.figures import (
    DIGIT_CMAP,
    SHOWN_DIGITS,
    class_colors,
    class_legend,
    image_row,
    mosaic,
    pyplot,
    save_figure,
    wrapped,
)
from autoencoder.files import OutputPaths, atomic_path, torch_load
from autoencoder.model import CodeSpec, load_model, parse_code, parse_models
from autoencoder.progress import Progress, console_progress
from autoencoder.recipes import CHECKPOINT_INTERVAL, COMPILE_MODES, RECIPES, TrainConfig, image_sets
from autoencoder.reference import original_run
from autoencoder.run_figures import save_input_output_rows
from autoencoder.run_files import epochs_text
from autoencoder.sources import load_dataset, store_in_cache
from autoencoder.trained_run import (
    Stage,
    TrainedRun,
    check_same_data,
    load_run_info,
    load_trained_run,
    require_outputs,
    train_command,
)
from autoencoder.trainer import check_trainable, refuse_overwrite, train_model
from autoencoder.training import Interrupted, StopFlag, data_tensors

__all__ = [
    "UserError",
    "OutputPaths",
    "atomic_path",
    "torch_load",
    "DATASETS",
    "DatasetSpec",
    "dataset_spec",
    "load_dataset",
    "store_in_cache",
    "CodeSpec",
    "load_model",
    "parse_code",
    "parse_models",
    "cuda_tf32",
    "decode_all",
    "pick_device",
    "resolve_precision",
    "CHECKPOINT_INTERVAL",
    "COMPILE_MODES",
    "RECIPES",
    "TrainConfig",
    "Interrupted",
    "StopFlag",
    "data_tensors",
    "epochs_text",
    "image_sets",
    "check_trainable",
    "refuse_overwrite",
    "train_model",
    "Progress",
    "console_progress",
    "DIGIT_CMAP",
    "SHOWN_DIGITS",
    "class_colors",
    "class_legend",
    "image_row",
    "mosaic",
    "pyplot",
    "save_figure",
    "wrapped",
    "OneLineParser",
    "add_data_options",
    "figure_parser",
    "fill_output_dir",
    "fraction",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "run_main",
    "run_plot_script",
    "seed_value",
    "Stage",
    "TrainedRun",
    "check_same_data",
    "load_run_info",
    "load_trained_run",
    "require_outputs",
    "train_command",
    "save_input_output_rows",
    "KNN_NEIGHBOURS",
    "KNN_TRAIN",
    "code_quality",
    "fit_pca",
    "pca_training_set",
    "write_table",
    "SWEEP_COLUMNS",
    "find_runs",
    "pca_baseline",
    "plot_code_sizes",
    "table_note",
    "table_rows",
    "original_run",
    "add_explorer_option",
    "save_explorer",
]
