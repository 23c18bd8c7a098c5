"""What each unit of a study is and what state it is in: the one module that decides it.

A *unit* is one grid point at one replicate; exactly one COMPLETE trial finishes it. The grid
map (the list of points, in order) and the number of replicates are stored on the study
when it is created (``search.study.lifecycle``), so a unit's id never depends on how an
Optuna release orders its grid. The worker loop, the progress view, the report and the study's
note all read a unit's state from ``unit_status``:

- pending: never tried, or only interrupted (an interruption costs no attempt);
- running: a trial holds it now;
- complete: it has its COMPLETE trial;
- retrying: it failed with an error and has attempts left;
- given up: it failed with an error ``max_attempts`` times (``--retry-failed`` forgives them).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.definition_schema import DEFAULT_MAX_ATTEMPTS
from search.model_sections import DEFAULT_METRIC

PENDING, RUNNING, COMPLETE, RETRYING, GIVEN_UP = (
    "pending", "running", "complete", "retrying", "given up")
CLAIMABLE = (PENDING, RETRYING)
UNFINISHED = (PENDING, RUNNING, RETRYING)

# Keys written on trials and studies; every module reads them from here.
UNIT = "unit"  # trial system attribute: [point, replicate]
CLAIM = "claim"  # trial system attribute: [unit id, attempt]
OWNER = "owner"  # trial system attribute: the worker process (search.study.claims)
REPLICATE = "replicate"  # trial user attribute: the replicate index, 0-based
FAILURE = "failure"  # trial user attribute: why it is FAIL ("error: ...", "interrupted ...")
HISTORY = "history"  # trial user attribute: {loss, accuracy, val_loss, val_accuracy} per epoch
EPOCHS_DONE = "epochs_done"  # trial user attribute: epochs trained so far
EPOCH_SECONDS = "epoch_seconds"  # trial user attribute: each epoch's training seconds
BEST_EPOCH = "best_epoch"  # trial user attribute: the epoch of the best validation accuracy
TEST_ACCURACY = "test_accuracy"  # trial user attribute: recorded, never used to choose
TEST_LOSS = "test_loss"  # trial user attribute: recorded, never used to choose
TEST_SCORES = "test_scores"  # trial user attribute: {test_loss, test_<metric>, ...}
PATH = "path"  # trial user attribute: the training path ("compiled", "xla", "graph", "fit")
SEED = "seed"  # trial user attribute: the replicate's seed of weights and batch order
VERSIONS = "versions"  # trial user attribute: Python, TensorFlow, Keras, Optuna, NumPy
DATA_SIZES = "data_sizes"  # trial user attribute: {train, valid, test} example counts
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # trial user attribute: its checkpoint's epoch
WALL_SECONDS = "wall_seconds"  # trial user attribute: the whole trial, evaluation included
SECONDS = "seconds"  # trial user attribute: its epochs' training seconds, added up
MODEL_ARTIFACT = "model_artifact"  # trial user attribute: its final model's artifact id
MODEL_ERROR = "model_error"  # trial user attribute: why its final model was not stored
GRID = "grid"  # study user attribute: the grid map, a list of parameter dicts
PATHS = "paths"  # study user attribute: {architecture: {path, why, layers}}
REPEATS = "repeats"  # study user attribute: replicates per grid point
MAX_ATTEMPTS = "max_attempts"  # study user attribute: errors before a unit is given up
FORGIVEN = "forgiven_errors"  # study user attribute {unit id: errors no longer counted}
BUDGET = "budget"  # study user attribute: what the stored trials depend on
DEFINITION = "definition"  # study user attribute: the definition file's text
FINGERPRINTS = "fingerprints"  # study user attribute: {model, data} hashes of user code, data


def normalised(value: Any) -> Any:
    """``value`` as it reads back from storage (JSON): tuples become lists, and so on."""
    return json.loads(json.dumps(value))


def format_value(value: Any) -> str:
    """A hyperparameter value as reports print it: ``0.001``, ``128-64``, ``relu``."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        return "-".join(str(item) for item in value)
    return str(value)


def format_params(params: dict[str, Any]) -> str:
    """``learning_rate=0.001 batch_size=32``."""
    return " ".join(f"{name}={format_value(value)}" for name, value in params.items())


