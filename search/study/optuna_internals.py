"""Optuna's private state that the project needs, reached here and nowhere else.

Optuna exposes no public way to reach these. Each accessor says what breaks if a release
renames what it uses; tests/test_points.py and tests/test_workers.py exercise every one, so
such a release fails the tests at once instead of miscounting a study.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial


def study_id(study: optuna.Study) -> int:
    """The study's row id: claims are keyed by it. (``Study._study_id``; a rename breaks
    claiming, and every run would fail at once with AttributeError.)"""
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's row id, which storage calls take. (``_trial_id``; same failure mode.)"""
    return trial._trial_id


def stale_trial_ids(rdb: optuna.storages.RDBStorage, study: optuna.Study) -> set[int]:
    """RUNNING trials whose heartbeat is older than the grace period.

    (``RDBStorage._get_stale_trial_ids``: Optuna's own ``fail_stale_trials`` would also FAIL
    them, but it cannot tell a live local worker from a dead one by its process; if the
    method goes, foreign workers' dead trials are no longer recovered and a test fails.)
    """
    return set(rdb._get_stale_trial_ids(study_id(study)))


def create_running_trial(rdb: optuna.storages.RDBStorage, study: optuna.Study,
                         template: FrozenTrial) -> optuna.Trial:
    """A RUNNING trial made from ``template`` (params, attributes and start time set).

    ``Study.ask`` would let the sampler choose the point; here the claim has chosen it.
    (``RDBStorage.create_new_trial(template_trial=)`` is public; ``Trial(study, id)`` is
    documented as internal but stable since Optuna 1.x.)
    """
    new_id = rdb.create_new_trial(study_id(study), template_trial=template)
    return optuna.Trial(study, new_id)
