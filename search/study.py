"""Running a study: open or create it, then claim and run grid points until none is left.

``run_worker`` is what ``python -m search.run`` calls in each worker process; it is safe to
run any number of them at once, on one machine or several, against the same storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import sqlalchemy
from optuna.trial import TrialState

from search import claims, grid
from search.checkpoints import CheckpointStore
from search.definition import StudyDefinition
from search.errors import SearchError
from search.storage import HEARTBEAT_INTERVAL, Storage

if TYPE_CHECKING:
    from search.objective import Objective

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
# Errors of the machine, not of the trial: they stop the run instead of using up attempts.
_STORAGE_FAULTS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a trial; its checkpoint is kept for the rerun."""

    def __init__(self, trial_number: int | None, params: dict | None, epochs_done: int) -> None:
        super().__init__("interrupted")
        self.trial_number, self.params, self.epochs_done = trial_number, params, epochs_done


def _normalised(value: object) -> object:
    return json.loads(json.dumps(value))


def open_study(storage: Storage, definition: StudyDefinition) -> optuna.Study:
    """Load the study, or create it with the definition stored on it.

    A study is continued only under the budget it was started with: a changed grid or
    epoch count would silently mix trials of two different searches.
    """
    study = optuna.create_study(
        study_name=definition.name, storage=storage.optuna, direction="maximize",
        sampler=grid.make_sampler(definition), load_if_exists=True)
    stored = study.user_attrs.get("budget")
    budget = _normalised(definition.budget())
    if stored is None:
        study.set_user_attr("budget", budget)
        study.set_user_attr("definition", definition.source)
        study.set_user_attr("grid_size", len(definition.grid))
    elif stored != budget:
        changed = sorted(key for key in budget if stored.get(key) != budget[key])
        raise SearchError(
            f"study '{definition.name}' in {storage.display_url} was started with another "
            f"{', '.join(changed)}; give the changed study a new name (a new studies/*.toml) "
            "or pass --fresh to discard the stored trials")
    return study


def delete_study(storage: Storage, name: str, checkpoints: CheckpointStore) -> bool:
    """Remove a study, its claims and its checkpoints; False if there was none."""
    try:
        study_id = storage.optuna.get_study_id_from_name(name)
    except KeyError:
        checkpoints.discard_all()
        return False
    storage.claims.delete_study(study_id)
    optuna.delete_study(study_name=name, storage=storage.optuna)
    checkpoints.discard_all()
    return True


@contextlib.contextmanager
def _heartbeat(storage: Storage, trial_id: int) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried next interval
                storage.optuna.record_heartbeat(trial_id)
            if stop.wait(HEARTBEAT_INTERVAL):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
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
    """Hold off Ctrl-C while a trial's outcome is written, so a second one can't split it."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C the run is already stopping: more of them change nothing.

    Without this a second Ctrl-C while TensorFlow shuts down kills the process by signal
    instead of letting it exit 130 with its message.
    """
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _create_trial(study: optuna.Study, storage: Storage, grid_id: int, attempt: int,
                  owner: str, sampler: grid.ClaimedGridSampler) -> optuna.Trial:
    template = optuna.trial.FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, datetime_start=None,
        datetime_complete=None, params={}, distributions={}, user_attrs={},
        system_attrs={"grid_id": grid_id, "search_space": sampler._search_space,
                      "claim": [grid_id, attempt], "owner": owner},
        intermediate_values={}, trial_id=-1)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return optuna.Trial(study, trial_id)


@dataclasses.dataclass
class WorkerResult:
    trials_run: int = 0
    completed: int = 0
    failed: int = 0


