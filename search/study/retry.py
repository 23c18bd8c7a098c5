"""Waiting out a fault that passes: the database or the artifact store gone for a while.

A study runs for hours, and meanwhile its database restarts and its store has a bad
minute. Every call to either goes through the process's ``Outage`` for it (one per
database URL or store location, shared by all the process's threads): a failure that
passes (a refused or lost connection, a timeout, a server error) is tried again, with
backoff, until the call succeeds or the fault has lasted ``[storage] outage_seconds``.
The process says once on stderr what it waits for, and again when it is back::

    outage = retry.outage("storage postgresql://…", transient, describe, StorageUnavailable)
    value = outage.call(lambda: read_something())  # waits, or raises the fatal error

Past the limit the call raises ``fatal``'s one-line error. A process that is stopping
(Ctrl-C) waits for nothing. The limit is the process's: a run sets it from its study file
(``set_outage_seconds``); until then, and at 0, nothing waits (the report, the dashboard and
a run's first contact with its database and store say at once what is wrong).
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from search.signals import raise_if_interrupted

T = TypeVar("T")

# The first pause after a failure, doubled after each until the longest: a process notices
# within LONGEST_PAUSE seconds that the fault has passed. Each is shortened at random, so
# that many workers do not all reconnect to a restarted server in the same instant.
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 2.0

_limit = 0.0  # until a run sets its own
_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()
_at_once = threading.local()
_deferring = threading.local()


def set_outage_seconds(seconds: float) -> None:
    """How long this process waits for a faulty database or store (0: never)."""
    global _limit
    _limit = float(seconds)


def outage_seconds() -> float:
    return 0.0 if getattr(_at_once, "active", False) else _limit


@contextlib.contextmanager
def at_once() -> Iterator[None]:
    """In this thread, inside the block, wait for nothing: a first contact's probe says at
    once what is wrong (a wrong URL or a server that is not there is not an outage)."""
    _at_once.active = True
    try:
        yield
    finally:
        _at_once.active = False


class StillDown(Exception):
    """Inside ``deferring``: the resource is down (noted, and said once); try again later."""


@contextlib.contextmanager
def deferring() -> Iterator[None]:
    """In this thread, inside the block, a fault that passes is not waited for: it is noted
    (and said once) and raised as ``StillDown``, for the caller to carry on and try again
    later. Past ``outage_seconds`` it is fatal, as always."""
    _deferring.active = True
    try:
        yield
    finally:
        _deferring.active = False


class Outage:
    """One resource's faults as this process meets them: when the current one began, when
    the last one ended, and the two lines that say so."""

    def __init__(self, what: str, transient: Callable[[BaseException], bool],
                 describe: Callable[[BaseException], str],
                 fatal: Callable[[str], Exception]) -> None:
        self.what, self.transient, self.describe, self.fatal = what, transient, describe, fatal
        self.began: float | None = None  # time.monotonic() of the current fault's start
        self.ended_at: float | None = None  # time.time() when the last fault ended
        self._lock = threading.Lock()

    def call(self, operation: Callable[[], T]) -> T:
        """``operation()``, tried again while it fails transiently, up to the limit."""
        pause = FIRST_PAUSE
        while True:
            try:
                result = operation()
            except Exception as error:
                if not self.transient(error) or outage_seconds() <= 0:
                    raise
                waited = self._failed(error)
                if waited >= outage_seconds():
                    raise self.fatal(self._gave_up(error, waited)) from None
                if getattr(_deferring, "active", False):
                    raise StillDown(self.what) from None
                raise_if_interrupted()  # a process that is stopping does not wait
                time.sleep(min(pause * random.uniform(0.5, 1.0), outage_seconds() - waited))
                pause = min(2 * pause, LONGEST_PAUSE)
                continue
            self._recovered()
            return result

    def attempt(self, operation: Callable[[], object]) -> bool:
        """``operation()`` once: a transient failure is only noted (and said), never raised.
        For what the next call repeats anyway, such as a heartbeat."""
        try:
            operation()
        except Exception as error:
            if not self.transient(error) or outage_seconds() <= 0:
                raise
            self._failed(error)
            return False
        self._recovered()
        return True

    def _failed(self, error: BaseException) -> float:
        """Note a failure; seconds since the fault began (said once, when it begins)."""
        with self._lock:
            if self.began is None:
                self.began = time.monotonic()
                _say(f"{self.what}: {self.describe(error)}; waiting up to "
                     f"{outage_seconds():g} s for it to come back")
            return time.monotonic() - self.began

    def _recovered(self) -> None:
        if self.began is None:  # the usual case, without the lock
            return
        with self._lock:
            if self.began is None:
                return
            lasted, self.began = time.monotonic() - self.began, None
            self.ended_at = time.time()
        _say(f"{self.what}: back after {lasted:.0f} s; carrying on")

    def _gave_up(self, error: BaseException, waited: float) -> str:
        return (f"{self.describe(error)}; gave up after {waited:.0f} s ([storage] "
                f"outage_seconds = {outage_seconds():g}); what is stored is intact: run the "
                "same command again once it is back")


def outage(what: str, transient: Callable[[BaseException], bool],
           describe: Callable[[BaseException], str],
           fatal: Callable[[str], Exception]) -> Outage:
    """This process's ``Outage`` of ``what`` (made on first use): every object that reaches
    the same database or store shares it, so a fault is said once, not once per object."""
    with _outages_lock:
        if what not in _outages:
            _outages[what] = Outage(what, transient, describe, fatal)
        return _outages[what]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
