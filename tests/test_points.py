"""Grid accounting without training: every unit exactly once, states, the stored grid map.

Like Optuna's own ``test_grid.py``: real studies in temporary SQLite files, run by the real
worker loop, with an objective that returns a number instead of training a model.
"""

from __future__ import annotations

import datetime
import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from search import definition, signals
from search.errors import SearchError
from search.results import table
from search.study import claims, lifecycle, points, units
from search.study.claim_table import current_owner
from search.study.optuna_internals import study_id, trial_id
from search.worker import loop

GRID_TOML = """\
[search_space]
{first}
{second}

[training]
epochs = 1
hidden_units = [8]
validation_size = 10
seed = 0
max_attempts = 2
repeats = {repeats}
"""
RATES = "learning_rate = [0.001, 0.01]"
SIZES = "batch_size = [32, 64]"


def make_definition(repeats: int = 1, swapped: bool = False) -> definition.StudyDefinition:
    first, second = (SIZES, RATES) if swapped else (RATES, SIZES)
    text = GRID_TOML.format(first=first, second=second, repeats=repeats)
    return definition.parse(text, "grid", "grid.toml")


class Scores:
    """An objective that trains nothing: a fixed score per point and replicate."""

    def __init__(self, fail: set[tuple[int, int]] | None = None) -> None:
        self.fail = fail or set()
        self.calls: list[tuple[dict, int]] = []

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float:
        params = {name: trial.suggest_categorical(name, values) for name, values in
                  trial.study.user_attrs[points.BUDGET]["search_space"].items()}
        self.calls.append((params, unit.replicate))
        if (unit.point, unit.replicate) in self.fail:
            raise FloatingPointError("loss became nan")
        return params["learning_rate"] * 10 + params["batch_size"] / 1000 + unit.replicate / 100

    def forget(self, unit: points.Unit) -> None:
        pass


class _Enough(Exception):
    pass


def _stop_after(trials: int):
    """An on_trial_end listener that stops the worker once ``trials`` trials have ended."""
    ended = []

    def listener(trial: optuna.trial.FrozenTrial) -> None:
        ended.append(trial.number)
        if len(ended) == trials:
            raise _Enough

    return listener


def run(storage, grid_definition, objective=None, trials: int | None = None) -> optuna.Study:
    """Work through the study, or through its first ``trials`` trials."""
    study = lifecycle.open_study(storage, grid_definition)
    try:
        loop.work(storage, study, objective or Scores(),
                  on_trial_end=_stop_after(trials) if trials else None)
    except _Enough:
        pass
    return study


def complete_units(study: optuna.Study) -> list[tuple[tuple, int]]:
    return sorted((tuple(sorted(t.params.items())), t.user_attrs[points.REPLICATE])
                  for t in study.get_trials() if t.state == TrialState.COMPLETE)


def test_every_unit_completes_exactly_once_with_replicates(storage) -> None:
    study = run(storage, make_definition(repeats=3))
    done = complete_units(study)
    assert len(done) == len(set(done)) == 12  # 4 points x 3 replicates
    assert {replicate for _, replicate in done} == {0, 1, 2}
    assert units.states(study) == [points.COMPLETE] * 12


def test_the_objective_gets_the_params_of_the_claimed_unit(storage) -> None:
    objective = Scores()
    study = run(storage, make_definition(repeats=2), objective)
    for trial in study.get_trials():
        point, replicate = trial.system_attrs[points.UNIT]
        assert trial.params == units.stored_grid(study)[point]
        assert trial.user_attrs[points.REPLICATE] == replicate
    assert len(objective.calls) == 8


def test_every_trial_records_its_start_and_so_its_duration(storage) -> None:
    study = run(storage, make_definition())
    for trial in study.get_trials():
        assert isinstance(trial.datetime_start, datetime.datetime)
        assert trial.duration is not None and trial.duration >= datetime.timedelta(0)


def test_a_rerun_adds_nothing(storage) -> None:
    study = run(storage, make_definition(repeats=2))
    before = [(t.number, t.params, t.value) for t in study.get_trials()]
    objective = Scores()
    again = run(storage, make_definition(repeats=2), objective)
    assert objective.calls == []
    assert [(t.number, t.params, t.value) for t in again.get_trials()] == before


def test_raising_repeats_runs_only_the_new_replicates(storage) -> None:
    study = run(storage, make_definition(repeats=1))
    before = [(t.number, t.params, t.value, t.user_attrs) for t in study.get_trials()]
    grown = run(storage, make_definition(repeats=3))
    trials = grown.get_trials()
    assert [(t.number, t.params, t.value, t.user_attrs) for t in trials[:4]] == before
    assert sorted(t.user_attrs[points.REPLICATE] for t in trials[4:]) == [1] * 4 + [2] * 4
    assert len(complete_units(grown)) == 12


def test_lowering_repeats_is_refused_in_one_line(storage) -> None:
    run(storage, make_definition(repeats=2))
    with pytest.raises(SearchError, match="already runs 2 replicates") as raised:
        lifecycle.open_study(storage, make_definition(repeats=1))
    assert "\n" not in str(raised.value)


def test_a_changed_budget_is_refused(storage) -> None:
    run(storage, make_definition())
    changed = make_definition()
    changed = definition.parse(changed.source.replace("epochs = 1", "epochs = 2"), "grid", "x")
    with pytest.raises(SearchError, match="another epochs"):
        lifecycle.open_study(storage, changed)


def test_a_grid_listed_in_another_order_continues_exactly(storage) -> None:
    # Half the units run; then the definition lists its parameters the other way round, so
    # its grid comes in another order. Units are identified through the map stored on the
    # study, so each point still runs once.
    run(storage, make_definition(), trials=2)
    study = run(storage, make_definition(swapped=True))
    done = complete_units(study)
    assert len(done) == len(set(done)) == 4
    assert len(study.get_trials()) == 4


