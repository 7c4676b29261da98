"""Train the autoencoders: the 3D model, then the 4x4 model (or any code size), on MNIST or its kin.

    python auto_encoder.py                      # modern recipe, both models, MNIST
    python auto_encoder.py --recipe original    # the 2016 recipe: SGD lr 1.0, 500 epochs
    python auto_encoder.py --dataset fashion-mnist
    python auto_encoder.py --resume             # continue after an interruption

Writes, per model M, into --output-dir: auto_encoder_M.txt (log), auto_encoder_M_info.pkl.gz
(losses, test MSE, configuration), auto_encoder_M_init.pt / _weights.pt (weights before and
after training), auto_encoder_M_codes.pt (for codes of up to three units: the codes of 2,000
test images after every epoch) and, while it trains, auto_encoder_M_checkpoint.pt (for --resume;
removed once the model has finished). An unfinished run's checkpoint is never overwritten:
continue it with --resume, or discard it with --restart.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace

import torch

from helpers import (
    CHECKPOINT_INTERVAL,
    COMPILE_MODES,
    DATASETS,
    RECIPES,
    Interrupted,
    OneLineParser,
    Progress,
    StopFlag,
    TrainConfig,
    add_data_options,
    check_trainable,
    console_progress,
    cuda_tf32,
    data_tensors,
    dataset_spec,
    fill_output_dir,
    fraction,
    load_dataset,
    non_negative_float,
    parse_models,
    pick_device,
    positive_float,
    positive_int,
    refuse_overwrite,
    resolve_precision,
    run_main,
    seed_value,
    store_in_cache,
    train_model,
)


def _recipe_values(key: str) -> str:
    return ", ".join(f"{getattr(recipe, key):g} {name}" for name, recipe in RECIPES.items())


def _large_code_values(key: str) -> str:
    """'0 for modern vector codes of 30+ units on MNIST and Fashion-MNIST': the datasets whose large
    codes take their own value of `key`, grouped by value."""
    modern = RECIPES["modern"]
    titles: dict[float, list[str]] = {}
    for dataset, values in modern.large_code_values.items():
        if key in values:
            titles.setdefault(values[key], []).append(dataset_spec(dataset).title)
    codes = f"modern vector codes of {modern.large_code_units}+ units"
    return "; ".join(f"{value:g} for {codes} on {' and '.join(names)}" for value, names in titles.items())


def _decay_1d_default() -> str:
    """'yes (no for modern vector codes of 30+ units on MNIST)': where the recipe table says."""
    modern = RECIPES["modern"]
    exempt = [
        dataset_spec(d).title for d, values in modern.large_code_values.items() if values.get("decay_1d") is False
    ]
    where = f" (no for modern vector codes of {modern.large_code_units}+ units on {' and '.join(exempt)})"
    return "yes" + (where if exempt else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="auto_encoder.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default="both", help="3D, 4x4, both (default), any ND or KxK code, or a comma-separated list"
    )
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="modern",
        help="modern (AdamW, one-cycle, batch norm; default) or original (the 2016 SGD recipe)",
    )
    p.add_argument(
        "--epochs", type=positive_int, help=f"default: {_recipe_values('epochs')} ({_large_code_values('epochs')})"
    )
    p.add_argument("--batch-size", type=positive_int, help=f"default: {_recipe_values('batch_size')}")
    p.add_argument(
        "--lr",
        type=positive_float,
        help="(peak) learning rate, may change on --resume; "
        f"default: {_recipe_values('lr')} ({RECIPES['modern'].image_code_lr:g} for modern image codes)",
    )
    p.add_argument(
        "--weight-decay",
        type=non_negative_float,
        help=f"AdamW weight decay (modern recipe only); default: {_recipe_values('weight_decay')} "
        f"({_large_code_values('weight_decay')})",
    )
    p.add_argument(
        "--dropout",
        type=fraction,
        help="dropout after the wide dense layers (modern recipe only); default: "
        f"{_recipe_values('dropout')} ({_large_code_values('dropout')})",
    )
    p.add_argument(
        "--decay-1d",
        action=argparse.BooleanOptionalAction,
        help="whether AdamW's weight decay also shrinks the 1-D parameters (batch norm's scales and "
        f"shifts, the biases); default: {_decay_1d_default()}",
    )
    p.add_argument("--seed", type=seed_value, default=0, help="seed for the init and shuffling (default 0)")
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    p.add_argument(
        "--train-on-validation",
        action="store_true",
        help="train on the training and validation images together (60,000 for MNIST; --limit takes the "
        "first N of them) and measure no validation loss: for a final run whose --epochs were chosen "
        "on validation",
    )
    add_data_options(p, "where the outputs go")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue each model from its checkpoint (a finished model is only re-evaluated; "
        "a model with nothing to resume starts from scratch)",
    )
    start.add_argument(
        "--restart", action="store_true", help="discard an unfinished run's checkpoint and train from scratch"
    )
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto (default): bf16 autocast where the hardware is fast at it (CUDA, CPUs with "
        "AVX-512 bf16 or AMX), else fp32; fp32: float32 throughout, as in 2016",
    )
    p.add_argument(
        "--prepare-data",
        action="store_true",
        help="fetch and verify the dataset into data/ (or with --data, check those files and "
        "copy them there), then exit",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=non_negative_float,
        default=CHECKPOINT_INTERVAL,
        metavar="SECONDS",
        help="write the checkpoint after the first epoch that ends this long "
        f"after the last one, and after the last epoch (default {CHECKPOINT_INTERVAL:g}; 0: "
        "after every epoch); SIGINT and SIGTERM always save one",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default="none",
        choices=COMPILE_MODES,
        metavar="MODE",
        help="torch.compile the model; MODE: default, reduce-overhead (CUDA graphs) or max-autotune (default: none)",
    )
    return fill_output_dir(p.parse_args(argv))


def configs_from_args(args: argparse.Namespace, device: str, precision: str) -> list[TrainConfig]:
    """One complete configuration per model: each option left out takes its recipe's value."""
    return [
        TrainConfig(
            spec.name,
            args.dataset,
            args.recipe,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            dropout=args.dropout,
            decay_1d=args.decay_1d,
            seed=args.seed,
            limit=args.limit,
            train_on_validation=args.train_on_validation,
            precision=precision,
            device=device,
            compile=args.compile,
            checkpoint_interval=args.checkpoint_interval,
            output_dir=str(args.output_dir),
        )
        for spec in parse_models(args.model)
    ]