def canonical(params: dict[str, Any]) -> str:
    """A point's parameters as one comparable string, whatever the order of their names."""
    return json.dumps(params, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Unit:
    point: int  # index into the grid map
    replicate: int
    params: dict[str, Any]
    grid_size: int

    @property
    def id(self) -> int:
        """Replicate-major, so raising the replicates keeps every existing unit's id."""
        return self.replicate * self.grid_size + self.point


def units(grid: list[dict[str, Any]], repeats: int) -> list[Unit]:
    """Every unit, in the order workers take them: each point once, then each again."""
    return [Unit(point, replicate, params, len(grid))
            for replicate in range(repeats) for point, params in enumerate(grid)]


@dataclasses.dataclass
class UnitStatus:
    unit: Unit
    complete: FrozenTrial | None = None
    running: FrozenTrial | None = None
    errors: int = 0  # attempts that failed with an error (not interruptions)
    forgiven: int = 0  # of those, errors before the last --retry-failed
    last_failure: str | None = None

    def state(self, max_attempts: int) -> str:
        if self.complete is not None:
            return COMPLETE
        if self.running is not None:
            return RUNNING
        counted = self.errors - self.forgiven
        if counted >= max_attempts:
            return GIVEN_UP
        return RETRYING if counted > 0 else PENDING


def stored_grid(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's grid map; a study from before maps were stored gets its budget's grid."""
    if GRID in study.user_attrs:
        return study.user_attrs[GRID]
    space = study.user_attrs[BUDGET]["search_space"]
    names = list(space)
    grid: list[dict[str, Any]] = [{}]
    for name in names:
        grid = [{**point, name: value} for point in grid for value in space[name]]
    return grid


def _unit_of(trial: FrozenTrial, index: dict[str, int]) -> tuple[int, int] | None:
    if UNIT in trial.system_attrs:
        point, replicate = trial.system_attrs[UNIT]
        return point, replicate
    # A trial from before units were stored: its params name its point, replicate 0.
    point = index.get(canonical(trial.params))
    return None if point is None else (point, 0)


def unit_status(study: optuna.Study,
                trials: list[FrozenTrial] | None = None) -> list[UnitStatus]:
    """Each unit of the study, in running order, with its trials summed up."""
    grid = stored_grid(study)
    index = {canonical(params): point for point, params in enumerate(grid)}
    statuses = [UnitStatus(unit) for unit in units(grid, study.user_attrs.get(REPEATS, 1))]
    by_key = {(status.unit.point, status.unit.replicate): status for status in statuses}
    for unit_id, errors in study.user_attrs.get(FORGIVEN, {}).items():
        if int(unit_id) < len(statuses):
            statuses[int(unit_id)].forgiven = errors
    for trial in trials if trials is not None else study.get_trials(deepcopy=False):
        status = by_key.get(_unit_of(trial, index))
        if status is None:
            continue
        if trial.state == TrialState.COMPLETE and status.complete is None:
            status.complete = trial
        elif trial.state == TrialState.RUNNING:
            status.running = trial
        elif trial.state == TrialState.FAIL:
            failure = str(trial.user_attrs.get(FAILURE, ""))
            status.last_failure = failure
            status.errors += failure.startswith("error")
    return statuses


def objective_of(study: optuna.Study) -> tuple[str, str]:
    """The study's objective: (validation metric, "maximize" or "minimize"). A study stored
    without one maximized validation accuracy, the only objective there was."""
    metric = study.user_attrs.get(BUDGET, {}).get("objective", [DEFAULT_METRIC])[0]
    return metric, study.direction.name.lower()


def test_name(metric: str) -> str:
    """The test-set counterpart of a validation metric: val_loss -> test_loss."""
    return "test_" + metric.removeprefix("val_")


def test_score(trial: FrozenTrial, metric: str) -> float | None:
    """The trial's test score of the objective's metric, if it has one (recorded only)."""
    score = trial.user_attrs.get(TEST_SCORES, {}).get(test_name(metric))
    if score is None and metric == DEFAULT_METRIC:  # trials from before TEST_SCORES
        score = trial.user_attrs.get(TEST_ACCURACY)
    return score


def max_attempts(study: optuna.Study) -> int:
    return study.user_attrs.get(MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)


def states(study: optuna.Study) -> list[str]:
    limit = max_attempts(study)
    return [status.state(limit) for status in unit_status(study)]


def retry_given_up(study: optuna.Study) -> list[Unit]:
    """Give every given-up unit ``max_attempts`` new attempts; return those units.

    The failed trials stay as they are (the record is never rewritten); the study only
    notes how many of each unit's errors no longer count.
    """
    statuses = unit_status(study)
    limit = max_attempts(study)
    given_up = [status for status in statuses if status.state(limit) == GIVEN_UP]
    if given_up:
        forgiven = {str(s.unit.id): s.forgiven for s in statuses if s.forgiven}
        forgiven.update({str(s.unit.id): s.errors for s in given_up})
        study.set_user_attr(FORGIVEN, forgiven)
    return [status.unit for status in given_up]