def test_a_damaged_grid_map_is_refused(storage) -> None:
    study = run(storage, make_definition(), trials=1)
    grid = units.stored_grid(study)
    study.set_user_attr(points.GRID, [grid[0], grid[0], grid[2], grid[3]])
    with pytest.raises(SearchError, match="grid map does not match"):
        lifecycle.open_study(storage, make_definition())


def test_a_study_with_trials_but_no_stored_map_is_refused(storage) -> None:
    study = run(storage, make_definition(), trials=1)
    storage.rdb.set_study_user_attr(study_id(study), points.GRID, None)
    with pytest.raises(SearchError, match="stored no grid map"):
        lifecycle.open_study(storage, make_definition())


def test_an_error_leaves_the_unit_retrying_then_given_up(storage) -> None:
    study = run(storage, make_definition(), Scores(fail={(0, 0)}), trials=1)
    assert units.states(study)[0] == points.RETRYING
    # The report says the same as the worker loop, which claims it again.
    rows, _ = table.point_rows(study)
    params = units.stored_grid(study)[0]
    assert [row.state for row in rows if row.summary.params == params] == [points.RETRYING]
    assert claims.claim(study, storage, current_owner()).unit.point == 0


def test_given_up_after_max_attempts_and_forgiven_by_retry(storage) -> None:
    study = run(storage, make_definition(), Scores(fail={(0, 0)}))
    assert units.states(study) == [points.GIVEN_UP] + [points.COMPLETE] * 3
    assert [unit.point for unit in units.retry_given_up(study)] == [0]
    assert units.states(study)[0] == points.PENDING
    run(storage, make_definition())
    assert units.states(study) == [points.COMPLETE] * 4
    assert [t.state for t in study.get_trials()].count(TrialState.FAIL) == 2


def test_an_interruption_costs_no_attempt(storage) -> None:
    study = lifecycle.open_study(storage, make_definition())
    claimed = claims.claim(study, storage, current_owner())
    assert units.states(study)[claimed.unit.id] == points.RUNNING
    claims.mark_failed(storage, trial_id(claimed.trial), "interrupted after epoch 0: resumed")
    assert units.states(study)[claimed.unit.id] == points.PENDING


def test_a_dead_local_worker_is_failed_and_its_unit_reclaimed(storage) -> None:
    study = lifecycle.open_study(storage, make_definition())
    host, boot, _, _ = current_owner().split("/")
    dead = f"{host}/{boot}/{2**22 + os.getpid() % 1000}/1"  # no such process
    # As a worker that then died made it: claimed, its trial RUNNING.
    taken = claims.claim(study, storage, dead)
    assert claims.fail_dead_trials(study, storage) == [taken.trial.number]
    again = claims.claim(study, storage, current_owner())
    assert again.unit == taken.unit
    assert storage.rdb.get_trial(trial_id(again.trial)).system_attrs[points.CLAIM] == \
        [taken.unit.id, 1]


def test_two_claims_of_one_unit_attempt_one_wins(storage) -> None:
    study = lifecycle.open_study(storage, make_definition())
    won = [storage.claims.try_claim(study_id(study), 3, 0, f"w{i}") for i in range(3)]
    assert won == [True, False, False]


def test_unit_ids_stay_when_replicates_grow() -> None:
    grid = make_definition().grid
    one, three = units.grid_units(grid, 1), units.grid_units(grid, 3)
    assert [unit.id for unit in one] == [unit.id for unit in three[:4]]
    assert sorted(unit.id for unit in three) == list(range(12))


def test_replicate_seeds_are_shared_by_points_and_differ_between_replicates() -> None:
    grid_definition = make_definition()
    seeds = [grid_definition.seed_for(replicate) for replicate in range(4)]
    assert seeds[0] == grid_definition.seed
    assert len(set(seeds)) == 4
    assert seeds == [make_definition().seed_for(replicate) for replicate in range(4)]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_the_outcome_write_waits_for_the_write_then_stops(number) -> None:
    written = []
    before = signal.getsignal(number)
    with pytest.raises(KeyboardInterrupt):
        with signals.held_interrupts():
            os.kill(os.getpid(), number)
            time.sleep(0.05)  # the handler runs here, in the middle of the "write"
            written.append("outcome")
    assert written == ["outcome"]
    assert signal.getsignal(number) is before


def _chosen(path: str) -> dict[str, dict[str, str]]:
    return {"a1": {"path": path, "why": "the rule", "layers": "Dense x2"}}


def test_a_studys_first_path_choice_is_kept() -> None:
    study = optuna.create_study()
    first = lifecycle.record_paths(study, _chosen("xla"))
    assert first == _chosen("xla") and study.user_attrs[points.PATHS] == _chosen("xla")
    again = lifecycle.record_paths(study, {**_chosen("graph"), "b2": _chosen("fit")["a1"]})
    assert again["a1"] == {**_chosen("xla")["a1"], "recorded": True}  # the stored one wins
    assert again["b2"]["path"] == "fit" and "recorded" not in again["b2"]  # a new one is added
    assert set(study.user_attrs[points.PATHS]) == {"a1", "b2"}


def test_a_study_an_earlier_release_started_keeps_model_fit() -> None:
    """Its [model] trials trained with model.fit and recorded no choice: later trials must
    give numbers of the same path."""
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={points.PATH: "fit"}))
    kept = lifecycle.record_paths(study, _chosen("xla"))
    assert kept["a1"]["path"] == "fit" and "earlier trials" in kept["a1"]["why"]
    assert study.user_attrs[points.PATHS]["a1"]["path"] == "fit"
