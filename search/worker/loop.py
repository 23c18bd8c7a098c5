"""A worker: claim a unit, train it, record the outcome; again until the study is done.

``run_worker`` is what every worker process runs; any number of them may run at once, on
one machine or several, against the same storage (``search.study.claims`` says why no two
run the same unit). While a trial trains, a thread writes its heartbeat; Ctrl-C or SIGTERM
marks the trial FAIL as interrupted and keeps its checkpoint for the rerun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from search.errors import SearchError
from search.study import claims, points
from search.study.optuna_internals import create_running_trial, trial_id
from search.study.storage import Storage

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
# Errors of the machine, not of the trial: they stop the run instead of using up attempts.
_STORAGE_FAULTS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


class Objective(Protocol):
    """What a worker runs for each unit (``search.worker.objective.Objective`` in a study)."""

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float: ...

    def forget(self, unit: points.Unit) -> None:
        """The unit ended (complete, or failed to be retried from scratch): drop its state."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a trial; its checkpoint is kept for the rerun."""

    def __init__(self, trial_number: int | None, params: dict | None, epochs_done: int) -> None:
        super().__init__("interrupted")
        self.trial_number, self.params, self.epochs_done = trial_number, params, epochs_done


@dataclasses.dataclass
class WorkerResult:
    trials_run: int = 0
    completed: int = 0
    failed: int = 0


@contextlib.contextmanager
def _heartbeat(storage: Storage, running: int) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.optuna.record_heartbeat(running)
            except Exception as error:  # the next beat tries again; 30 s of misses is death
                logger.warning("trial id %d: heartbeat not written (%s)", running, error)
            if stop.wait(claims.HEARTBEAT_INTERVAL):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{running}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while a trial's outcome is written, so that neither can
    split the write; one that came meanwhile is raised once the write is done, not lost."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        raise KeyboardInterrupt


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C the run is already stopping: more of them change nothing.

    Without this a second Ctrl-C while TensorFlow shuts down kills the process by signal
    instead of letting it exit 130 with its message.
    """
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _start_trial(study: optuna.Study, storage: Storage, unit: points.Unit, attempt: int,
                 owner: str) -> optuna.Trial:
    distributions = {name: optuna.distributions.CategoricalDistribution(values)
                     for name, values in study.user_attrs[points.BUDGET]["search_space"].items()}
    template = optuna.trial.FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None,
        datetime_start=datetime.datetime.now(), datetime_complete=None,
        params=dict(unit.params), distributions=distributions,
        user_attrs={points.REPLICATE: unit.replicate},
        system_attrs={points.UNIT: [unit.point, unit.replicate],
                      points.CLAIM: [unit.id, attempt], points.OWNER: owner},
        intermediate_values={}, trial_id=-1)
    return create_running_trial(storage, study, template)


def _unfinished(study: optuna.Study) -> bool:
    return any(state in points.UNFINISHED for state in points.states(study))


def run_worker(
    storage: Storage,
    study: optuna.Study,
    objective: Objective,
    *,
    on_trial_start: Callable[[optuna.Trial, points.Unit], None] | None = None,
    on_trial_end: Callable[[FrozenTrial], None] | None = None,
    max_trials: int | None = None,
) -> WorkerResult:
    """Claim and run units until every unit is complete or given up.

    While other workers still run the last units, this one waits and watches them, so that
    a unit whose worker dies is picked up. Raises Interrupted on Ctrl-C.
    """
    owner = claims.current_owner()
    result = WorkerResult()
    while max_trials is None or result.trials_run < max_trials:
        claimed = claims.claim_next(study, storage, owner)
        if claimed is None:
            if not _unfinished(study):
                return result
            time.sleep(POLL_SECONDS)
            continue
        unit, attempt = claimed
        trial = _start_trial(study, storage, unit, attempt, owner)
        if not claims.still_latest(study, storage, unit.id, attempt):
            claims.mark_failed(storage, trial_id(trial), "superseded: the unit was claimed again")
            continue
        result.trials_run += 1
        if on_trial_start is not None:
            on_trial_start(trial, unit)
        if _run_trial(storage, study, objective, trial, unit, result) and on_trial_end:
            on_trial_end(storage.optuna.get_trial(trial_id(trial)))
    return result


def _run_trial(storage: Storage, study: optuna.Study, objective: Objective,
               trial: optuna.Trial, unit: points.Unit, result: WorkerResult) -> bool:
    """Train one claimed trial and record its outcome; False if another worker ended it."""
    try:
        with _heartbeat(storage, trial_id(trial)):
            value = objective(trial, unit)
    except KeyboardInterrupt:
        ignore_further_interrupts()
        epochs = storage.optuna.get_trial(trial_id(trial)).user_attrs.get(points.EPOCHS_DONE, 0)
        claims.mark_failed(storage, trial_id(trial),
                           f"interrupted after epoch {epochs}: resumed on the next run")
        raise Interrupted(trial.number, unit.params, epochs) from None
    except optuna.exceptions.UpdateFinishedTrialError:
        logger.warning("trial %d was failed by another worker; moving on", trial.number)
        return False
    except _STORAGE_FAULTS:
        raise  # the storage itself failed: stop; the next run finds the trial dead
    except OSError as error:
        if error.errno not in _ENVIRONMENT_ERRNOS:
            raise
        # A full or read-only disk is not the trial's fault: stop, keep the attempt.
        claims.mark_failed(storage, trial_id(trial), f"interrupted: {error.strerror}")
        raise SearchError(f"{error.filename or 'a checkpoint or artifact'}: "
                          f"{error.strerror}; fix that, then rerun to resume") from None
    except Exception as error:  # a failed trial must not stop the study
        logger.warning("trial %d %s failed: %s: %s", trial.number, unit.params,
                       type(error).__name__, error)
        with _no_interrupts():
            claims.mark_failed(storage, trial_id(trial),
                               f"error: {type(error).__name__}: {error}"[:500])
            objective.forget(unit)  # the retry starts from scratch
        result.failed += 1
    else:
        with _no_interrupts():
            study.tell(trial, value)
            objective.forget(unit)
        result.completed += 1
    return True
