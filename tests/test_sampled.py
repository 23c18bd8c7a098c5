"""Sampled studies without training: exactly ``trials`` search units, each configuration
fixed at its first claim, a confirm stage run exactly once, and a verdict that reads the
confirm trials alone.

Real studies in temporary SQLite files, run by the real worker loop and Optuna's real
samplers, with an objective that returns a number instead of training a model.
"""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest
from optuna.trial import TrialState

from search import definition
from search.errors import SearchError
from search.results import table
from search.study import claims, lifecycle, points, samplers, units
from search.study.claim_table import current_owner
from search.study.optuna_internals import trial_id
from search.worker import loop
from tests.helpers import scratch_storage

SAMPLED = """\
[search_space]
learning_rate = {{low = 0.0001, high = 0.1, log = true}}
dropout = {{low = 0.0, high = 0.5, step = 0.05}}
batch_size = [32, 64, 128]

[search]
sampler = "{sampler}"
trials = {trials}
confirm = {confirm}
{options}

[training]
epochs = 1
hidden_units = [8]
validation_size = 10
repeats = {repeats}
"""


def make_definition(sampler: str = "tpe", trials: int = 8, confirm: int = 2,
                    repeats: int = 2, options: str = "") -> definition.StudyDefinition:
    text = SAMPLED.format(sampler=sampler, trials=trials, confirm=confirm, repeats=repeats,
                          options=options or ("sampler_options = {n_startup_trials = 3}"
                                              if sampler == "tpe" else ""))
    return definition.parse(text, "sampled", "sampled.toml")


@dataclasses.dataclass
class Scores:
    """A score from the configuration (best near learning rate 0.01), plus ``planted`` on
    search trials and a seed effect on confirm ones: what a trained model would return."""

    planted: float = 0.0
    calls: list = dataclasses.field(default_factory=list)

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float:
        self.calls.append((unit.stage, unit.id, dict(trial.params)))
        score = 1 - abs(trial.params["learning_rate"] - 0.01) - trial.params["dropout"] / 10
        if unit.stage == points.SEARCH_STAGE:
            return score + self.planted
        return score + 0.001 * unit.seed_replicate

    def forget(self, unit: points.Unit) -> None:
        pass


def run(storage, sampled: definition.StudyDefinition, objective=None) -> optuna.Study:
    study = lifecycle.open_study(storage, sampled)
    loop.work(storage, study, objective or Scores())
    return study


def by_stage(study: optuna.Study, stage: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.user_attrs.get(points.STAGE) == stage]


def test_exactly_trials_search_units_then_each_confirm_unit_once(storage) -> None:
    study = run(storage, make_definition(trials=8, confirm=2, repeats=3))
    search, confirm = by_stage(study, "search"), by_stage(study, "confirm")
    assert len(search) == 8 and all(t.state == TrialState.COMPLETE for t in search)
    assert sorted(t.system_attrs[points.UNIT][0] for t in search) == list(range(8))
    # The two best distinct configurations by search value, three fresh seeds each.
    ranked = sorted(search, key=lambda t: -t.value)
    chosen = {json.dumps(t.params, sort_keys=True) for t in ranked[:2]}
    assert {json.dumps(t.params, sort_keys=True) for t in confirm} == chosen
    assert len(confirm) == 6 and len({t.system_attrs[points.CLAIM][0] for t in confirm}) == 6
    assert sorted(t.user_attrs[points.REPLICATE] for t in confirm) == [0, 0, 1, 1, 2, 2]
    assert set(units.states(study)) == {points.COMPLETE}
    assert len(study.get_trials()) == 14  # nothing ran twice


def test_an_interrupted_search_unit_keeps_its_configuration(storage) -> None:
    study = lifecycle.open_study(storage, make_definition(trials=3, confirm=0))
    first = claims.claim(study, storage, current_owner())
    claims.mark_failed(storage, trial_id(first.trial), "interrupted after epoch 0: resumed")
    objective = Scores()
    run(storage, make_definition(trials=3, confirm=0), objective)
    again = [params for stage, unit, params in objective.calls if unit == first.unit.id]
    assert again == [first.unit.params] and len(first.unit.params) == 3
    # The interrupted attempt was never a result: only FAIL with its reason.
    assert study.get_trials()[0].state == TrialState.FAIL
    assert len(objective.calls) == 3


def test_random_and_qmc_configurations_depend_on_seed_and_unit_alone() -> None:
    space = make_definition().search_space
    for sampler in ("random", "qmc"):
        search = {"sampler": sampler, "seed": 7, "sampler_options": {}}
        first = [samplers.fixed_configuration(search, space, unit) for unit in range(6)]
        backwards = [samplers.fixed_configuration(search, space, unit)
                     for unit in reversed(range(6))][::-1]
        assert first == backwards and len({json.dumps(c) for c in first}) > 1
        for config in first:
            assert 0.0001 <= config["learning_rate"] <= 0.1
            assert config["dropout"] in {round(0.05 * k, 12) for k in range(11)}
            assert config["batch_size"] in (32, 64, 128)


def test_tpe_with_one_worker_samples_the_same_configurations_twice(tmp_path) -> None:
    found = []
    for copy in ("a", "b"):
        study = run(scratch_storage(f"sqlite:///{tmp_path}/{copy}.db"),
                    make_definition(trials=10, confirm=0))
        found.append([t.params for t in by_stage(study, "search")])
    assert found[0] == found[1] and len({json.dumps(p) for p in found[0]}) == 10


def test_planted_search_values_do_not_move_the_verdict(tmp_path) -> None:
    verdicts = []
    for planted in (0.0, 5.0):
        study = run(scratch_storage(f"sqlite:///{tmp_path}/{planted}.db"),
                    make_definition(sampler="random", trials=8, confirm=3),
                    Scores(planted=planted))
        document = json.loads(table.to_json(study))
        verdicts.append(document["verdict"])
        assert document["search"]["complete"] == 8
        assert all(point["mean"] < 2 for point in document["points"])  # confirm values alone
    assert verdicts[0] == verdicts[1]


def test_raising_trials_adds_search_units_and_keeps_what_was_confirmed(storage) -> None:
    study = run(storage, make_definition(sampler="random", trials=4, confirm=1))
    confirmed = study.user_attrs[points.CONFIRMED]
    before = [(t.number, t.params, t.value) for t in study.get_trials()]
    grown = run(storage, make_definition(sampler="random", trials=8, confirm=2))
    trials = grown.get_trials()
    assert [(t.number, t.params, t.value) for t in trials[:len(before)]] == before
    assert len(by_stage(grown, "search")) == 8
    assert grown.user_attrs[points.CONFIRMED][:1] == confirmed
    assert len(by_stage(grown, "confirm")) == 2 * len(grown.user_attrs[points.CONFIRMED])
    with pytest.raises(SearchError, match="already runs 8 search trials"):
        lifecycle.open_study(storage, make_definition(sampler="random", trials=6, confirm=2))
