"""Train the autoencoders: the 3D model, then the 4x4 model (or any code size), on MNIST or its kin.

    python auto_encoder.py                      # modern recipe, both models, MNIST
    python auto_encoder.py --recipe original    # the 2016 recipe: SGD lr 1.0, 500 epochs
    python auto_encoder.py --dataset fashion-mnist
    python auto_encoder.py --resume             # continue after an interruption

Writes, per model M, into --output-dir: auto_encoder_M.txt (log), auto_encoder_M_info.pkl.gz
(losses, test MSE, configuration), auto_encoder_M_init.pt / _weights.pt (weights before and
after training), auto_encoder_M_checkpoint.pt (for --resume) and, for codes of up to three
units, auto_encoder_M_codes.pt (the codes of 2,000 test images after every epoch).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from helpers import (CHECKPOINT_INTERVAL, COMPILE_MODES, DATASETS, MODERN_IMAGE_CODE_LR, RECIPE_DEFAULTS,
                     Interrupted, Progress, Run, StopFlag, TrainConfig, add_data_options, count_parameters,
                     cuda_tf32, data_tensors, fill_output_dir, load_dataset, non_negative_float,
                     parse_models, pick_device, positive_float, positive_int, progress_for,
                     resolve_precision, run_main, seed_value)


def _recipe_values(key: str) -> str:
    return ", ".join(f"{defaults[key]:g} {recipe}" for recipe, defaults in RECIPE_DEFAULTS.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="auto_encoder.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="both",
                   help="3D, 4x4, both (default), any ND or KxK code, or a comma-separated list")
    p.add_argument("--recipe", choices=list(RECIPE_DEFAULTS), default="modern",
                   help="modern (AdamW, one-cycle, batch norm; default) or original (the 2016 SGD recipe)")
    p.add_argument("--epochs", type=positive_int, help=f"default: {_recipe_values('epochs')}")
    p.add_argument("--batch-size", type=positive_int, help=f"default: {_recipe_values('batch_size')}")
    p.add_argument("--lr", type=positive_float, help="(peak) learning rate, may change on --resume; "
                   f"default: {_recipe_values('lr')} ({MODERN_IMAGE_CODE_LR:g} for modern image codes)")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help=f"AdamW weight decay (modern recipe only); default: {_recipe_values('weight_decay')}")
    p.add_argument("--seed", type=seed_value, default=0, help="seed for the init and shuffling (default 0)")
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    add_data_options(p, "where the outputs go")
    p.add_argument("--resume", action="store_true",
                   help="continue from each model's checkpoint (a finished model is only re-evaluated)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 autocast where the hardware is fast at it (CUDA, CPUs with "
                        "AVX-512 bf16 or AMX), else fp32; fp32: float32 throughout, as in 2016")
    p.add_argument("--prepare-data", action="store_true",
                   help="fetch and verify the dataset into data/, then exit")
    p.add_argument("--checkpoint-interval", type=non_negative_float, default=CHECKPOINT_INTERVAL,
                   metavar="SECONDS", help="write the checkpoint after the first epoch that ends this long "
                   f"after the last one, and after the last epoch (default {CHECKPOINT_INTERVAL:g}; 0: "
                   "after every epoch); SIGINT and SIGTERM always save one")
    p.add_argument("--compile", nargs="?", const="default", default="none", choices=COMPILE_MODES,
                   metavar="MODE", help="torch.compile the model; MODE: default, reduce-overhead (CUDA "
                   "graphs) or max-autotune (default: none)")
    return fill_output_dir(p.parse_args(argv))


def configs_from_args(args: argparse.Namespace, device: str, precision: str) -> list[TrainConfig]:
    """One complete configuration per model: each option left out takes its recipe's default."""
    return [TrainConfig.for_model(spec.name, args.recipe, dataset=args.dataset, epochs=args.epochs,
                                  batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                                  seed=args.seed, limit=args.limit, precision=precision, device=device,
                                  compile=args.compile, checkpoint_interval=args.checkpoint_interval,
                                  output_dir=str(args.output_dir))
            for spec in parse_models(args.model)]


def describe(run: Run) -> str:
    c = run.config
    on = "" if c.dataset == "mnist" else f" on {DATASETS[c.dataset].title}"
    return (f"{c.model} model{on}: {count_parameters(run.model):,} parameters, recipe {c.recipe}, "
            f"{c.epochs} epoch{'' if c.epochs == 1 else 's'}, batch {c.batch_size}, {c.precision} on {c.device}")


def prepare_data(args: argparse.Namespace, progress: Progress) -> None:
    splits = load_dataset(args.dataset, args.data, log=progress.message)
    print(f"{DATASETS[args.dataset].title} ready ({splits.source}): {len(splits.train_x)} train, "
          f"{len(splits.valid_x)} validation, {len(splits.test_x)} test images")


def train_models(args: argparse.Namespace, argv: list[str] | None) -> int:
    progress = progress_for()
    if args.prepare_data:
        prepare_data(args, progress)
        return 0
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    configs = configs_from_args(args, str(device), precision)
    splits = load_dataset(args.dataset, args.data, log=progress.message)
    args.output_dir.mkdir(parents=True, exist_ok=True)  # after the data: bad data leaves no folder
    data = data_tensors(splits, args.limit, device)
    source = str(Path(splits.source).resolve())
    try:
        with StopFlag() as stop, cuda_tf32(device, enabled=precision != "fp32"):  # fp32: as in 2016
            for config in configs:
                run = Run(config.but(data_source=source), data, stop, progress)
                print(describe(run), flush=True)
                test_mse = run.train(resume=args.resume)
                print(f"{config.model}: MSE on test data: {test_mse:.6g} (outputs in {args.output_dir}/)")
    except Interrupted as e:
        print(f"\nStopped by {e}: checkpoint saved. Continue with the same command plus --resume:\n"
              f"  python auto_encoder.py {shlex.join(_resume_argv(argv))}", file=sys.stderr)
        return 128 + e.signum
    return 0


def _resume_argv(argv: list[str] | None) -> list[str]:
    argv = list(sys.argv[1:] if argv is None else argv)
    return argv if "--resume" in argv else argv + ["--resume"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: train_models(args, argv),
                    write_hint="the previous files are intact. Free space or fix permissions, then rerun "
                               "with --resume.",
                    interrupted="Interrupted before training started; nothing was written.")


if __name__ == "__main__":
    sys.exit(main())
