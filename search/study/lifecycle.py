"""A study's life: created with its budget and grid map, checked on every open, deleted on
``--fresh``.

A study is continued only under the budget it was started with, and units are always
identified through the grid map stored on it: a changed grid, epoch count or model would
otherwise mix trials of two different searches, and a changed grid order would credit
trials to the wrong points.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.definition import StudyDefinition
from search.errors import SearchError
from search.study import points
from search.study.storage import Storage


class ClaimedGridSampler(optuna.samplers.GridSampler):
    """The study's GridSampler, for trials whose point a claim has already fixed.

    Every trial is created with its parameters set, so the sampler never picks one:
    ``before_trial`` would write a grid id of its own numbering onto the trial (and warn
    that the grid is exhausted from the second replicate on). ``after_trial`` would call
    ``study.stop()``, which is only allowed inside ``optimize``; the worker loop decides
    when the grid is done instead.
    """

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        return

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        return


def _sampler(definition: StudyDefinition) -> optuna.samplers.BaseSampler:
    """The sampler a study opens with. A grid's never picks (its claims do); a sampled
    study's is replaced per search unit by that unit's (``search.study.claims``)."""
    if definition.search.sampled:
        return optuna.samplers.RandomSampler(seed=definition.search.seed)
    # Every worker builds the same sampler: the same value lists, the same seed.
    return ClaimedGridSampler(definition.search_space, seed=definition.seed)


# What a stored study may raise but never lower: its trials, confirmed configurations and
# replicates (lowering would hide trials that ran).
def _growing(definition: StudyDefinition) -> dict[str, int]:
    grows = {points.REPEATS: definition.repeats}
    if definition.search.sampled:
        grows |= {points.TRIALS: definition.search.trials or 0,
                  points.CONFIRM: definition.search.confirm}
    return grows


def open_study(storage: Storage, definition: StudyDefinition) -> optuna.Study:
    """Load the study, or create it with its definition, budget and grid map stored on it."""
    study = optuna.create_study(study_name=definition.name, storage=storage.rdb,
                                direction=definition.direction, sampler=_sampler(definition),
                                load_if_exists=True)
    attrs = study.user_attrs
    budget = points.normalised(definition.budget())
    where = f"study '{definition.name}' in {storage.display_url}"
    if points.BUDGET not in attrs:
        study.set_user_attr(points.BUDGET, budget)
        study.set_user_attr(points.DEFINITION, definition.source)
        if not definition.search.sampled:
            study.set_user_attr(points.GRID, points.normalised(definition.grid))
        for key, value in _growing(definition).items():
            study.set_user_attr(key, value)
        study.set_user_attr(points.MAX_ATTEMPTS, definition.max_attempts)
        return study
    if attrs[points.BUDGET] != budget:
        stored = attrs[points.BUDGET]
        # Either side may lack a key: the model keys enter only where they leave the seed's.
        changed = sorted(key for key in stored.keys() | budget.keys()
                         if stored.get(key) != budget.get(key))
        raise SearchError(
            f"{where} was started with another {', '.join(changed)}; give the changed study "
            "a new name (a new studies/*.toml) or pass --fresh to discard the stored trials")
    if not definition.search.sampled:
        _check_grid(study, points.normalised(definition.grid), where)
    for key, value in _growing(definition).items():
        _grow(study, key, value, where)
    if attrs.get(points.MAX_ATTEMPTS) != definition.max_attempts:
        study.set_user_attr(points.MAX_ATTEMPTS, definition.max_attempts)
    return study


_GROWING_WORDS = {points.REPEATS: "replicates per point", points.TRIALS:
                  "search trials", points.CONFIRM: "confirmed configurations"}


def _grow(study: optuna.Study, key: str, value: int, where: str) -> None:
    """Raise a stored count to ``value`` (only what is new will run); never lower it."""
    stored = study.user_attrs.get(key, 1 if key == points.REPEATS else 0)
    if value < stored:
        name = "repeats" if key == points.REPEATS else key
        raise SearchError(
            f"{where} already runs {stored} {_GROWING_WORDS[key]}; {name} = {value} would "
            f"hide trials: raise it or leave it at {stored} (or pass --fresh to start over)")
    if value > stored:
        study.set_user_attr(key, value)


def record_paths(study: optuna.Study,
                 chosen: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each architecture trains on the path its study first chose for it: the stored
    choices win over ``chosen`` (this run's), and new architectures are added. Returns the
    choices in force for ``chosen``'s architectures, each marked ``"recorded"`` if stored
    before. A study an earlier release started (trials, no record) keeps ``model.fit``."""
    stored = study.user_attrs.get(points.PATHS)
    if stored is None:
        stored = {}
        earlier = {trial.user_attrs.get(points.PATH) for trial in study.get_trials(
            deepcopy=False)} - {None}
        if earlier == {"fit"}:  # started by a release whose [model] trials all used fit
            chosen = {key: {**choice, "path": "fit", "why": "the path of the study's earlier "
                            "trials"} for key, choice in chosen.items()}
    new = {key: choice for key, choice in chosen.items() if key not in stored}
    if new:
        study.set_user_attr(points.PATHS, {**stored, **new})
    return {key: {**stored[key], "recorded": True} if key in stored else choice
            for key, choice in chosen.items()}


def record_fingerprints(study: optuna.Study, fingerprints: dict[str, str],
                        where: str) -> None:
    """A study stays one experiment: the hashes of its builder's module and of its data,
    stored by its first run, must match every later run's."""
    stored = study.user_attrs.get(points.FINGERPRINTS)
    if stored is None:
        if fingerprints:
            study.set_user_attr(points.FINGERPRINTS, fingerprints)
        return
    what = {"model": "builder code", "data": "data"}
    changed = [what[key] for key in sorted(fingerprints)
               if stored.get(key) != fingerprints[key]]
    if changed:
        raise SearchError(f"{where} was started with other {' and '.join(changed)}; give the "
                          "changed study a new name (a new studies/*.toml) or pass --fresh to "
                          "discard the stored trials")


def _check_grid(study: optuna.Study, grid: list[dict], where: str) -> None:
    """The stored map must hold exactly the definition's points; its order is what counts."""
    stored = study.user_attrs.get(points.GRID)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise SearchError(
                f"{where} was made by a version that stored no grid map, so its trials "
                "cannot be matched to points safely; pass --fresh to start it over (the "
                "report still reads it)")
        study.set_user_attr(points.GRID, grid)
        return
    key = points.canonical
    if not isinstance(stored, list) or sorted(map(key, stored)) != sorted(map(key, grid)) \
            or len({key(point) for point in stored}) != len(stored):
        raise SearchError(
            f"{where}: its stored grid map does not match its definition's grid (the "
            "storage was edited by hand?); pass --fresh to start over")


def delete_study(storage: Storage, name: str) -> bool:
    """Remove a study and its claims; False if there was none."""
    try:
        study_id = storage.rdb.get_study_id_from_name(name)
    except KeyError:
        return False
    storage.claims.delete_study(study_id)
    optuna.delete_study(study_name=name, storage=storage.rdb)
    return True


def is_stored(storage: Storage, name: str) -> bool:
    try:
        storage.rdb.get_study_id_from_name(name)
    except KeyError:
        return False
    return True
