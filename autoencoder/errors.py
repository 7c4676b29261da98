"""The errors a user can fix: every script prints them as one `error:` line and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the scripts print it as one line and exit non-zero."""

    exit_code = 2

    def __str__(self) -> str:  # one line, even when it quotes a multi-line error
        return " ".join(super().__str__().split())


class DataError(UserError):
    """A dataset could not be read or fetched."""


class TrainingDiverged(UserError):
    """The loss or the weights became infinite or NaN."""

    exit_code = 3


def diverged(model: str, epoch: int, what: str, kept_in: object | None) -> TrainingDiverged:
    """The error that stops a run whose loss or weights became infinite or NaN at `epoch`;
    `kept_in` is the last good checkpoint, if the run saved or resumed one."""
    kept = f"The last good checkpoint is kept in {kept_in}" if kept_in else "No checkpoint was saved yet"
    return TrainingDiverged(
        f"{model}: {what} at epoch {epoch}; training stopped. {kept}: lower --lr and rerun with --resume."
    )
