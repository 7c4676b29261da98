"""The 2016 run: its losses per epoch and test MSE, from the original's published logs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

ORIGINAL_LOGS = Path(__file__).with_name("original_2016.json")


@cache
def _logs() -> dict:
    logs: dict = json.loads(ORIGINAL_LOGS.read_text())
    return logs


def original_run(model: str) -> dict | None:
    """The 2016 run of `model` (3D or 4x4) as a training-info dict, its losses turned into true
    means (the 2016 script divided by the number of batches plus one); None for other models."""
    logs = _logs()
    run = logs["models"].get(model)
    if run is None:
        return None
    factor = logs["true_mean_factor"]
    return {
        "training loss": [v * factor["training_loss"] for v in run["training_loss"]],
        "validation loss": [v * factor["validation_loss"] for v in run["validation_loss"]],
        "test mse": run["test_mse"],
        "config": {"recipe": "original", "dataset": "mnist"},
        "source": "2016 original",
    }


def original_test_mse(model: str) -> float | None:
    run = _logs()["models"].get(model)
    return None if run is None else run["test_mse"]
