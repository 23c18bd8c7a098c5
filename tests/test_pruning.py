"""Pruning without training: which trials a pruner sees, what a new attempt inherits, and
every malformed pruner as one line. Real studies in temporary SQLite files, real Optuna
pruners; the trials report values instead of training."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import definition
from search.errors import SearchError
from search.study import claims, lifecycle, points, pruning
from search.study.claim_table import current_owner
from search.study.optuna_internals import trial_id
from tests.test_sampled import SAMPLED


def make_definition(pruner: str, options: str = "", trials: int = 6,
                    sampler: str = "random") -> definition.StudyDefinition:
    text = SAMPLED.format(sampler=sampler, trials=trials, confirm=1, repeats=1, options=(
        f'pruner = "{pruner}"\n' + (f"pruner_options = {{{options}}}" if options else "")))
    return definition.parse(text.replace("epochs = 1", "epochs = 9"), "pruned", "p.toml")


def report(storage, trial: optuna.Trial, values: list[float]) -> None:
    for step, value in enumerate(values, start=1):
        trial.report(value, step)


def test_failed_attempts_and_confirm_runs_are_invisible_to_the_pruner(storage) -> None:
    study = lifecycle.open_study(storage, make_definition("median", "n_startup_trials = 1"))
    pruner = pruning.make(study.user_attrs[points.BUDGET])
    first = claims.claim(study, storage, current_owner())
    report(storage, first.trial, [0.9, 0.9])
    study.tell(first.trial, 0.9)
    # An interrupted attempt of another unit that did very well: it must not compete.
    ghost = claims.claim(study, storage, current_owner())
    report(storage, ghost.trial, [0.99, 0.99])
    claims.mark_failed(storage, trial_id(ghost.trial), "interrupted after epoch 2")
    again = claims.claim(study, storage, current_owner())
    assert again.unit.id == ghost.unit.id  # the same unit, a new attempt
    report(storage, again.trial, [0.95])
    view = pruning._UnitView(study, storage.rdb, None)
    assert [t.number for t in view.get_trials()] == [first.trial.number, again.trial.number]
    # Against the complete trial alone (0.9 at step 1), 0.95 survives and 0.5 is pruned.
    assert not pruning.should_prune(pruner, study, storage.rdb, again.trial)
    worse = claims.claim(study, storage, current_owner())
    report(storage, worse.trial, [0.5])
    assert pruning.should_prune(pruner, study, storage.rdb, worse.trial)


def test_a_new_attempt_inherits_its_units_rungs(storage) -> None:
    study = lifecycle.open_study(storage, make_definition("hyperband", "min_resource = 1"))
    first = claims.claim(study, storage, current_owner())
    report(storage, first.trial, [0.8, 0.85])
    pruner = pruning.make(study.user_attrs[points.BUDGET])
    pruning.should_prune(pruner, study, storage.rdb, first.trial)  # judged at a rung
    rungs = pruning.inherited_rungs([storage.rdb.get_trial(trial_id(first.trial))])
    assert rungs, "successive halving recorded no rung"
    claims.mark_failed(storage, trial_id(first.trial), "interrupted after epoch 2")
    again = claims.claim(study, storage, current_owner())
    assert again.unit.id == first.unit.id and again.unit.params == first.unit.params
    assert pruning.inherited_rungs([storage.rdb.get_trial(trial_id(again.trial))]) == rungs


def test_hyperbands_bracket_is_the_units_not_the_trials() -> None:
    budgets = [9, 5, 3]
    brackets = {unit: pruning._bracket("s", unit, budgets) for unit in range(40)}
    assert set(brackets.values()) == {0, 1, 2}  # every bracket is used
    assert all(pruning._bracket("s", unit, budgets) == brackets[unit] for unit in range(40))


def test_a_pruned_unit_has_ended_and_counts_against_the_budget(storage) -> None:
    study = lifecycle.open_study(storage, make_definition("median", trials=2))
    first = claims.claim(study, storage, current_owner())
    report(storage, first.trial, [0.1])
    study.tell(first.trial, state=TrialState.PRUNED)
    second = claims.claim(study, storage, current_owner())
    assert second.unit.id == 1  # the pruned unit is not claimed again
    from search.study import units
    assert units.unit_status(study)[0].state(3) == points.PRUNED


GRID = definition.load("mnist").source
SAMPLED_FILE = make_definition("none").source
MALFORMED = [
    ("unknown pruner", SAMPLED_FILE.replace('pruner = "none"', 'pruner = "asha"'),
     "search.pruner"),
    ("unknown pruner option", SAMPLED_FILE.replace(
        'pruner = "none"', 'pruner = "hyperband"\npruner_options = {min_resources = 1}'),
     "search.pruner_options.min_resources"),
    ("percentile without its percentile", SAMPLED_FILE.replace(
        'pruner = "none"', 'pruner = "percentile"'), "search.pruner_options.percentile"),
    ("a pruner in a grid", GRID + '[search]\npruner = "median"\n', "search.pruner"),
]


@pytest.mark.parametrize(("text", "key"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_a_malformed_pruner_is_one_line(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(SearchError) as caught:
        definition.load("broken", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and key in message
