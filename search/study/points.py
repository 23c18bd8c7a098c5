"""What a unit of a study is, its states, and the names of everything stored on trials and
studies; ``search.study.units`` decides which units a study has and what state each is in.

A *unit* is one grid point at one replicate, one search trial of a sampled study, or one
fresh-seed replicate of a configuration its confirm stage re-trains; exactly one COMPLETE
trial finishes it. Its states:

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
from optuna.trial import FrozenTrial

from search.definition_schema import DEFAULT_MAX_ATTEMPTS
from search.model_sections import DEFAULT_METRIC

PENDING, RUNNING, COMPLETE, RETRYING, GIVEN_UP, PRUNED = (
    "pending", "running", "complete", "retrying", "given up", "pruned")
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
STAGE = "stage"  # trial user attribute of a sampled study: "search" or "confirm"
PRUNED_AT_EPOCH = "pruned_at_epoch"  # trial user attribute: the epoch its pruner stopped it
PRUNER = "pruner"  # trial user attribute: the pruner that stopped it
TRIALS = "trials"  # study user attribute: a sampled study's search trials
CONFIRM = "confirm"  # study user attribute: how many of the best configurations are confirmed
CONFIRMED = "confirmed"  # study user attribute: search units whose configurations are confirmed

# A unit's stage: a grid point's replicate, or a sampled study's search or confirm trial.
GRID_STAGE, SEARCH_STAGE, CONFIRM_STAGE = "grid", "search", "confirm"
# Confirm unit ids: above any search unit's, by configuration (its search unit) and replicate,
# so they never depend on how many search trials the study runs.
CONFIRM_BASE, REPLICATE_SLOTS = 1_000_000_000, 1000


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
    point: int  # index into the grid map; a sampled study's search unit (its configuration)
    replicate: int
    params: dict[str, Any]  # a search unit's are {} until its first trial samples them
    grid_size: int  # the grid's points; a sampled study's search trials
    stage: str = GRID_STAGE

    @property
    def id(self) -> int:
        """Replicate-major on a grid, so raising the replicates keeps every existing unit's
        id; a search unit's index; a confirm unit's id from its configuration's search unit."""
        if self.stage == SEARCH_STAGE:
            return self.point
        if self.stage == CONFIRM_STAGE:
            return CONFIRM_BASE + self.point * REPLICATE_SLOTS + self.replicate
        return self.replicate * self.grid_size + self.point

    @property
    def seed_replicate(self) -> int:
        """Whose seed the unit trains with: its replicate's; a confirm replicate r takes
        replicate r + 1's, so no confirm run repeats its configuration's search run (0)."""
        return self.replicate + (self.stage == CONFIRM_STAGE)


@dataclasses.dataclass
class UnitStatus:
    unit: Unit
    complete: FrozenTrial | None = None
    running: FrozenTrial | None = None
    pruned: FrozenTrial | None = None  # a search unit its pruner stopped: it has ended
    errors: int = 0  # attempts that failed with an error (not interruptions)
    forgiven: int = 0  # of those, errors before the last --retry-failed
    last_failure: str | None = None

    def state(self, max_attempts: int) -> str:
        if self.complete is not None:
            return COMPLETE
        if self.pruned is not None:
            return PRUNED
        if self.running is not None:
            return RUNNING
        counted = self.errors - self.forgiven
        if counted >= max_attempts:
            return GIVEN_UP
        return RETRYING if counted > 0 else PENDING


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
