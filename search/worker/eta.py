"""How long a study has left, from the epochs its workers have finished.

A worker's first epoch includes tracing and compiling (seconds for XLA), so an estimate
made from it can be many times too long: the first one seen said "study 26m27s" for a study
that took 45 s. Each worker's pace is therefore measured from the end of its first epoch,
and no estimate is given until every worker has finished its second. The one-worker view
(``progress.Progress``) and the several-worker view (``pool.StudyMonitor``) both ask here.
"""

from __future__ import annotations

from collections.abc import Hashable


class Eta:
    """Epochs ended per worker, and the study's time left from their pace."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self._first_end: dict[Hashable, float] = {}  # worker -> when its first epoch ended
        self._epochs: dict[Hashable, int] = {}  # worker -> epochs it has ended

    def epoch_ended(self, worker: Hashable, now: float) -> None:
        """One epoch of ``worker`` ended at ``now`` (seconds on any one clock)."""
        self._epochs[worker] = self._epochs.get(worker, 0) + 1
        self._first_end.setdefault(worker, now)

    def seconds_left(self, epochs_left: int, now: float) -> float | None:
        """The time the study's ``epochs_left`` take at the workers' summed pace; None until
        every worker has ended its second epoch."""
        ready = [worker for worker, ended in self._epochs.items() if ended >= 2]
        if len(ready) < self.workers:
            return None
        # Epochs after the first, over the time since the first ended: compiling excluded,
        # the gaps between trials (test set, checkpoints, storage) included.
        pace = sum((self._epochs[worker] - 1) / max(now - self._first_end[worker], 1e-6)
                   for worker in ready)
        return max(0, epochs_left) / pace
