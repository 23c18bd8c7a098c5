"""A unit while this worker trains it: the heartbeat that says the worker lives, and the
check that its claim still holds.

``hold`` runs around a unit's training: a thread writes the trial's heartbeat every
HEARTBEAT_INTERVAL seconds (during a database outage each beat is skipped, never waited
for). At each safe point (an epoch's end, before its checkpoint is written, and before the
trial's outcome is recorded) the worker calls ``raise_if_taken_over``: should the claim
table show a later attempt at the unit (another worker took it over while this one looked
dead, say during an outage of its own), it raises ``TakenOver``, and this worker writes
nothing more for the unit: no checkpoint, no result, no discarded checkpoints::

    with holding.hold(storage, study, claimed):
        value = train(claimed.trial, claimed.unit)  # calls raise_if_taken_over per epoch
        holding.raise_if_taken_over()
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import optuna

from search.study import claims
from search.study.claim_table import HEARTBEAT_INTERVAL
from search.study.optuna_internals import trial_id
from search.study.storage import Storage

logger = logging.getLogger(__name__)

# The unit this process trains now (one at a time, in its main thread), for the safe points.
_held: tuple[Storage, optuna.Study, claims.Claimed] | None = None


class TakenOver(Exception):
    """Another worker claimed this worker's unit again: it must stop training it."""


@contextlib.contextmanager
def hold(storage: Storage, study: optuna.Study, claimed: claims.Claimed) -> Iterator[None]:
    """While the block trains ``claimed``: its heartbeat, and its claim for the checks."""
    global _held
    stop = threading.Event()
    running = trial_id(claimed.trial)

    def beat() -> None:
        while True:
            try:
                storage.rdb.record_heartbeat(running)
            except Exception as error:  # the next beat tries again; 30 s of misses is death
                logger.warning("trial id %d: heartbeat not written (%s)", running, error)
            if stop.wait(HEARTBEAT_INTERVAL):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{running}", daemon=True)
    thread.start()
    _held = (storage, study, claimed)
    try:
        yield
    finally:
        _held = None
        stop.set()
        thread.join()


def raise_if_taken_over() -> None:
    """Raise TakenOver if the unit this process trains was claimed again by another worker
    (the claim table decides); nothing when no unit is held. Waits out a database outage."""
    if _held is None:
        return
    storage, study, claimed = _held
    if not claims.holds(study, storage, claimed.unit.id, claimed.attempt):
        raise TakenOver(f"trial {claimed.trial.number}: its unit was claimed again by "
                        "another worker")
