"""Optuna's RDBStorage, each of its calls waited through a database outage.

Optuna retries nothing but a deadlocked trial creation, and SQLAlchemy's ``pool_pre_ping``
only swaps a dead connection for a new one when a call begins: a server restarted in the
middle of a call fails it. So every call our processes make (theirs, and Optuna's inside
``Study`` and ``Trial``) goes through ``search.study.retry``: the whole call, in one
transaction, is tried again. That is sound because each call is one transaction, and
repeating one is harmless, even when the failure hid a commit that succeeded:

* reads, and writes that set a value (attributes, a step's intermediate value, a parameter,
  a heartbeat) leave the same rows however often they run;
* a state change (``study.tell``, a FAIL) finds its own commit on the next try: the trial
  already has that state and those values, which counts as done;
* deleting a study finds it gone, which counts as done;
* creating a trial may leave a second trial: ``search.study.claims`` fails the extra one,
  found by the claim both carry (Optuna's own retry of a creation does the same).

Only PostgreSQL's faults pass: a refused, closed or reset connection, a server shutting down
or starting up, too many connections. A SQLite file's errors are raised at once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from search.study import retry

# A connection exception (class 08), the server shutting down or starting up (57P0x), too
# many connections (53300): the next try may well succeed.
_PASSING_STATES = ("08", "57P01", "57P02", "57P03", "53300")
# A connection refused for one of these reasons is a setting to fix, not a fault to wait out.
_LASTING = ("does not exist", "authentication failed", "pg_hba.conf", "permission denied",
            "password")

CONNECT_TIMEOUT = 10  # seconds
_CONNECTION_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
_RDB = optuna.storages.RDBStorage
_inside = threading.local()  # a call already retried: the calls it makes are not, again


class StorageUnavailable(optuna.exceptions.StorageInternalError):
    """The database stayed unreachable for longer than ``outage_seconds``."""


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """The error and those it was raised from or while handling (as a traceback shows)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)


def passes(error: BaseException) -> bool:
    """Whether a PostgreSQL failure is one that may pass by itself."""
    for link in _chain(error):
        if isinstance(link, sqlalchemy.exc.DisconnectionError):
            return True
        if isinstance(link, sqlalchemy.exc.DBAPIError):
            if link.connection_invalidated:
                return True
            if not isinstance(link, _CONNECTION_ERRORS):
                return False
            state = getattr(link.orig, "sqlstate", None)
            if state is None:  # refused or lost before the server said why
                return not any(word in str(link.orig) for word in _LASTING)
            return state.startswith(_PASSING_STATES)
    return False


def outage_of(shown: str, backend: str, describe: Callable[[BaseException], str]
              ) -> retry.Outage:
    """This process's outage of the database ``shown`` (its URL, password masked);
    ``describe`` words a database error (Optuna's wrapper is looked through)."""
    def reason(error: BaseException) -> str:
        cause = error.__cause__
        return describe(cause if isinstance(cause, sqlalchemy.exc.SQLAlchemyError) else error)

    transient = passes if backend == "postgresql" else (lambda error: False)
    return retry.outage(f"storage {shown}", transient, reason, StorageUnavailable)


def engine_options(url: sqlalchemy.engine.URL) -> dict[str, Any]:
    """A server's engine: a dead pooled connection is replaced when a call begins, and a
    server that answers nothing, not even a refusal, fails a connection in CONNECT_TIMEOUT."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return options


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        return self.waited(lambda: method(self, *args, **kwargs))

    return call


class ReconnectingStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose calls wait out an outage of its database (``outage``)."""

    def __init__(self, url: str, outage: retry.Outage, **kwargs: Any) -> None:
        self.outage = outage
        super().__init__(url, **kwargs)

    def waited(self, operation: Callable[[], Any]) -> Any:
        """``operation()`` through the outage; the calls it makes in turn are not retried
        again (the outermost call is, as a whole)."""
        if getattr(_inside, "active", False):
            return operation()
        _inside.active = True
        try:
            return self.outage.call(operation)
        finally:
            _inside.active = False

    def record_heartbeat(self, trial_id: int) -> None:
        """One heartbeat, tried once: during an outage it is skipped (the next one says the
        same), so that the thread writing them never waits."""
        self.outage.attempt(lambda: _RDB.record_heartbeat(self, trial_id))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        tries = 0

        def once() -> bool:
            nonlocal tries
            tries += 1
            try:
                return _RDB.set_trial_state_values(self, trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                if tries == 1:
                    raise
                trial = _RDB.get_trial(self, trial_id)
                if trial.state == state and (values is None or trial.values == list(values)):
                    return True  # the try that failed had committed it
                raise

        return self.waited(once)

    def delete_study(self, study_id: int) -> None:
        tries = 0

        def once() -> None:
            nonlocal tries
            tries += 1
            try:
                _RDB.delete_study(self, study_id)
            except KeyError:
                if tries == 1:
                    raise
                # Gone only on a later try: the one that failed had deleted it.

        self.waited(once)


# Every other call that reaches the database, Optuna's private ones that its cache (the
# ``_CachedStorage`` around every study) calls included.
for _name in ("create_new_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
              "get_study_user_attrs", "get_study_system_attrs", "get_all_studies",
              "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
              "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
              "get_trial_param", "set_trial_intermediate_value", "set_trial_user_attr",
              "set_trial_system_attr", "get_trial", "get_all_trials", "_get_trials",
              "get_n_trials", "get_best_trial", "_get_best_trial_id", "get_trial_params",
              "get_trial_user_attrs", "get_trial_system_attrs", "_get_stale_trial_ids"):
    setattr(ReconnectingStorage, _name, _retried(getattr(_RDB, _name)))
