"""The suite's public surface: every name the scripts, the benchmark and notebooks use.

The code lives in the `autoencoder` package, one concern a module; this file imports each
public name from its module, so that `import helpers` (or `from helpers import load_model`)
is the one place to look. Nothing here imports matplotlib: figures import it on first use.
"""
from __future__ import annotations

from autoencoder.errors import DataError, TrainingDiverged, UserError, diverged
from autoencoder.files import (INFO_SUFFIX, PREFIX, OutputPaths, SafeUnpickler, atomic_path, load_info,
                               read_safe_pickle, save_info, sha256_of, torch_load, torch_save_atomic,
                               write_text_atomic)
from autoencoder.datasets import (DATASETS, DEFAULT_DATASET, IDX_FILES, DatasetSpec, Splits, dataset_spec,
                                  find_idx_files, read_dataset, read_idx, read_idx_folder, read_mnist,
                                  read_npz, read_pickle_splits)
from autoencoder.sources import (MNIST_SHA256, MNIST_WHEEL, MNIST_WHEEL_MEMBER, PICKLE_NAME, hand_placement,
                                 load_dataset, load_mnist, pip_download, store_in_cache,
                                 torchvision_download)
from autoencoder.model import (ARCHITECTURES, CONV_FEATURES, DECODER_WIDTHS, DEFAULT_MODELS,
                               DROPOUT_MIN_WIDTH, ENCODER_WIDTHS, AutoEncoder, CodeSpec, count_parameters,
                               load_lasagne_weights, load_model, parse_code, parse_models, save_model)
from autoencoder.device import (CPU_BF16_PROBES, EVAL_BATCH, autocast, cpu_has_fast_bf16, cuda_tf32,
                                decode_all, encode_all, map_batches, pick_device, reconstruction_mse,
                                resolve_precision, tf32_switches)
from autoencoder.recipes import (ADAMW_IMPLEMENTATIONS, CHECKPOINT_INTERVAL, COMPILE_MODES, RECIPES,
                                 RESUME_KEYS, Recipe, TrainConfig, change_learning_rate, make_optimizer,
                                 one_cycle, recipe_values)
from autoencoder.training import (TRACED_IMAGES, TRACED_MAX_UNITS, History, Interrupted, PartialEpoch,
                                  StopFlag, TrainingState, data_tensors, evaluate, new_training_state,
                                  record_epoch, start_epoch, trace_codes, train_epoch, train_step)
from autoencoder.trainer import check_trainable, describe, fit, open_run, refuse_overwrite, train_model
from autoencoder.checkpoint import (Checkpoints, check_settings, checkpoint_of, describe_saved_run,
                                    global_rng_state, set_global_rng_state)
from autoencoder.run_files import LOG_INTERVAL, RunFiles, render_log
from autoencoder.progress import (BAR_LOSS_INTERVAL, LINE_INTERVAL, BarProgress, LineProgress, Progress,
                                  console_progress)
from autoencoder.cli import (OneLineParser, add_data_options, figure_parser, fill_output_dir, fraction,
                             non_negative_float, parse_formats, positive_float, positive_int, run_main,
                             run_plot_script, seed_value)
from autoencoder.figures import (DIGIT_CMAP, FIGURE_DPI, FIGURE_FORMATS, FIXED_DATE, SHOWN_DIGITS,
                                 class_colors, class_legend, image_row, mosaic, pyplot, reproducible_metadata,
                                 save_figure, save_input_output_rows, use_file_backend)
from autoencoder.run_files import epochs_text
from autoencoder.trained_run import (Stage, TrainedRun, check_one_run, check_same_data, dataset_of_info,
                                     load_run_info, load_trained_run, require_outputs, train_command)
from autoencoder.analysis import (KNN_NEIGHBOURS, KNN_TRAIN, PCA, code_quality, fit_pca, knn_accuracy,
                                  trained_quality, write_table)
from autoencoder.code_size import (BYTE_255_TO_256, HINTON_2006, HINTON_2006_UNITS, PIXELS, SWEEP_COLUMNS,
                                   FinishedRun, PcaBaseline, find_runs, pca_baseline, per_image,
                                   plot_code_sizes, psnr, table_note, table_rows)