def prepare_data(args: argparse.Namespace, progress: Progress) -> None:
    """Fetch and verify the dataset into its cache; files given with --data are checked, then copied there."""
    splits = load_dataset(args.dataset, args.data, log=progress.message)
    source = f"{store_in_cache(splits)}/, copied from {splits.source}" if args.data else splits.source
    print(
        f"{DATASETS[args.dataset].title} ready ({source}): {len(splits.train_x)} train, "
        f"{len(splits.valid_x)} validation, {len(splits.test_x)} test images"
    )


def train_models(args: argparse.Namespace, argv: list[str] | None) -> int:
    progress = console_progress()
    if args.prepare_data:
        prepare_data(args, progress)
        return 0
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    configs = configs_from_args(args, str(device), precision)
    splits = load_dataset(args.dataset, args.data, log=progress.message)
    data = data_tensors(splits, args.limit, device, args.train_on_validation)
    configs = [replace(config, data_sha256=splits.sha256) for config in configs]
    for config in configs:
        check_trainable(config, len(data["train"]))
    refuse_overwrite(configs, args.resume, args.restart)
    args.output_dir.mkdir(parents=True, exist_ok=True)  # after the checks: refused input leaves no folder
    try:
        with StopFlag() as stop, cuda_tf32(device, enabled=precision != "fp32"):  # fp32: as in 2016
            for config in configs:
                torch.manual_seed(config.seed)  # the initial weights and the dropout masks
                test_mse = train_model(config, data, args.resume, stop, progress)
                print(f"{config.model}: MSE on test data: {test_mse:.6g} (outputs in {args.output_dir}/)")
    except Interrupted as e:
        print(
            f"\nStopped by {e}: checkpoint saved. Continue with the same command plus --resume:\n"
            f"  python auto_encoder.py {shlex.join(_resume_argv(argv))}",
            file=sys.stderr,
        )
        return 128 + e.signum
    return 0


def _resume_argv(argv: list[str] | None) -> list[str]:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--restart"]
    return argv if "--resume" in argv else [*argv, "--resume"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(
        lambda: train_models(args, argv),
        write_hint="that file's previous version is intact. Free space or fix permissions, then "
        f"continue with `python auto_encoder.py {shlex.join(_resume_argv(argv))}`",
        interrupted="Interrupted before training started; nothing was written.",
    )


if __name__ == "__main__":
    sys.exit(main())
