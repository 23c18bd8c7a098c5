"""Claiming a unit (a grid point's replicate, a search trial, a confirm run) so that no two
workers run it: the one module that decides which unit a worker takes and starts its trial.

Optuna's GridSampler picks a point by reading which trials exist and then creating a trial:
two workers can read the same state and pick the same point. Here a worker first inserts a
claim row (``search.study.claim_table``), whose primary key admits one row per (study,
unit, attempt). Attempt k+1 of a unit is only tried once attempt k has ended (its trial
finished, or its worker is dead), and never once the unit has a COMPLETE trial, so each
unit gets at most one live attempt and exactly one COMPLETE trial.

A database outage longer than the heartbeats' grace period silences every worker at once.
So a worker that has just met one (``search.study.retry``) counts a heartbeat's silence only
from the moment the database came back: each live worker has beaten again long before
GRACE_PERIOD has passed since. ``holds`` tells a worker whether its claim is still the
unit's latest (``search.study.holding`` asks it while the unit trains).
"""

from __future__ import annotations

import dataclasses
import datetime
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import ranges
from search.study import points, pruning, samplers, stages, units
from search.study.claim_table import GRACE_PERIOD, Claim, is_alive
from search.study.optuna_internals import (
    create_running_trial,
    stale_trial_ids,
    study_id,
    trial_id,
)
from search.study.storage import Storage


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A unit this worker holds, its attempt, and the RUNNING trial made for it."""

    unit: points.Unit
    trial: optuna.Trial
    attempt: int


def mark_failed(storage: Storage, trial_id: int, reason: str) -> bool:
    """Record why, then FAIL the trial; False if it had already finished."""
    try:
        storage.rdb.set_trial_user_attr(trial_id, points.FAILURE, reason)
        return storage.rdb.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def _silent_since(storage: Storage, moment: float) -> float:
    """Seconds of silence since ``moment`` (a time.time()), counted from the end of the last
    outage this process met if that came later: nobody could write meanwhile."""
    return time.time() - max(moment, storage.outage.ended_at or 0.0)


def fail_dead_trials(study: optuna.Study, storage: Storage) -> list[int]:
    """FAIL every RUNNING trial whose worker is gone; return their numbers.

    A worker on this machine is dead when its process is; one elsewhere when its heartbeat
    is older than the grace period, and the grace period has passed since this process
    last saw the database come back. So a rerun on one machine recovers at once.
    """
    judged = _silent_since(storage, 0.0) >= GRACE_PERIOD
    stale = stale_trial_ids(storage.rdb, study) if judged else set()
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(points.OWNER)
        alive = is_alive(owner) if owner else None
        if alive is False or (alive is None and trial_id(trial) in stale):
            how = "its process is gone" if alive is False else "its heartbeat stopped"
            if mark_failed(storage, trial_id(trial), f"worker died: {how}"):
                recovered.append(trial.number)
    return recovered


def _in_flight(storage: Storage, claim: Claim, trials: list[FrozenTrial]) -> bool:
    """Whether the claim's attempt may still be running."""
    made = [trial for trial in trials
            if trial.system_attrs.get(points.CLAIM) == [claim.unit, claim.attempt]]
    if made:  # more than one only when a retried creation made a spare (failed at once)
        return any(trial.state == TrialState.RUNNING for trial in made)
    # Claimed but no trial yet: in flight while its owner lives (or, elsewhere, briefly).
    alive = is_alive(claim.owner)
    return alive is True or (alive is None and
                             _silent_since(storage, claim.claimed_at) < GRACE_PERIOD)


def _claim_row(study: optuna.Study, storage: Storage,
               owner: str) -> tuple[points.Unit, int] | None:
    """Insert the claim of a unit that needs a run; (unit, attempt), or None if none is free."""
    fail_dead_trials(study, storage)
    trials = study.get_trials(deepcopy=False)
    latest: dict[int, Claim] = {}
    for claim in storage.claims.all(study_id(study)):
        if claim.unit not in latest or claim.attempt > latest[claim.unit].attempt:
            latest[claim.unit] = claim
    limit = points.max_attempts(study)
    statuses = units.unit_status(study, trials)
    if stages.is_sampled(study):
        stages.record_confirmed(study, statuses)  # before any of their units is claimed
    for status in statuses:
        if status.state(limit) not in points.CLAIMABLE:
            continue
        unit = status.unit
        claim = latest.get(unit.id)
        if claim is not None and _in_flight(storage, claim, trials):
            continue
        attempt = claim.attempt + 1 if claim is not None else 0
        if storage.claims.try_claim(study_id(study), unit.id, attempt, owner):
            return unit, attempt
    return None


