"""The recipes: one table of every hyperparameter, one run's configuration filled from it, and
the optimizer and learning-rate schedule it asks for.

Why each value is what it is, with the trials behind it: docs/recipes.md.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .datasets import DEFAULT_DATASET, dataset_spec
from .errors import UserError
from .model import CodeSpec, parse_code


@dataclass(frozen=True)
class Recipe:
    """Every value of one recipe. `lr` is the (peak) learning rate of vector codes (ND),
    `image_code_lr` that of image codes (KxK). Vector codes of `large_code_units` units or more
    take, on a dataset that `large_code_values` names, the values it gives there instead: they
    overfit where small codes do not, and what holds them back depends on the images; a dataset
    it does not name keeps the small codes' values (docs/recipes.md). The one-cycle schedule
    rises from lr/div_factor to lr over the first `warmup` of the steps, then falls to
    lr/div_factor/final_div_factor, while Adam's beta1 cycles the other way between `momentum`
    (high, low)."""

    optimizer: str  # "SGD" or "AdamW"
    epochs: int
    batch_size: int
    lr: float
    image_code_lr: float
    weight_decay: float
    dropout: float  # after each dense layer of 500 units or more
    schedule: str  # "constant" or "one-cycle"
    decay_1d: bool = True  # whether weight decay also shrinks 1-D parameters (batch norm's, biases)
    warmup: float | None = None
    div_factor: float | None = None
    final_div_factor: float | None = None
    momentum: tuple[float, float] | None = None
    large_code_units: int | None = None
    large_code_values: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset: {key: value}


RECIPES = {
    "original": Recipe(
        optimizer="SGD",
        epochs=500,
        batch_size=500,
        lr=1.0,
        image_code_lr=1.0,
        weight_decay=0.0,
        dropout=0.0,
        schedule="constant",
    ),
    "modern": Recipe(
        optimizer="AdamW",
        epochs=46,
        batch_size=500,
        lr=5e-3,
        image_code_lr=2e-3,
        weight_decay=0.1,
        dropout=0.1,
        schedule="one-cycle",
        warmup=0.15,
        div_factor=25.0,
        final_div_factor=1e4,
        momentum=(0.95, 0.85),
        large_code_units=30,
        large_code_values={
            "mnist": {"epochs": 70, "weight_decay": 0.5, "dropout": 0.0},
            "fashion-mnist": {"weight_decay": 0.3, "dropout": 0.0},
        },
    ),
}
CHECKPOINT_INTERVAL = 60.0  # seconds of training a kill -9 may cost at most
ADAMW_IMPLEMENTATIONS = ("fused", "foreach", "default")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # reduce-overhead: CUDA graphs
FLOAT32_MAX = float(torch.finfo(torch.float32).max)  # the weights' type: a larger rate cannot scale a step
PRECISIONS = ("fp32", "bf16")  # as resolved for the device: --precision auto is resolved before
# The default of a TrainConfig field that takes its recipe's value: None until __post_init__ fills it, so a
# constructed config always holds the field's type. Typed Any so the field can be typed as what it holds.
FROM_RECIPE: Any = None
# Settings a resumed run must share with its checkpoint (the learning rate may change).
RESUME_KEYS = (
    "model",
    "dataset",
    "recipe",
    "epochs",
    "batch_size",
    "weight_decay",
    "decay_1d",
    "dropout",
    "seed",
    "limit",
    "train_on_validation",
)
# What a run recorded before a setting existed did, for the settings added since.
EARLIER_DEFAULTS = {"decay_1d": True, "train_on_validation": False}
# Settings a resumed run may change; the run's history records each change and where it took effect.
RECORDED_CHANGES = ("lr", "precision", "device", "compile", "adamw")


def recipe_values(recipe: str, spec: CodeSpec, dataset: str) -> dict:
    """The table's values for one code on one dataset: the recipe's, with the learning rate of
    its kind of code and, for large vector codes, the values measured for them on that dataset."""
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}: use {' or '.join(RECIPES)}")
    values = asdict(RECIPES[recipe])
    image_code_lr = values.pop("image_code_lr")
    large_units = values.pop("large_code_units")
    large_values = values.pop("large_code_values").get(dataset, {})
    if spec.is_image:
        values["lr"] = image_code_lr
    elif large_units is not None and spec.units >= large_units:
        values.update(large_values)
    return values


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one model's training run, filled once from the command line.

    A hyperparameter left at FROM_RECIPE (None) takes its recipe's value for this code and dataset
    (`recipe_values`) as the config is made, so `TrainConfig(model="4x4")` trains as
    `python auto_encoder.py --model 4x4` does. The checkpoint and the info pickle store it (as a
    dict), so a result says how it was made.
    """

    model: str = "3D"
    dataset: str = DEFAULT_DATASET
    recipe: str = "modern"
    epochs: int = FROM_RECIPE
    batch_size: int = FROM_RECIPE
    lr: float = FROM_RECIPE  # the (peak) learning rate
    weight_decay: float = FROM_RECIPE
    dropout: float = FROM_RECIPE
    seed: int = 0
    limit: int | None = None  # train on the first N training images only
    train_on_validation: bool = False  # train on the training and validation images together
    decay_1d: bool = FROM_RECIPE  # whether weight decay shrinks 1-D parameters too
    precision: str = "fp32"  # bf16 (autocast) or fp32, as resolved for the device
    device: str = "cpu"
    compile: str = "none"  # torch.compile mode, or none
    adamw: str = "fused"  # the modern recipe's AdamW implementation
    checkpoint_interval: float = CHECKPOINT_INTERVAL
    output_dir: str = "output"
    data_sha256: str = ""  # what the data is (Splits.sha256), whatever files it came from
    # The rest of the recipe's values: from the table, never from the command line. The one-cycle
    # schedule's four are None where the recipe has no such schedule.
    optimizer: str = FROM_RECIPE
    schedule: str = FROM_RECIPE
    warmup: float | None = None
    div_factor: float | None = None
    final_div_factor: float | None = None
    momentum: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        spec = parse_code(self.model)
        if self.recipe == "original" and self.weight_decay:
            raise UserError(
                "--weight-decay applies to the modern recipe's AdamW; the original recipe "
                "is plain SGD without weight decay"
            )
        if self.recipe == "original" and self.dropout:
            raise UserError("--dropout applies to the modern recipe; the original recipe has no dropout")
        object.__setattr__(self, "model", spec.name)
        for name, value in recipe_values(self.recipe, spec, self.dataset).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.momentum is not None:
            object.__setattr__(self, "momentum", tuple(self.momentum))  # stored as a list in JSON
        self.check()

    def check(self) -> None:
        """Refuse values no run can train with, in the words of the command line."""
        dataset_spec(self.dataset)
        if not (_is_int(self.epochs) and self.epochs >= 1 and _is_int(self.batch_size) and self.batch_size >= 1):
            raise UserError("--epochs and --batch-size must be positive integers")
        if self.architecture == "modern" and self.batch_size == 1:
            raise UserError(
                "--batch-size 1 cannot train the modern recipe's batch norm (it needs two images "
                "a batch): use 2 or more, or --recipe original"
            )
        if not (_is_int(self.seed) and 0 <= self.seed < 2**64):
            raise UserError(f"--seed must be an integer from 0 to 2**64-1, not {self.seed}")
        if self.limit is not None and not (_is_int(self.limit) and self.limit >= 1):
            raise UserError(f"--limit must be a positive integer, not {self.limit}")
        if not (_is_number(self.lr) and 0 < self.lr <= FLOAT32_MAX):
            raise UserError(
                f"--lr must be a positive number up to {FLOAT32_MAX:.4g} (float32's largest), not {self.lr}"
            )
        if not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"--weight-decay must be a number >= 0, not {self.weight_decay}")
        for name in ("train_on_validation", "decay_1d"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if not (_is_number(self.dropout) and 0 <= self.dropout < 1):
            raise UserError(f"--dropout must be at least 0 and below 1, not {self.dropout}")
        if not (_is_number(self.checkpoint_interval) and self.checkpoint_interval >= 0):
            raise UserError(f"--checkpoint-interval must be a number >= 0, not {self.checkpoint_interval}")
        _check_choice("precision (resolve auto for the device first)", self.precision, PRECISIONS)
        _check_choice("--compile mode", self.compile, COMPILE_MODES)
        _check_choice("AdamW implementation", self.adamw, ADAMW_IMPLEMENTATIONS)
        _check_choice("optimizer", self.optimizer, ("SGD", "AdamW"))
        _check_choice("schedule", self.schedule, ("constant", "one-cycle"))
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise UserError(f"unknown device {self.device!r}: use cpu, cuda, cuda:N or mps") from None

    @property
    def spec(self) -> CodeSpec:
        return parse_code(self.model)

    @property
    def architecture(self) -> str:
        """The model's architecture (model.ARCHITECTURES), named for the recipe that trains it."""
        return self.recipe

    @property
    def optimizer_name(self) -> str:
        """'SGD', 'AdamW, one-cycle': how logs name the optimizer and its schedule."""
        return self.optimizer + (", one-cycle" if self.schedule == "one-cycle" else "")

    def as_dict(self) -> dict:
        return asdict(self)


def image_sets(with_validation: bool) -> str:
    """The sets a run trains on, in words."""
    return "training and validation images" if with_validation else "training images"


def trained_on(settings: dict) -> str:
    """'the first 5,000 training images (--limit)', 'the training and validation images
    (--train-on-validation)': what a run with these settings (TrainConfig.as_dict()) trained on,
    where that is not simply all the training images ('')."""
    limit, both = settings.get("limit"), bool(settings.get("train_on_validation"))
    if not (limit or both):
        return ""
    images = image_sets(both)
    flags = ", ".join(flag for flag, used in (("--limit", limit), ("--train-on-validation", both)) if used)
    return f"the {f'first {limit:,} ' if limit else ''}{images} ({flags})"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}: use {', '.join(choices)}")


