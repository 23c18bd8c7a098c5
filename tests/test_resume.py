"""Interrupted studies resume exactly: the real CLI killed mid-trial, then rerun."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import write_definition
from tests.helpers import (
    complete_by_params,
    run_to_end,
    running_after_epoch,
    start_run,
    trials,
    wait_for,
)

pytestmark = pytest.mark.slow

EPOCHS = 4
GRID = 3  # learning rates x one batch size


@pytest.fixture
def study_setup(tmp_path: Path) -> tuple[str, Path, str]:
    # Enough steps per epoch (30,000 images, batch 16) that a trial is still running a
    # moment after it reports an epoch, so the kill lands mid-trial.
    write_definition(tmp_path / "studies", "resume", learning_rates=(0.0001, 0.001, 0.01),
                     batch_sizes=(16,), epochs=EPOCHS, train_size=30_000,
                     validation_size=1000)
    return "resume", tmp_path / "studies", f"sqlite:///{tmp_path}/resume.db"


def snapshot(trial) -> tuple:
    return (trial.number, trial.params, trial.value, trial.user_attrs)


def assert_finished_exactly_once(name: str, url: str) -> None:
    every = trials(name, url)
    assert not [t.number for t in every if t.state == TrialState.RUNNING]
    complete = complete_by_params(name, url)
    assert len(complete) == GRID
    for trial in complete.values():
        history = trial.user_attrs["history"]
        assert [len(values) for values in history.values()] == [EPOCHS] * 4
        assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))


def kill_mid_trial(name: str, url: str, studies: Path, mnist_dir: Path, how: signal.Signals,
                   skip: int = 0):
    process = start_run(name, url, studies, data_dir=mnist_dir)
    victim = wait_for(running_after_epoch(name, url, 2, skip), process)
    process.send_signal(how)
    if how == signal.SIGINT:
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)  # a second Ctrl-C during cleanup
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr, victim


def test_sigkill_then_rerun_continues_from_checkpoint(study_setup, mnist_dir):
    name, studies, url = study_setup
    code, _, victim = kill_mid_trial(name, url, studies, mnist_dir, signal.SIGKILL, skip=1)
    assert code == -signal.SIGKILL
    before = {t.number: snapshot(t) for t in trials(name, url) if t.state.is_finished()}
    assert [t.state for t in trials(name, url) if t.number == victim.number] == \
        [TrialState.RUNNING]  # the kill landed mid-trial: left RUNNING, as a crash leaves it

    rerun = run_to_end(name, url, studies, data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr

    assert_finished_exactly_once(name, url)
    after = {t.number: t for t in trials(name, url)}
    for number, old in before.items():
        assert snapshot(after[number]) == old  # finished trials untouched
    dead = after[victim.number]
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["failure"].startswith("worker died")
    resumed = complete_by_params(name, url)[tuple(sorted(victim.params.items()))]
    assert resumed.user_attrs["resumed_from_epoch"] >= 2
    # The history is continuous: the epochs before the kill are those the victim reported.
    for epoch in range(1, resumed.user_attrs["resumed_from_epoch"] + 1):
        assert resumed.intermediate_values[epoch] == dead.intermediate_values[epoch]
    checkpoints = Path(url.removeprefix("sqlite:///")).parent / "resume.artifacts/checkpoints"
    assert not [path for path in checkpoints.rglob("*") if path.is_file()]  # cleaned up


def test_ctrl_c_twice_records_interruption_and_rerun_finishes(study_setup, mnist_dir):
    name, studies, url = study_setup
    code, stderr, victim = kill_mid_trial(name, url, studies, mnist_dir, signal.SIGINT)
    assert code == 130
    assert "run the same command" in stderr.lower()
    assert "Traceback" not in stderr
    interrupted = [t for t in trials(name, url) if t.number == victim.number][0]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["failure"].startswith("interrupted")

    rerun = run_to_end(name, url, studies, data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert_finished_exactly_once(name, url)


def test_killed_twice_in_a_row(study_setup, mnist_dir):
    name, studies, url = study_setup
    kill_mid_trial(name, url, studies, mnist_dir, signal.SIGKILL)
    count = len(trials(name, url))
    kill_mid_trial(name, url, studies, mnist_dir, signal.SIGKILL, skip=count)
    rerun = run_to_end(name, url, studies, data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert_finished_exactly_once(name, url)
    failures = [t.user_attrs["failure"] for t in trials(name, url)
                if t.state == TrialState.FAIL]
    assert len(failures) == 2 and all(f.startswith("worker died") for f in failures)
