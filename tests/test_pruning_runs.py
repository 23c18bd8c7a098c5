"""Pruning trained for real, through the command: two workers end exactly ``trials`` search
trials with some pruned (their history up to where they stopped, their checkpoints gone); a
run killed mid-trial under Hyperband resumes each interrupted unit in its bracket, with the
rungs it had passed, never judged at them again."""

from __future__ import annotations

import os
import signal

import pytest
from optuna.trial import TrialState

from search.study import pruning
from tests.helpers import run_to_end, running_after_epoch, start_run, trials, wait_for
from tests.test_sampled_runs import write

pytestmark = pytest.mark.slow

def with_pruner(pruner: str, options: str, sampler_options: str = "") -> str:
    return f'{sampler_options}\npruner = "{pruner}"\npruner_options = {{{options}}}'


def test_two_workers_end_exactly_their_trials_with_some_pruned(tmp_path, mnist_dir):
    studies = write(tmp_path / "studies", "pruned", sampler="tpe", trials=6, confirm=1,
                    options=with_pruner("percentile", "percentile = 75.0, n_startup_trials = 1",
                                   "sampler_options = {n_startup_trials = 2}"),
                    epochs=3, train_size=600)
    url = f"sqlite:///{tmp_path}/pruned.db"
    result = run_to_end("pruned", url, studies, "--workers", "2", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr
    search = [t for t in trials("pruned", url) if t.user_attrs.get("stage") == "search"]
    ended = [t for t in search if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(t.system_attrs["unit"][0] for t in ended) == list(range(6))
    pruned = [t for t in ended if t.state == TrialState.PRUNED]
    assert pruned, "nothing was pruned"
    for trial in pruned:
        epoch = trial.user_attrs["pruned_at_epoch"]
        assert 1 <= epoch < 3 and trial.user_attrs["pruner"] == "percentile"
        assert len(trial.user_attrs["history"]["val_accuracy"]) == epoch
        assert max(trial.intermediate_values) == epoch
    assert not list((tmp_path / "studies" / "pruned.artifacts").rglob("search-*/latest.json"))
    confirm = [t for t in trials("pruned", url) if t.user_attrs.get("stage") == "confirm"]
    assert [t.state for t in confirm] == [TrialState.COMPLETE] * 2  # never pruned
    assert f"{len(pruned)} pruned" in result.stdout


def test_a_killed_hyperband_study_resumes_each_unit_past_its_rungs(tmp_path, mnist_dir):
    studies = write(tmp_path / "studies", "band", sampler="random", trials=3, confirm=0,
                    options=with_pruner("hyperband", "min_resource = 1"),
                    epochs=3, train_size=20_000)
    url = f"sqlite:///{tmp_path}/band.db"
    run = start_run("band", url, studies, "--workers", "2", data_dir=mnist_dir)
    wait_for(running_after_epoch("band", url, 2), run)
    os.killpg(run.pid, signal.SIGKILL)  # the run and both its workers, mid-trial
    run.wait()
    before = {t.system_attrs["unit"][0]: t for t in trials("band", url)
              if t.state == TrialState.RUNNING and 2 in t.intermediate_values}

    rerun = run_to_end("band", url, studies, "--workers", "2", data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    ended = [t for t in trials("band", url) if t.state in (TrialState.COMPLETE,
                                                           TrialState.PRUNED)]
    assert sorted(t.system_attrs["unit"][0] for t in ended) == [0, 1, 2]
    for unit, killed in before.items():
        after = next(t for t in ended if t.system_attrs["unit"][0] == unit)
        assert after.user_attrs["resumed_from_epoch"] >= 2
        rungs = pruning.inherited_rungs([killed])
        # Its rungs came along unchanged: it was not judged again at a step it had passed.
        assert {k: after.system_attrs[k] for k in rungs} == rungs
        assert after.intermediate_values[1] == killed.intermediate_values[1]
