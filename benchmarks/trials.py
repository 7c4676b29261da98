"""Recipe trials on the validation images alone (docs/recipes.md, "Codes of 30 units and more").

Trains one model exactly as `python auto_encoder.py` would (the same configuration, step,
shuffling and seed), but never reads the test images, and appends one JSON line to --out with
the final training and validation MSE of three sets of weights from the same run:

- plain: the weights after the last step, as a run of auto_encoder.py ends;
- ema: an exponential moving average of the weights over the steps (--ema-decay);
- swa: the equal average of the weights at the end of the last --swa-epochs epochs.

Each is evaluated in fp32 after batch norm's statistics are measured anew over the training
images, as auto_encoder.py evaluates a finished run. The last epoch's training and validation
losses (in the training precision) are recorded too, as the older trials in docs/recipes.md were.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/trials.py --out trials.jsonl --model 30D [--no-decay-1d]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import cast

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import auto_encoder
from auto_encoder import configs_from_args
from autoencoder.cli import run_main
from autoencoder.device import pick_device, resolve_precision
from autoencoder.errors import UserError
from autoencoder.model import AutoEncoder
from autoencoder.progress import LineProgress
from autoencoder.recipes import TrainConfig
from autoencoder.sources import load_dataset
from autoencoder.training import (
    TrainingState,
    data_tensors,
    evaluate,
    new_training_state,
    recompute_batch_norm,
    start_epoch,
    train_step,
)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """The trial's own options, and auto_encoder.py's options for the model it trains."""
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every other option is auto_encoder.py's (--model, --dataset, --epochs, --weight-decay, ...).",
    )
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--swa-epochs", type=int, default=10)
    p.add_argument("--out", required=True, help="JSON-lines file the trial's result is appended to")
    ours, rest = p.parse_known_args(argv)
    return ours, auto_encoder.parse_args(["--model", "30D", *rest])


def trial_config(args: argparse.Namespace) -> TrainConfig:
    """The one model's configuration, as auto_encoder.py fills it from the same options."""
    device = pick_device(args.device)
    configs = configs_from_args(args, str(device), resolve_precision(args.precision, device))
    if len(configs) != 1:
        raise UserError("a trial trains one model: give --model once")
    if args.train_on_validation:
        raise UserError("a trial is measured on the validation images: leave --train-on-validation out")
    return configs[0]


def train_epoch_averaging(state: TrainingState, train: torch.Tensor, ema: AveragedModel) -> float:
    """One epoch of auto_encoder.py's steps, the moving average updated after each; its mean loss."""
    part, batches = start_epoch(state, len(train))
    for batch in batches:
        x = train[batch]
        part.loss_sum += train_step(state, x) * len(x)
        ema.update_parameters(state.model)
    state.partial = None
    return part.loss_sum.item() / len(train)


def final_mse(model: AutoEncoder, data: dict[str, torch.Tensor]) -> dict[str, float]:
    recompute_batch_norm(model, data["train"], "fp32")
    return {name: evaluate(model, data[name], "fp32") for name in ("train", "valid")}


def run_trial(trial: argparse.Namespace, args: argparse.Namespace) -> dict:
    config = trial_config(args)
    splits = load_dataset(config.dataset, args.data)
    data = {k: v for k, v in data_tensors(splits, config.limit, config.device).items() if k != "test"}
    torch.manual_seed(config.seed)
    state = new_training_state(config, len(data["train"]))
    ema = AveragedModel(state.model, multi_avg_fn=get_ema_multi_avg_fn(trial.ema_decay))
    swa = AveragedModel(state.model)
    progress = LineProgress()
    progress.model_started(config.model, config.epochs, 0)
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        train_loss = train_epoch_averaging(state, data["train"], ema)
        valid_loss = evaluate(state.model, data["valid"], config.precision)
        if epoch > config.epochs - trial.swa_epochs:
            swa.update_parameters(state.model)
        progress.epoch_ended(epoch, train_loss, valid_loss, time.perf_counter() - epoch_start)
    minutes = (time.perf_counter() - start) / 60
    settings = {k: v for k, v in config.as_dict().items() if k not in ("output_dir", "checkpoint_interval")}
    return {
        "settings": settings,
        "ema_decay": trial.ema_decay,
        "swa_epochs": trial.swa_epochs,
        "last_epoch": {"train": train_loss, "valid": valid_loss},
        "plain": final_mse(state.model, data),
        "ema": final_mse(cast(AutoEncoder, ema.module), data),
        "swa": final_mse(cast(AutoEncoder, swa.module), data),
        "minutes": round(minutes, 1),
    }


def main(argv: list[str] | None = None) -> None:
    trial, args = parse_args(argv)
    result = run_trial(trial, args)
    line = json.dumps(result)
    print(line)
    with open(trial.out, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    sys.exit(run_main(main))
