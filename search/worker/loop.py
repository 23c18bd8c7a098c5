"""A worker: claim a unit, train it, record the outcome; again until the study is done.

``work`` is what every worker process runs; any number of them may run at once, on one
machine or several, against the same storage (``search.study.claims`` says why no two run
the same unit). While a trial trains, a thread writes its heartbeat; Ctrl-C or SIGTERM
marks the trial FAIL as interrupted and keeps its checkpoint for the rerun. A worker whose
unit was claimed again by another stops it and moves on (``search.study.holding``).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import Protocol

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial

from search import disk_space
from search.errors import DiskFull, Interrupted, SearchError, StoreError
from search.signals import (
    held_interrupts,
    ignore_further_interrupts,
    interrupt_noted,
    raise_if_interrupted,
)
from search.study import claims, holding, points, units
from search.study.claim_table import current_owner
from search.study.optuna_internals import trial_id
from search.study.storage import Storage

logger = logging.getLogger(__name__)

# How long a worker with nothing to claim waits before it looks again: the last units may
# still be running elsewhere, and one whose worker dies must be picked up.
WAIT_SECONDS = 2.0
# Errors of the machine, not of the trial: they stop the run instead of using up attempts.
_STORAGE_FAULTS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


class UnitTrainer(Protocol):
    """What a worker calls for each unit (``search.worker.objective.Objective`` in a study)."""

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float: ...

    def forget(self, unit: points.Unit) -> None:
        """The unit ended (complete, or failed to be retried from scratch): drop its state."""


def _unfinished(study: optuna.Study) -> bool:
    return any(state in points.UNFINISHED for state in units.states(study))


def work(storage: Storage, study: optuna.Study, trainer: UnitTrainer, *,
         on_trial_start: Callable[[optuna.Trial, points.Unit], None] | None = None,
         on_trial_end: Callable[[FrozenTrial], None] | None = None) -> None:
    """Claim and train units until every unit is complete or given up.

    While other workers still run the last units, this one waits and watches them, so that
    a unit whose worker dies is picked up. Raises Interrupted on Ctrl-C.
    """
    owner = current_owner()
    while True:
        raise_if_interrupted()
        claimed = claims.claim(study, storage, owner)
        if claimed is None:
            if not _unfinished(study):
                return
            time.sleep(WAIT_SECONDS)
            continue
        if on_trial_start is not None:
            on_trial_start(claimed.trial, claimed.unit)
        if _train_and_record(storage, study, trainer, claimed) and on_trial_end:
            on_trial_end(storage.rdb.get_trial(trial_id(claimed.trial)))


def _moved_on(storage: Storage, trial: optuna.Trial, lost: Exception) -> None:
    """Another worker failed this trial, or took its unit over: nothing more is written for
    the unit (its checkpoints are the new owner's), only the trial's end if it still runs."""
    if isinstance(lost, holding.TakenOver):
        logger.warning("%s; moving on", lost)
        with held_interrupts():
            claims.mark_failed(storage, trial_id(trial), "superseded: the unit was claimed "
                               "again")
    else:
        logger.warning("trial %d was failed by another worker; moving on", trial.number)


def _machine_failed(storage: Storage, trial: optuna.Trial, why: str) -> None:
    """A full disk or an unreachable store is not the trial's fault: the run stops and the
    trial is marked interrupted, which costs the unit no attempt."""
    with held_interrupts():
        claims.mark_failed(storage, trial_id(trial), f"interrupted: {why}")


def _interrupted(storage: Storage, trial: optuna.Trial, unit: points.Unit) -> Interrupted:
    """Ctrl-C or SIGTERM: the trial is marked interrupted (no attempt lost), its checkpoint
    kept for the rerun."""
    ignore_further_interrupts()
    epochs = storage.rdb.get_trial(trial_id(trial)).user_attrs.get(points.EPOCHS_DONE, 0)
    claims.mark_failed(storage, trial_id(trial),
                       f"interrupted after epoch {epochs}: resumed on the next run")
    return Interrupted(trial.number, unit.params, epochs)


def _environment_error(error: OSError) -> SearchError:
    """A full disk or quota, a read-only or forbidden file: one line that names it."""
    where = error.filename or "a checkpoint or artifact"
    if error.errno in disk_space.FULL_ERRNOS and error.filename:
        return DiskFull(f"{where}: {disk_space.full_line(where)}")
    return SearchError(f"{where}: {error.strerror}; fix that, then rerun to resume")


def _train_and_record(storage: Storage, study: optuna.Study, trainer: UnitTrainer,
                      claimed: claims.Claimed) -> bool:
    """Train one claimed unit and record its outcome; False if another worker ended it."""
    trial, unit = claimed.trial, claimed.unit
    try:
        with holding.hold(storage, study, claimed):
            value = trainer(trial, unit)
            holding.raise_if_taken_over()  # the claim table decides whose result counts
    except KeyboardInterrupt:
        raise _interrupted(storage, trial, unit) from None
    except (optuna.exceptions.UpdateFinishedTrialError, holding.TakenOver) as lost:
        _moved_on(storage, trial, lost)
        return False
    except optuna.TrialPruned:  # its pruner stopped it: it has ended, and counts
        _ended(study, trainer, trial, unit, state=optuna.trial.TrialState.PRUNED)
    except _STORAGE_FAULTS:
        raise  # the storage itself failed: stop; the next run finds the trial dead
    except StoreError as error:  # the last checkpoint stays: a rerun once it is fixed resumes
        _machine_failed(storage, trial, "the disk is full" if isinstance(error, DiskFull)
                        else "the artifact store failed")
        raise
    except OSError as error:
        if error.errno not in _ENVIRONMENT_ERRNOS:
            raise
        _machine_failed(storage, trial, error.strerror)
        raise _environment_error(error) from None
    except Exception as error:  # a failed trial must not stop the study
        if interrupt_noted():  # a Ctrl-C that surfaced as another error (an import's, say)
            raise _interrupted(storage, trial, unit) from None
        logger.warning("trial %d %s failed: %s: %s", trial.number, unit.params,
                       type(error).__name__, error)
        with held_interrupts():
            if claims.mark_failed(storage, trial_id(trial),
                                  f"error: {type(error).__name__}: {error}"[:500]):
                trainer.forget(unit)  # the retry starts from scratch (if the unit is ours)
    else:
        _ended(study, trainer, trial, unit, value)
    return True


def _ended(study: optuna.Study, trainer: UnitTrainer, trial: optuna.Trial, unit: points.Unit,
           value: float | None = None, state: optuna.trial.TrialState | None = None) -> None:
    """Record the trial's end (its value, or PRUNED) and drop its checkpoint, unsplit."""
    with held_interrupts():
        study.tell(trial, value, state=state)
        trainer.forget(unit)
