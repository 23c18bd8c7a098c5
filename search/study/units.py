"""Which units a study has and what state each is in: the one module that decides it.

A grid study's units are its points × replicates: the grid map (the list of points, in
order) and the number of replicates are stored on the study when it is created
(``search.study.lifecycle``), so a unit's id never depends on how an Optuna release orders
its grid. A sampled study's units are its search trials, then its confirm stage's
(``search.study.stages``). The worker loop, the progress view, the report and the study's
note all read a unit's state from ``unit_status``.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study import points, stages
from search.study.points import BUDGET, GRID, REPEATS, Unit, UnitStatus, canonical


def stored_grid(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's grid map; a study from before maps were stored gets its budget's grid."""
    if GRID in study.user_attrs:
        return study.user_attrs[GRID]
    space = study.user_attrs[BUDGET]["search_space"]
    grid: list[dict[str, Any]] = [{}]
    for name in space:
        grid = [{**point, name: value} for point in grid for value in space[name]]
    return grid


def grid_units(grid: list[dict[str, Any]], repeats: int) -> list[Unit]:
    """Every unit, in the order workers take them: each point once, then each again."""
    return [Unit(point, replicate, params, len(grid))
            for replicate in range(repeats) for point, params in enumerate(grid)]


def _unit_of(trial: FrozenTrial, index: dict[str, int]) -> tuple[int, int] | None:
    if points.UNIT in trial.system_attrs:
        point, replicate = trial.system_attrs[points.UNIT][:2]
        return point, replicate
    # A trial from before units were stored: its params name its point, replicate 0.
    point = index.get(canonical(trial.params))
    return None if point is None else (point, 0)


def add_trial(status: UnitStatus, trial: FrozenTrial) -> None:
    """Count ``trial`` (one attempt at ``status``'s unit) into it."""
    if trial.state == TrialState.COMPLETE and status.complete is None:
        status.complete = trial
    elif trial.state == TrialState.PRUNED and status.pruned is None:
        status.pruned = trial
    elif trial.state == TrialState.RUNNING:
        status.running = trial
    elif trial.state == TrialState.FAIL:
        failure = str(trial.user_attrs.get(points.FAILURE, ""))
        status.last_failure = failure
        status.errors += failure.startswith("error")


def _grid_status(study: optuna.Study, trials: list[FrozenTrial]) -> list[UnitStatus]:
    grid = stored_grid(study)
    index = {canonical(params): point for point, params in enumerate(grid)}
    statuses = [UnitStatus(unit) for unit in grid_units(grid, study.user_attrs.get(REPEATS, 1))]
    by_key = {(status.unit.point, status.unit.replicate): status for status in statuses}
    for trial in trials:
        status = by_key.get(_unit_of(trial, index))
        if status is not None:
            add_trial(status, trial)
    return statuses


def unit_status(study: optuna.Study,
                trials: list[FrozenTrial] | None = None) -> list[UnitStatus]:
    """Each unit of the study, in running order, with its trials summed up."""
    trials = trials if trials is not None else study.get_trials(deepcopy=False)
    if stages.is_sampled(study):
        statuses = stages.sampled_status(study, trials, add_trial)
    else:
        statuses = _grid_status(study, trials)
    forgiven = study.user_attrs.get(points.FORGIVEN, {})
    for status in statuses:
        status.forgiven = forgiven.get(str(status.unit.id), 0)
    return statuses


def states(study: optuna.Study) -> list[str]:
    limit = points.max_attempts(study)
    return [status.state(limit) for status in unit_status(study)]


def retry_given_up(study: optuna.Study) -> list[Unit]:
    """Give every given-up unit ``max_attempts`` new attempts; return those units.

    The failed trials stay as they are (the record is never rewritten); the study only
    notes how many of each unit's errors no longer count.
    """
    statuses = unit_status(study)
    limit = points.max_attempts(study)
    given_up = [status for status in statuses if status.state(limit) == points.GIVEN_UP]
    if given_up:
        forgiven = {str(s.unit.id): s.forgiven for s in statuses if s.forgiven}
        forgiven.update({str(s.unit.id): s.errors for s in given_up})
        study.set_user_attr(points.FORGIVEN, forgiven)
    return [status.unit for status in given_up]