def run_worker(
    storage: Storage,
    definition: StudyDefinition,
    objective: Objective,
    *,
    on_trial_start: Callable[[optuna.Trial, dict], None] | None = None,
    on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    max_trials: int | None = None,
) -> WorkerResult:
    """Claim and run grid points until every point is complete or given up.

    While other workers still run the last points, this one waits and watches them, so
    that a point whose worker dies is picked up. Raises Interrupted on Ctrl-C.
    """
    study = open_study(storage, definition)
    owner = claims.current_owner()
    sampler = grid.make_sampler(definition)
    result = WorkerResult()
    while max_trials is None or result.trials_run < max_trials:
        claimed = grid.next_point(study, storage, definition, owner)
        if claimed is None:
            states = [point.state(definition.max_attempts)
                      for point in grid.grid_status(study, definition)]
            if "running" not in states and "pending" not in states:
                return result
            time.sleep(POLL_SECONDS)
            continue
        grid_id, attempt = claimed
        params = definition.grid[grid.grid_ids(definition).index(grid_id)]
        trial = _create_trial(study, storage, grid_id, attempt, owner, sampler)
        if not grid.still_latest(study, storage, grid_id, attempt):
            grid.mark_failed(storage, trial._trial_id, "superseded: the point was claimed again")
            continue
        result.trials_run += 1
        if on_trial_start is not None:
            on_trial_start(trial, params)
        try:
            with _heartbeat(storage, trial._trial_id):
                value = objective(trial)
        except KeyboardInterrupt:
            ignore_further_interrupts()
            epochs = storage.optuna.get_trial(trial._trial_id).user_attrs.get("epochs_done", 0)
            grid.mark_failed(storage, trial._trial_id,
                             f"interrupted after epoch {epochs}: resumed on the next run")
            raise Interrupted(trial.number, params, epochs) from None
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %d was failed by another worker; moving on", trial.number)
            continue
        except _STORAGE_FAULTS:
            raise  # the storage itself failed: stop; the next run finds the trial dead
        except OSError as error:
            if error.errno not in _ENVIRONMENT_ERRNOS:
                raise
            # A full or read-only disk is not the trial's fault: stop, keep the attempt.
            grid.mark_failed(storage, trial._trial_id, f"interrupted: {error.strerror}")
            raise SearchError(f"{error.filename or 'a checkpoint or artifact'}: "
                              f"{error.strerror}; fix that, then rerun to resume") from None
        except Exception as error:  # a failed trial must not stop the study
            logger.warning("trial %d %s failed: %s: %s", trial.number, params,
                           type(error).__name__, error)
            with _no_interrupts():
                grid.mark_failed(storage, trial._trial_id, f"error: {type(error).__name__}: "
                                 f"{error}"[:500])
                if objective.checkpoints is not None:
                    objective.checkpoints.discard(params)  # retry from scratch
            result.failed += 1
        else:
            with _no_interrupts():
                study.tell(trial, value)
                if objective.checkpoints is not None:
                    objective.checkpoints.discard(params)
            result.completed += 1
        if on_trial_end is not None:
            on_trial_end(storage.optuna.get_trial(trial._trial_id))
    return result


def beside_storage(storage_url: str, suffix: str) -> Path | None:
    """``studies/mnist.db`` -> ``studies/mnist.SUFFIX``; None unless the storage is a file."""
    from sqlalchemy.engine import make_url

    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite" and url.database:
        database = Path(url.database)
        return database.with_name(f"{database.stem}.{suffix}")
    return None


def checkpoint_root(storage_url: str, study_name: str, studies_dir: Path) -> Path:
    """Checkpoints live beside a SQLite file, else under studies/."""
    folder = beside_storage(storage_url, "checkpoints")
    return folder / study_name if folder else studies_dir / f"{study_name}.checkpoints"


def artifact_root(storage_url: str, study_name: str, studies_dir: Path) -> Path:
    """Trial figures for optuna-dashboard: beside a SQLite file, else under studies/.

    One folder serves every study in a SQLite file (artifact ids are unique), so the
    dashboard, which shows a whole storage, finds them all.
    """
    return beside_storage(storage_url, "artifacts") or studies_dir / f"{study_name}.artifacts"
