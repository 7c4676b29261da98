"""The two recipes: their hyperparameters, one run's configuration, and its optimizer and schedule.

Why each default is what it is, with the trials behind it: docs/recipes.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch

from .errors import UserError
from .files import DEFAULT_DATASET
from .model import CodeSpec, parse_code

RECIPE_DEFAULTS = {
    "original": dict(epochs=500, lr=1.0, batch_size=500, weight_decay=0.0),
    "modern": dict(epochs=46, lr=5e-3, batch_size=500, weight_decay=0.1),
}
MODERN_IMAGE_CODE_LR = 2e-3     # sigmoid image codes (KxK) learn better at a lower peak
ONE_CYCLE_WARMUP = 0.15         # fraction of the modern run spent raising the learning rate
CHECKPOINT_INTERVAL = 60.0      # seconds of training a kill -9 may cost at most
ADAMW_IMPLEMENTATIONS = ("fused", "foreach", "default")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # reduce-overhead: CUDA graphs
# Settings a resumed run must share with its checkpoint (the learning rate may change).
RESUME_KEYS = ("model", "dataset", "recipe", "epochs", "batch_size", "weight_decay", "seed", "limit")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one model's training run, filled once from the command line.

    The checkpoint and the info pickle store it (as a dict), so a result says how it was made.
    """

    model: str = "3D"
    dataset: str = DEFAULT_DATASET
    recipe: str = "modern"
    epochs: int = RECIPE_DEFAULTS["modern"]["epochs"]
    batch_size: int = RECIPE_DEFAULTS["modern"]["batch_size"]
    lr: float = RECIPE_DEFAULTS["modern"]["lr"]
    weight_decay: float = RECIPE_DEFAULTS["modern"]["weight_decay"]
    seed: int = 0
    limit: int | None = None               # train on the first N training images only
    precision: str = "fp32"                # bf16 (autocast) or fp32, as resolved for the device
    device: str = "cpu"
    compile: str = "none"                  # torch.compile mode, or none
    adamw: str = "fused"                   # the modern recipe's AdamW implementation
    checkpoint_interval: float = CHECKPOINT_INTERVAL
    output_dir: str = "output"
    data_source: str = ""                  # the dataset's files as read (the plots read them again)

    @classmethod
    def for_model(cls, model: str, recipe: str = "modern", **given: object) -> "TrainConfig":
        """The recipe's defaults for this code, with each given value that is not None in their place."""
        if recipe not in RECIPE_DEFAULTS:
            raise UserError(f"unknown recipe {recipe!r}: use {' or '.join(RECIPE_DEFAULTS)}")
        spec = parse_code(model)
        given = {key: value for key, value in given.items() if value is not None}
        if recipe == "original" and given.get("weight_decay", 0) != 0:
            raise UserError("--weight-decay applies to the modern recipe's AdamW; the original recipe "
                            "is plain SGD without weight decay")
        defaults = dict(RECIPE_DEFAULTS[recipe])
        if recipe == "modern" and spec.is_image:
            defaults["lr"] = MODERN_IMAGE_CODE_LR
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        return cls(model=spec.name, recipe=recipe, **{**defaults, **given})

    def but(self, **changes: object) -> "TrainConfig":
        """A copy with some settings changed."""
        return replace(self, **changes)

    @property
    def spec(self) -> CodeSpec:
        return parse_code(self.model)

    @property
    def optimizer_name(self) -> str:
        return "SGD" if self.recipe == "original" else "AdamW, one-cycle"

    def as_dict(self) -> dict:
        return asdict(self)


def make_optimizer(params: object, config: TrainConfig, steps_per_epoch: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The recipe's optimizer and learning-rate schedule (None for the original's constant rate)."""
    if config.recipe == "original":
        return torch.optim.SGD(params, lr=config.lr), None
    if config.adamw not in ADAMW_IMPLEMENTATIONS:
        raise UserError(f"unknown AdamW implementation {config.adamw!r}: use {', '.join(ADAMW_IMPLEMENTATIONS)}")
    device_type = torch.device(config.device).type
    implementation = {"fused": {"fused": device_type in ("cuda", "cpu")}, "foreach": {"foreach": True},
                      "default": {}}[config.adamw]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **implementation)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
        pct_start=ONE_CYCLE_WARMUP)
    return optimizer, scheduler


def scale_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every learning rate the optimizer and a one-cycle schedule keep."""
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= factor
