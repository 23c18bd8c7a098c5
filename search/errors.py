"""The two ways a run ends early that reach a person: a one-line error, an interruption."""

from __future__ import annotations

from typing import Any


class SearchError(Exception):
    """Bad input or environment: the message says what is wrong and what to do.

    The CLI prints it as one line and exits non-zero; it is never a bug, so no
    traceback is shown.
    """


class StoreError(SearchError):
    """The artifact store (checkpoints, figures, models) failed: the machine's fault, not the
    trial's, so a worker stops the run instead of using up the unit's attempts."""


class DiskFull(StoreError):
    """A disk filled up while a checkpoint, a trial's model or figure was written: like
    StoreError it stops the run without costing the trial an attempt; the message names the
    location and the space left there (``search.disk_space``)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a run; the interrupted trial's checkpoint is kept.

    ``trial_number`` is None when no single trial was stopped (several workers were).
    """

    def __init__(self, trial_number: int | None = None, params: dict[str, Any] | None = None,
                 epochs_done: int = 0) -> None:
        super().__init__("interrupted")
        self.trial_number, self.params, self.epochs_done = trial_number, params, epochs_done
