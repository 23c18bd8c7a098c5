"""Whether a search trial stops early: Optuna's pruners, judging one trial per unit.

A unit's attempts are separate Optuna trials, and Optuna's pruners read every trial: an
interrupted attempt would still compete, and a new attempt (with no rung of its own) would be
judged again from the start. So the pruner is given a view of the study in which each search
unit is one trial: its live or finished attempt, never a FAIL one, never a confirm run. A
new attempt inherits its unit's rungs (``inherited_rungs``) and re-reports its restored
epochs, so it is never judged again at a step it passed. Hyperband's bracket comes from
the unit id (Optuna derives it from the trial number, which changes with every attempt):
each bracket is Optuna's own successive halving over that bracket's units.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.search_section import PRUNERS
from search.study import points, stages
from search.study.optuna_internals import study_id, trial_id

RUNG_PREFIX = "completed_rung_"  # Optuna's successive halving's trial system attributes


def inherited_rungs(trials: list[FrozenTrial]) -> dict[str, Any]:
    """The rungs a unit's earlier attempts completed: a new attempt starts with them."""
    rungs: dict[str, Any] = {}
    for trial in trials:
        rungs.update({key: value for key, value in trial.system_attrs.items()
                      if key.startswith(RUNG_PREFIX)})
    return rungs


class _UnitView:
    """What a pruner reads of a study (trials, direction, storage), one trial per unit."""

    def __init__(self, study: optuna.Study, rdb: optuna.storages.RDBStorage,
                 units: set[int] | None) -> None:
        self._study, self._units = study, units
        # Optuna's successive halving writes a trial's rung through ``study._storage``.
        self._storage, self._study_id = rdb, study_id(study)
        self.study_name, self.direction = study.study_name, study.direction
        self.directions = study.directions

    def get_trials(self, deepcopy: bool = True,
                   states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        found = []
        for trial in self._study.get_trials(deepcopy=deepcopy, states=states):
            if trial.state == TrialState.FAIL or stages.stage_of(trial) != points.SEARCH_STAGE:
                continue
            if self._units is None or trial.system_attrs[points.UNIT][0] in self._units:
                found.append(trial)
        return found

    _get_trials = get_trials


def _bracket(name: str, unit: int, budgets: list[int]) -> int:
    """Hyperband's bracket of a unit: Optuna's rule, on the unit id."""
    n = binascii.crc32(f"{name}_{unit}".encode()) % sum(budgets)
    for bracket, budget in enumerate(budgets):
        n -= budget
        if n < 0:
            return bracket
    raise AssertionError("unreachable")


class Hyperband:
    """Optuna's Hyperband (brackets of successive halving), its brackets by unit."""

    def __init__(self, min_resource: int = 1, max_resource: int | str = "auto",
                 reduction_factor: int = 3, bootstrap_count: int = 0) -> None:
        optuna.pruners.HyperbandPruner(min_resource, max_resource, reduction_factor,
                                       bootstrap_count)  # Optuna's own checks of the values
        self.min_resource, self.max_resource = min_resource, max_resource
        self.reduction_factor, self.bootstrap_count = reduction_factor, bootstrap_count

    def _budgets(self, study: optuna.Study) -> list[int] | None:
        maximum = self.max_resource
        if maximum == "auto":  # as Optuna's: known once a search trial has completed
            steps = [t.last_step for t in _UnitView(study, None, None).get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,)) if t.last_step is not None]
            if not steps:
                return None
            maximum = max(steps) + 1
        brackets = math.floor(math.log(maximum / self.min_resource, self.reduction_factor)) + 1
        return [math.ceil(brackets * self.reduction_factor ** (brackets - 1 - b)
                          / (brackets - b)) for b in range(brackets)]

    def prune(self, study: optuna.Study, rdb: optuna.storages.RDBStorage,
              trial: FrozenTrial) -> bool:
        budgets = self._budgets(study)
        if budgets is None:
            return False
        unit = trial.system_attrs[points.UNIT][0]
        bracket = _bracket(study.study_name, unit, budgets)
        count = study.user_attrs[points.TRIALS]
        same = {other for other in range(count)
                if _bracket(study.study_name, other, budgets) == bracket}
        halving = optuna.pruners.SuccessiveHalvingPruner(
            self.min_resource, self.reduction_factor, min_early_stopping_rate=bracket,
            bootstrap_count=self.bootstrap_count)
        return halving.prune(_UnitView(study, rdb, same), trial)


def make(budget: dict[str, Any]) -> Any:
    """The pruner of a study's stored budget (every worker builds the same one, since Optuna
    stores none): None, or one with Optuna's ``prune``. Hyperband's ``max_resource``
    defaults to the study's epochs."""
    name, options = budget["search"].get("pruner", "none"), budget["search"].get(
        "pruner_options", {})
    if PRUNERS.get(name) is None:
        return None
    if name == "hyperband":
        return Hyperband(**{"max_resource": budget["epochs"], **options})
    return getattr(optuna.pruners, PRUNERS[name])(**options)


def should_prune(pruner: Any, study: optuna.Study, rdb: optuna.storages.RDBStorage,
                 trial: optuna.Trial) -> bool:
    """Whether ``trial`` (a search trial that has just reported an epoch) stops here."""
    frozen = rdb.get_trial(trial_id(trial))
    if isinstance(pruner, Hyperband):
        return pruner.prune(study, rdb, frozen)
    return bool(pruner.prune(_UnitView(study, rdb, None), frozen))