def make_optimizer(
    params: Iterable[torch.Tensor], config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The recipe's optimizer and learning-rate schedule (None for a constant rate)."""
    if config.optimizer == "SGD":
        return torch.optim.SGD(params, lr=config.lr), None
    device_type = torch.device(config.device).type
    fused = device_type in ("cuda", "cpu") if config.adamw == "fused" else None  # None: PyTorch's default
    foreach = True if config.adamw == "foreach" else None
    groups: Iterable[torch.Tensor] | list[dict[str, Any]] = params
    if not config.decay_1d:  # nanoGPT's rule: decay only the weights of two or more dimensions
        tensors = list(params)
        split: list[dict[str, Any]] = [
            {"params": [t for t in tensors if t.dim() >= 2]},
            {"params": [t for t in tensors if t.dim() < 2], "weight_decay": 0.0},
        ]
        groups = split
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=foreach, fused=fused)
    return optimizer, one_cycle(optimizer, config, config.epochs * steps_per_epoch)


def one_cycle(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    warmup, div_factor, final_div_factor = config.warmup, config.div_factor, config.final_div_factor
    if config.momentum is None or warmup is None or div_factor is None or final_div_factor is None:
        raise ValueError(f"the {config.recipe} recipe has no one-cycle schedule")
    high, low = config.momentum
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=total_steps,
        pct_start=warmup,
        anneal_strategy="cos",
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum=True,
        base_momentum=low,
        max_momentum=high,
    )


def change_learning_rate(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_done: int, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The schedule of `config.lr`, advanced to `steps_done`, for a run resumed at a new rate.

    The one-cycle schedule is built anew for the new peak and stepped to where the run is (its
    rate at a step depends on nothing else); a constant rate is simply set.
    """
    if config.schedule == "constant":
        for group in optimizer.param_groups:
            group["lr"] = config.lr
        return None
    scheduler = one_cycle(optimizer, config, total_steps)
    with warnings.catch_warnings():  # stepping before the optimizer has stepped is the point here
        warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"), UserWarning)
        for _ in range(steps_done):
            scheduler.step()
    return scheduler
