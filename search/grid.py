"""Grid accounting: which points are done, running, failed or free, and claiming the next.

The sampler is Optuna's GridSampler; only the choice of point moves to ``next_point``,
which claims it race-free (see ``search.claims``), and the decision that the grid is
exhausted moves to the worker loop.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import claims as claims_module
from search.definition import StudyDefinition
from search.storage import GRACE_PERIOD, Storage

logger = logging.getLogger(__name__)

FAILURE = "failure"  # user attribute: why a trial is FAIL ("error: ...", "interrupted", ...)
# Study user attribute {grid_id: errors}: errors that --retry-failed no longer counts.
FORGIVEN = "forgiven_errors"


class ClaimedGridSampler(optuna.samplers.GridSampler):
    """GridSampler for trials created with their ``grid_id`` already set by a claim.

    ``before_trial`` leaves such trials alone and ``sample_independent`` maps the grid id
    to the values. ``after_trial`` would call ``study.stop()``, which is only allowed inside
    ``optimize``; the worker loop decides when the grid is done instead.
    """

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        return


def make_sampler(definition: StudyDefinition) -> ClaimedGridSampler:
    # Every worker builds the same value lists in the same order with the same seed.
    return ClaimedGridSampler(definition.search_space, seed=definition.seed)


def grid_ids(definition: StudyDefinition) -> list[int]:
    """The sampler's grid id of each point of ``definition.grid``.

    GridSampler sorts the parameter names and shuffles the points by its seed; a trial's
    ``grid_id`` indexes that shuffled list, which only the sampler holds.
    """
    sampler = make_sampler(definition)
    index = {tuple(values): grid_id for grid_id, values in enumerate(sampler._all_grids)}
    return [index[tuple(point[name] for name in sampler._param_names)]
            for point in definition.grid]


@dataclasses.dataclass
class PointStatus:
    grid_id: int
    params: dict[str, Any]
    complete: FrozenTrial | None = None
    running: FrozenTrial | None = None
    errors: int = 0  # attempts that failed with an error (not interruptions)
    forgiven: int = 0  # of those, errors before the last --retry-failed

    def state(self, max_attempts: int) -> str:
        if self.complete is not None:
            return "complete"
        if self.running is not None:
            return "running"
        return "failed" if self.errors - self.forgiven >= max_attempts else "pending"


def grid_status(study: optuna.Study, definition: StudyDefinition) -> list[PointStatus]:
    """Each point of the grid, in the definition's order, with its trials summed up."""
    points = [PointStatus(grid_id, params)
              for grid_id, params in zip(grid_ids(definition), definition.grid, strict=True)]
    by_id = {point.grid_id: point for point in points}
    for grid_id, errors in study.user_attrs.get(FORGIVEN, {}).items():
        if int(grid_id) in by_id:
            by_id[int(grid_id)].forgiven = errors
    for trial in study.get_trials(deepcopy=False):
        point = by_id.get(trial.system_attrs.get("grid_id"))
        if point is None:
            continue
        if trial.state == TrialState.COMPLETE and point.complete is None:
            point.complete = trial
        elif trial.state == TrialState.RUNNING:
            point.running = trial
        elif trial.state == TrialState.FAIL and \
                str(trial.user_attrs.get(FAILURE, "")).startswith("error"):
            point.errors += 1
    return points


def retry_failed(study: optuna.Study, definition: StudyDefinition) -> list[dict[str, Any]]:
    """Give every given-up point ``max_attempts`` new attempts; return their params.

    The failed trials stay as they are (the record is never rewritten); the study only
    notes how many of each point's errors no longer count.
    """
    points = grid_status(study, definition)
    failed = [point for point in points if point.state(definition.max_attempts) == "failed"]
    if failed:
        forgiven = {str(point.grid_id): point.forgiven for point in points if point.forgiven}
        forgiven.update({str(point.grid_id): point.errors for point in failed})
        study.set_user_attr(FORGIVEN, forgiven)
    return [point.params for point in failed]


def mark_failed(storage: Storage, trial_id: int, reason: str) -> bool:
    """Record why, then FAIL the trial; False if it had already finished."""
    try:
        storage.optuna.set_trial_user_attr(trial_id, FAILURE, reason)
        return storage.optuna.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def fail_dead_trials(study: optuna.Study, storage: Storage) -> list[int]:
    """FAIL every RUNNING trial whose worker is gone; return their numbers.

    A worker on this machine is dead when its process is; one elsewhere when its heartbeat
    is older than the grace period. So a rerun on one machine recovers at once.
    """
    stale = set(storage.optuna._get_stale_trial_ids(study._study_id))
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get("owner")
        alive = claims_module.is_alive(owner) if owner else None
        if alive is False or (alive is None and trial._trial_id in stale):
            how = "its process is gone" if alive is False else "its heartbeat stopped"
            if mark_failed(storage, trial._trial_id, f"worker died: {how}"):
                recovered.append(trial.number)
    return recovered


def _claim_in_flight(claim: claims_module.Claim, trials: list[FrozenTrial]) -> bool:
    """Whether the claim's attempt may still be running."""
    for trial in trials:
        if trial.system_attrs.get("claim") == [claim.grid_id, claim.attempt]:
            return trial.state == TrialState.RUNNING
    # Claimed but no trial yet: in flight while its owner lives (or, elsewhere, briefly).
    alive = claims_module.is_alive(claim.owner)
    return alive is True or (alive is None and time.time() - claim.claimed_at < GRACE_PERIOD)


def next_point(study: optuna.Study, storage: Storage, definition: StudyDefinition,
               owner: str) -> tuple[int, int] | None:
    """Claim a point that needs a run; return (grid_id, attempt), or None if none is free."""
    fail_dead_trials(study, storage)
    trials = study.get_trials(deepcopy=False)
    latest: dict[int, claims_module.Claim] = {}
    for claim in storage.claims.all(study._study_id):
        if claim.grid_id not in latest or claim.attempt > latest[claim.grid_id].attempt:
            latest[claim.grid_id] = claim
    for point in grid_status(study, definition):
        if point.state(definition.max_attempts) != "pending":
            continue
        claim = latest.get(point.grid_id)
        if claim is not None and _claim_in_flight(claim, trials):
            continue
        attempt = claim.attempt + 1 if claim is not None else 0
        if storage.claims.try_claim(study._study_id, point.grid_id, attempt, owner):
            return point.grid_id, attempt
    return None


def still_latest(study: optuna.Study, storage: Storage, grid_id: int, attempt: int) -> bool:
    """After creating its trial, a worker checks nobody took the point over meanwhile."""
    return all(claim.attempt <= attempt for claim in storage.claims.all(study._study_id)
               if claim.grid_id == grid_id)
