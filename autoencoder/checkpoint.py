"""The checkpoint: written by time and on a stop signal, restored by --resume, refused when the
settings that made it differ from the run's."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .cli import training_command
from .errors import UserError, diverged
from .files import torch_load, torch_save_atomic
from .recipes import EARLIER_DEFAULTS, RECORDED_CHANGES, RESUME_KEYS, TrainConfig, change_learning_rate
from .training import History, PartialEpoch, TrainingState


def global_rng_state() -> dict:
    """torch's global generators, which dropout draws from (shuffling has its own generator)."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def checkpoint_of(state: TrainingState) -> dict:
    """Everything --resume needs to go on exactly where the run stopped."""
    return {
        "config": state.config.as_dict(),
        "epoch": state.epochs_done,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler else None,
        "shuffle": state.shuffle.get_state(),
        "global_rng": global_rng_state(),
        "history": vars(state.history),
        "partial": vars(state.partial) if state.partial else None,
        "code_trace": state.code_trace,
    }


def _setting(value: object) -> str:
    return "not set" if value is None else f"{value}"


def check_settings(config: TrainConfig, saved: dict, path: Path) -> None:
    """Refuse to resume a run made with other settings (the learning rate, device and precision may
    change); name the commands that work."""
    now = config.as_dict()
    saved = {**EARLIER_DEFAULTS, **saved}
    mismatched = [
        f"{k} {_setting(saved.get(k))} (now {_setting(now[k])})" for k in RESUME_KEYS if saved.get(k) != now[k]
    ]
    if saved.get("data_sha256", now["data_sha256"]) != now["data_sha256"]:  # recorded since December 2026
        mismatched.append(f"the images (sha256 {saved['data_sha256'][:12]}..., now {now['data_sha256'][:12]}...)")
    if mismatched:
        raise UserError(
            f"{path} was made with other settings: {', '.join(mismatched)}; continue it with "
            f"`{training_command(saved, '--resume')}`, or discard it and train anew with "
            f"`{training_command(now, '--restart')}`"
        )


def record_changes(state: TrainingState, in_force: dict) -> None:
    """Add to the run's history each setting of RECORDED_CHANGES that differs now from `in_force`."""
    now = state.config.as_dict()
    step = state.partial.step if state.partial else 0
    state.history.changes += [
        {"epoch": state.epochs_done + 1, "step": step, "setting": key, "from": in_force.get(key), "to": now[key]}
        for key in RECORDED_CHANGES
        if in_force.get(key) != now[key]
    ]


def describe_saved_run(saved: dict) -> str:
    """'the 3D model at epoch 12 of 46 (recipe modern, lr 0.005, batch 500, seed 0)'."""
    c = saved["config"]
    limit = f", --limit {c['limit']}" if c.get("limit") else ""
    limit += ", --train-on-validation" if c.get("train_on_validation") else ""
    return (
        f"the {c['model']} model at epoch {saved['epoch']} of {c['epochs']} (recipe {c['recipe']}, "
        f"lr {c['lr']:g}, batch {c['batch_size']}, seed {c['seed']}{limit})"
    )


class Checkpoints:
    """One model's checkpoint file, and when it is written: after the first epoch that ends
    `interval` seconds after the last one, after the last epoch, and on a stop signal."""

    def __init__(self, path: Path, interval: float):
        self.path, self.interval = Path(path), interval
        self.kept = False  # whether this run saved or resumed one (a diverged run keeps it)
        self.saved_at = time.monotonic()

    @property
    def kept_in(self) -> Path | None:
        return self.path if self.kept else None

    def due(self, state: TrainingState) -> bool:
        return state.finished or time.monotonic() - self.saved_at >= self.interval

    def save(self, state: TrainingState) -> None:
        """Write the checkpoint, unless the weights diverged: then the last good one stays."""
        if not all(torch.isfinite(p).all() for p in state.model.parameters()):
            raise diverged(
                state.config.model, state.epochs_done + 1, "the weights became infinite or NaN", self.kept_in
            )
        torch_save_atomic(checkpoint_of(state), self.path)
        self.kept, self.saved_at = True, time.monotonic()

    def save_when_due(self, state: TrainingState) -> None:
        if self.due(state):
            self.save(state)

    def read(self, device: torch.device | str) -> dict:
        saved = torch_load(self.path, device, "discard it with --restart")
        if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or "epoch" not in saved:
            raise UserError(f"{self.path} is not a checkpoint of this suite; discard it with --restart")
        return saved

    def restore(self, state: TrainingState, saved: dict) -> None:
        """Put `state` where the checkpoint left it, after checking it was made with its settings;
        a learning rate, device or precision that differs from the checkpoint's is recorded as a
        change from the epoch and step where the run goes on."""
        check_settings(state.config, saved["config"], self.path)
        try:
            _restore(state, saved)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # loads, but is not this model's
            raise UserError(
                f"{self.path} does not hold a checkpoint of this model ({str(e).splitlines()[0]}); "
                "discard it with --restart"
            ) from None
        if not state.finished:
            record_changes(state, saved["config"])
        self.kept, self.saved_at = True, time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _restore(state: TrainingState, saved: dict) -> None:
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.scheduler:
        state.scheduler.load_state_dict(saved["scheduler"])
    if state.config.lr != saved["config"]["lr"]:
        steps_done = state.scheduler.last_epoch if state.scheduler else 0
        state.scheduler = change_learning_rate(
            state.optimizer, state.config, steps_done, state.config.epochs * state.steps_per_epoch
        )
    state.shuffle.set_state(saved["shuffle"].cpu())
    set_global_rng_state(saved["global_rng"])
    state.history = History(**{"settings": saved["config"], **saved["history"]})
    state.partial = PartialEpoch(**saved["partial"]) if saved["partial"] else None
    state.code_trace = list(saved["code_trace"])