def holds(study: optuna.Study, storage: Storage, unit: int, attempt: int) -> bool:
    """Whether ``attempt`` is still the unit's latest claim: nobody took the unit over. The
    claim table alone decides it, whatever the trial's state says."""
    return all(claim.attempt <= attempt for claim in storage.claims.all(study_id(study), unit))


def _fail_spares(study: optuna.Study, storage: Storage, claimed: Claimed) -> None:
    """A trial creation retried after a fault may have committed before it failed: any
    other RUNNING trial of the same claim is a spare that nobody trains."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.system_attrs.get(points.CLAIM) == [claimed.unit.id, claimed.attempt] and \
                trial_id(trial) != trial_id(claimed.trial):
            mark_failed(storage, trial_id(trial), "superseded: a spare of a retried creation")


def start_trial(study: optuna.Study, storage: Storage, unit: points.Unit, attempt: int,
                owner: str) -> optuna.Trial:
    """The RUNNING trial of a claimed attempt: its parameters, unit, claim and owner set.

    A search unit's first trial asks the sampler for its configuration (``search.study.
    samplers``); every other trial is made with its unit's configuration."""
    budget = study.user_attrs[points.BUDGET]
    space, params = budget["search_space"], dict(unit.params)
    user_attrs: dict[str, object] = {points.REPLICATE: unit.replicate}
    unit_key: list[object] = [unit.point, unit.replicate]
    system_attrs: dict[str, object] = {}
    if unit.stage != points.GRID_STAGE:
        user_attrs[points.STAGE] = unit.stage
        unit_key.append(unit.stage)
    if unit.stage == points.SEARCH_STAGE and attempt > 0:  # the pruner judged it so far
        system_attrs = pruning.inherited_rungs(
            [t for t in study.get_trials(deepcopy=False)
             if t.system_attrs.get(points.CLAIM, [None])[0] == unit.id
             and stages.stage_of(t) == points.SEARCH_STAGE])
    if unit.stage == points.SEARCH_STAGE and not params:
        fixed = samplers.fixed_configuration(budget["search"], space, unit.id)
        if fixed is None:  # an adaptive sampler: asked through the trial, below
            study.sampler = samplers.adaptive_sampler(budget["search"], unit.id)
        params = fixed or {}
    distributions = ranges.distributions_of({name: space[name] for name in params})
    template = optuna.trial.FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None,
        datetime_start=datetime.datetime.now(), datetime_complete=None,
        params=params, distributions=distributions, user_attrs=user_attrs,
        system_attrs={**system_attrs, points.UNIT: unit_key,
                      points.CLAIM: [unit.id, attempt], points.OWNER: owner},
        intermediate_values={}, trial_id=-1)
    trial = create_running_trial(storage.rdb, study, template)
    if len(params) < len(space):
        samplers.sample_into(trial, space)
    return trial


def claim(study: optuna.Study, storage: Storage, owner: str) -> Claimed | None:
    """Claim the next unit that needs a run and start its trial; None if none is free now.

    A trial whose claim was overtaken while it was created (its worker looked dead to
    another) is failed as superseded, and the next unit is tried.
    """
    while (claimed := _claim_row(study, storage, owner)) is not None:
        unit, attempt = claimed
        trial = start_trial(study, storage, unit, attempt, owner)
        if holds(study, storage, unit.id, attempt):
            if not unit.params:  # a search unit's first trial has just sampled it
                unit = dataclasses.replace(unit, params=dict(trial.params))
            held = Claimed(unit, trial, attempt)
            _fail_spares(study, storage, held)
            return held
        mark_failed(storage, trial_id(trial), "superseded: the unit was claimed again")
    return None
