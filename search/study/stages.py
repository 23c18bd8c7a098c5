"""A sampled study's two stages, the one module that decides them.

*Search*: exactly ``trials`` units, ids 0 .. trials-1; each takes the configuration its sampler
gives its first trial (``search.study.samplers``) and keeps it through every later attempt.
*Confirm*: once every search unit has ended (complete, pruned or given up), the ``confirm`` best
distinct configurations by search value are each re-trained ``repeats`` times on fresh seeds.
The confirmed configurations are kept on the study (``confirmed``: their search units), so a
configuration once confirmed stays confirmed when ``trials`` grows, and its confirm units'
ids (from its search unit and replicate, ``points.Unit.id``) never depend on ``trials``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial

from search.study import points
from search.study.points import CONFIRM_STAGE, SEARCH_STAGE, Unit, UnitStatus, canonical

ENDED = (points.COMPLETE, points.GIVEN_UP, points.PRUNED)  # a search unit's ends


def is_sampled(study: optuna.Study) -> bool:
    """Whether a sampler proposes the study's configurations (its budget names one)."""
    return "search" in study.user_attrs.get(points.BUDGET, {})


def stage_of(trial: FrozenTrial) -> str:
    unit = trial.system_attrs.get(points.UNIT, [])
    return unit[2] if len(unit) > 2 else points.GRID_STAGE


def _params_of(trial: FrozenTrial, names: list[str]) -> dict:
    """A trial's configuration, once every searched parameter is set (else {})."""
    return {name: trial.params[name] for name in names} \
        if all(name in trial.params for name in names) else {}


def search_ended(search: list[UnitStatus], limit: int) -> bool:
    return all(status.state(limit) in ENDED for status in search)


def best_configurations(search: list[UnitStatus], count: int, maximize: bool) -> list[int]:
    """The search units of the ``count`` best distinct COMPLETE configurations, best first;
    ties go to the earlier unit."""
    complete = [status for status in search if status.complete is not None]
    sign = -1 if maximize else 1
    complete.sort(key=lambda status: (sign * status.complete.value, status.unit.id))
    chosen: dict[str, int] = {}
    for status in complete:
        chosen.setdefault(canonical(status.unit.params), status.unit.id)
    return list(chosen.values())[:count]


def confirmed(study: optuna.Study, search: list[UnitStatus], limit: int) -> list[int]:
    """The search units whose configurations the confirm stage trains: those stored, then,
    once the search has ended, any new one among the current best (not stored yet)."""
    stored = list(study.user_attrs.get(points.CONFIRMED, []))
    if not search_ended(search, limit):
        return stored
    known = {canonical(search[unit].unit.params) for unit in stored if unit < len(search)}
    best = best_configurations(search, study.user_attrs.get(points.CONFIRM, 0),
                               study.direction == optuna.study.StudyDirection.MAXIMIZE)
    return stored + [unit for unit in best if canonical(search[unit].unit.params) not in known]


def record_confirmed(study: optuna.Study, statuses: list[UnitStatus]) -> None:
    """Store the confirmed configurations, once the search has decided new ones."""
    found = list(dict.fromkeys(status.unit.point for status in statuses
                               if status.unit.stage == CONFIRM_STAGE))
    stored = study.user_attrs.get(points.CONFIRMED, [])
    if set(found) - set(stored):
        study.set_user_attr(points.CONFIRMED, stored + [u for u in found if u not in stored])


def sampled_status(study: optuna.Study, trials: list[FrozenTrial],
                   add_trial: Callable[[UnitStatus, FrozenTrial], None]) -> list[UnitStatus]:
    """The search units, then the confirm units, each with its trials summed up."""
    attrs = study.user_attrs
    count, names = attrs[points.TRIALS], list(attrs[points.BUDGET]["search_space"])
    search = [UnitStatus(Unit(index, 0, {}, count, SEARCH_STAGE)) for index in range(count)]
    forgiven = attrs.get(points.FORGIVEN, {})
    for trial in trials:
        unit = trial.system_attrs.get(points.UNIT)
        if stage_of(trial) != SEARCH_STAGE or not 0 <= unit[0] < count:
            continue
        status = search[unit[0]]
        if not status.unit.params and (params := _params_of(trial, names)):
            status.unit = dataclasses.replace(status.unit, params=params)
        add_trial(status, trial)
    for status in search:
        status.forgiven = forgiven.get(str(status.unit.id), 0)
    confirm = [UnitStatus(Unit(unit, replicate, search[unit].unit.params, count,
                               CONFIRM_STAGE))
               for unit in confirmed(study, search, points.max_attempts(study))
               for replicate in range(attrs.get(points.REPEATS, 1))]
    by_id = {status.unit.id: status for status in confirm}
    for trial in trials:
        if stage_of(trial) == CONFIRM_STAGE:
            status = by_id.get(trial.system_attrs[points.CLAIM][0])
            if status is not None:
                add_trial(status, trial)
    return search + confirm


def planned(study: optuna.Study, statuses: list[UnitStatus]) -> int:
    """How many units the study will have run: a grid's all; a sampled study's search units
    and the confirm runs of as many configurations as it confirms (or has confirmed)."""
    if not is_sampled(study):
        return len(statuses)
    attrs = study.user_attrs
    configurations = max(attrs.get(points.CONFIRM, 0), len(attrs.get(points.CONFIRMED, [])))
    return attrs[points.TRIALS] + configurations * attrs.get(points.REPEATS, 1)


def configurations_confirmed(statuses: list[UnitStatus]) -> list[UnitStatus]:
    """The confirm stage's units (a grid study's units are all its own)."""
    return [status for status in statuses if status.unit.stage != SEARCH_STAGE]
