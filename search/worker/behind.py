"""A trial trains on through a database outage; its epochs are written once it is back.

At each epoch's end the worker first asks the claim table whether the unit is still its
own. While the database does not answer, that question and the epoch's writes (its value,
history and epochs done) wait here, in order, and training goes on: nothing is waited for
until the trial's end, which waits up to ``[storage] outage_seconds`` as every other call
does. Each write sets a step's value or an attribute, so one repeated after a lost reply
changes nothing; none is lost, none doubled::

    epochs = EpochWrites()
    if epochs.owned():          # the claim still holds, and the database answers
        save_checkpoint(); epochs.write([report, history])   # earlier epochs first
    else:
        epochs.keep([report, history])                        # train on; say it once

The checkpoint waits for the database too: only the claim table can say the unit is still
this worker's, and a unit taken over meanwhile must get nothing more from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from search.study import holding, retry

Write = Callable[[], object]


class EpochWrites:
    """The writes of the epochs that ended while the database was away, oldest first."""

    def __init__(self) -> None:
        self._waiting: list[Write] = []

    @property
    def behind(self) -> int:
        """How many writes wait for the database."""
        return len(self._waiting)

    def owned(self, wait: bool = False) -> bool:
        """Whether the unit is still this worker's (``holding.TakenOver`` if not). Without
        ``wait``, a database that does not answer gives False at once (the outage is said
        once); past ``outage_seconds`` it ends the run, as any call does."""
        try:
            if wait:
                holding.raise_if_taken_over()
            else:
                with retry.deferring():
                    holding.raise_if_taken_over()
        except retry.StillDown:
            return False
        return True

    def keep(self, writes: Iterable[Write]) -> None:
        self._waiting.extend(writes)

    def write(self, writes: Iterable[Write] = ()) -> None:
        """The waiting writes, then ``writes``, in order (each waits out an outage)."""
        self._waiting.extend(writes)
        while self._waiting:
            self._waiting[0]()
            del self._waiting[0]