from autoencoder.reference import ORIGINAL_LOGS, original_run, original_test_mse
from autoencoder.explorer import (EXPLORER_BITS, SPRITE_COLUMNS, add_explorer_option, explorer_path,
                                  fold_decoder, quantize_rows, save_explorer, write_explorer)

__all__ = [
    "DataError", "TrainingDiverged", "UserError", "diverged", "INFO_SUFFIX", "PREFIX", "OutputPaths", "SafeUnpickler",
    "atomic_path", "load_info", "read_safe_pickle", "save_info", "sha256_of", "torch_load",
    "torch_save_atomic", "write_text_atomic", "DATASETS", "DEFAULT_DATASET", "IDX_FILES", "DatasetSpec",
    "Splits", "dataset_spec", "find_idx_files", "read_dataset", "read_idx", "read_idx_folder", "read_mnist",
    "read_npz", "read_pickle_splits", "MNIST_SHA256", "MNIST_WHEEL", "MNIST_WHEEL_MEMBER", "PICKLE_NAME",
    "hand_placement", "load_dataset", "load_mnist", "pip_download", "store_in_cache",
    "torchvision_download", "ARCHITECTURES", "CONV_FEATURES", "DECODER_WIDTHS", "DEFAULT_MODELS",
    "DROPOUT_MIN_WIDTH", "ENCODER_WIDTHS", "AutoEncoder", "CodeSpec", "count_parameters",
    "load_lasagne_weights", "load_model", "parse_code", "parse_models", "save_model", "CPU_BF16_PROBES",
    "EVAL_BATCH", "autocast", "cpu_has_fast_bf16", "cuda_tf32", "decode_all", "encode_all", "map_batches",
    "pick_device", "reconstruction_mse", "resolve_precision", "tf32_switches", "ADAMW_IMPLEMENTATIONS",
    "CHECKPOINT_INTERVAL", "COMPILE_MODES", "RECIPES", "RESUME_KEYS", "Recipe", "TrainConfig",
    "change_learning_rate", "make_optimizer", "one_cycle", "recipe_values", "TRACED_IMAGES",
    "TRACED_MAX_UNITS", "History", "Interrupted", "PartialEpoch", "StopFlag", "TrainingState",
    "data_tensors", "evaluate", "fit", "describe", "open_run", "refuse_overwrite", "check_trainable", "train_model", "new_training_state", "record_epoch", "start_epoch",
    "trace_codes", "train_epoch", "train_step", "Checkpoints", "check_settings", "checkpoint_of",
    "describe_saved_run", "global_rng_state", "set_global_rng_state", "LOG_INTERVAL", "RunFiles",
    "render_log", "BAR_LOSS_INTERVAL", "LINE_INTERVAL", "BarProgress", "LineProgress", "Progress",
    "console_progress", "OneLineParser", "add_data_options", "fill_output_dir", "fraction",
    "non_negative_float", "positive_float", "positive_int", "run_main", "seed_value", "DIGIT_CMAP",
    "FIGURE_DPI", "FIGURE_FORMATS", "FIXED_DATE", "SHOWN_DIGITS", "class_colors", "class_legend",
    "figure_parser", "image_row", "mosaic", "parse_formats", "pyplot", "reproducible_metadata",
    "run_plot_script", "save_figure", "save_input_output_rows", "use_file_backend", "Stage", "TrainedRun",
    "check_one_run", "check_same_data", "dataset_of_info", "epochs_text", "load_run_info", "load_trained_run", "require_outputs",
    "train_command", "KNN_NEIGHBOURS", "KNN_TRAIN", "PCA", "code_quality", "fit_pca", "knn_accuracy",
    "trained_quality", "write_table", "BYTE_255_TO_256", "HINTON_2006", "HINTON_2006_UNITS", "PIXELS",
    "SWEEP_COLUMNS", "FinishedRun", "PcaBaseline", "find_runs", "pca_baseline", "per_image",
    "plot_code_sizes", "psnr", "table_note", "table_rows", "ORIGINAL_LOGS", "original_run",
    "original_test_mse", "EXPLORER_BITS", "SPRITE_COLUMNS", "add_explorer_option", "explorer_path",
    "fold_decoder", "quantize_rows", "save_explorer", "write_explorer"
]
