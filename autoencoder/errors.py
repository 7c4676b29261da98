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
