"""Failed trials, foreign workers and storage faults: bounded retries, one line, no loss."""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search import definition, run
from search.results import table
from search.study import claims, lifecycle, points, units
from search.study.optuna_internals import study_id, trial_id
from search.study.storage import open_storage
from search.training.compiled import CompiledTraining
from search.worker import loop
from search.worker.objective import Objective
from search.worker.paths import CompiledPath
from tests.conftest import REPO, write_definition

pytestmark = pytest.mark.slow


def load_tiny(tmp_path: Path, **kwargs) -> definition.StudyDefinition:
    write_definition(tmp_path, "tiny", **kwargs)
    return definition.load("tiny", tmp_path)


class _Enough(Exception):
    pass


def run_worker(storage, tiny, data, trials: int | None = None,
               **settings) -> list[TrialState]:
    """One worker in this process, as ``python -m search.worker`` runs it, on ``data`` (for
    its first ``trials`` trials only, if given); the states of the trials it ended."""
    ended: list[TrialState] = []

    def trial_end(trial: optuna.trial.FrozenTrial) -> None:
        ended.append(trial.state)
        if len(ended) == trials:
            raise _Enough

    study = lifecycle.open_study(storage, tiny)
    with CompiledTraining() as compiled, contextlib.suppress(_Enough):
        loop.work(storage, study, Objective(tiny, CompiledPath(compiled, data), **settings),
                  on_trial_end=trial_end)
    return ended


def test_a_failing_point_is_retried_then_reported_given_up(tmp_path, tiny_data, mnist_dir,
                                                           capsys):
    tiny = load_tiny(tmp_path, max_attempts=2)
    url = f"sqlite:///{tmp_path}/tiny.db"
    storage = open_storage(url)

    def diverge_at_low_rate(trial, epoch, logs, seconds):
        if trial.params["learning_rate"] == 0.001:
            raise FloatingPointError("loss became nan")

    ended = run_worker(storage, tiny, tiny_data, on_epoch=diverge_at_low_rate)
    assert sorted(ended) == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    loaded = optuna.load_study(study_name="tiny", storage=storage.rdb)
    states = {status.unit.params["learning_rate"]: status.state(tiny.max_attempts)
              for status in units.unit_status(loaded)}
    assert states == {0.001: "given up", 0.01: "complete"}
    text = table.summary(loaded)
    assert "1 of 2 grid points complete" in text
    assert "given up: learning_rate=0.001 batch_size=64 replicate 1: error: " \
        "FloatingPointError: loss became nan" in text
    # A rerun does not try a given-up point again, nor touch the finished one.
    assert run_worker(storage, tiny, tiny_data) == []
    before = [(t.number, t.state, t.user_attrs) for t in loaded.get_trials()]

    # Once the cause is fixed, --retry-failed runs the given-up point again; nothing else.
    command = ["--study", "tiny", "--studies-dir", str(tmp_path), "--storage", url,
               "--data-dir", str(mnist_dir), "--workers", "1"]
    capsys.readouterr()
    assert run.main(command) == 1  # still given up: a rerun alone does not retry it
    assert "--retry-failed" in capsys.readouterr().err
    assert run.main([*command, "--retry-failed"]) == 0
    assert "retrying 1 given-up unit(s):" in capsys.readouterr().err
    after = loaded.get_trials()
    assert [(t.number, t.state, t.user_attrs) for t in after[:len(before)]] == before
    assert [(t.params["learning_rate"], t.state) for t in after[len(before):]] == \
        [(0.001, TrialState.COMPLETE)]
    assert "2 of 2 grid points complete" in table.summary(loaded)
    assert run.main([*command, "--retry-failed"]) == 0
    assert "no unit was given up; nothing to retry" in capsys.readouterr().err


def _foreign_running_trial(storage, tiny, unit: points.Unit, heartbeat_age: float) -> int:
    """A trial RUNNING on another machine, its last heartbeat ``heartbeat_age`` s ago."""
    study = lifecycle.open_study(storage, tiny)
    owner = "elsewhere/boot/1/1"
    storage.claims.try_claim(study_id(study), unit.id, 0, owner)
    trial = claims.start_trial(study, storage, unit, 0, owner)  # as a worker there made it
    storage.rdb.record_heartbeat(trial_id(trial))
    with storage.rdb.engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "UPDATE trial_heartbeats SET heartbeat = :when WHERE trial_id = :id"),
            {"when": datetime.datetime.now() - datetime.timedelta(seconds=heartbeat_age),
             "id": trial_id(trial)})
    return trial.number


def test_a_silent_foreign_worker_is_replaced_a_live_one_is_not(tmp_path, tiny_data):
    tiny = load_tiny(tmp_path)
    storage = open_storage(f"sqlite:///{tmp_path}/tiny.db")
    all_units = units.grid_units(tiny.grid, tiny.repeats)
    stale = _foreign_running_trial(storage, tiny, all_units[0], heartbeat_age=3600)
    alive = _foreign_running_trial(storage, tiny, all_units[1], heartbeat_age=0)

    assert run_worker(storage, tiny, tiny_data, trials=1) == [TrialState.COMPLETE]
    trials = {t.number: t for t in
              optuna.load_study(study_name="tiny", storage=storage.rdb).get_trials()}
    assert trials[stale].state == TrialState.FAIL
    assert trials[stale].user_attrs["failure"] == "worker died: its heartbeat stopped"
    assert trials[alive].state == TrialState.RUNNING  # another machine's work is left alone
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert [t.params for t in complete] == [tiny.grid[0]]


def test_a_locked_database_is_one_line_and_loses_nothing(tmp_path, mnist_dir):
    write_definition(tmp_path, "tiny")
    url = f"sqlite:///{tmp_path}/tiny.db"
    command = [sys.executable, "-m", "search.run", "--study", "tiny", "--studies-dir",
               str(tmp_path), "--data-dir", str(mnist_dir), "--workers", "1"]
    assert run.main([*command[3:], "--storage", url]) == 0  # a finished study, in-process
    before = (tmp_path / "tiny.db").read_bytes()

    holder = sqlite3.connect(tmp_path / "tiny.db")
    holder.execute("BEGIN EXCLUSIVE")  # another program writing, for as long as it likes
    try:
        # The URL's timeout shortens the wait for the lock from a minute to a second.
        locked = subprocess.run([*command, "--storage", url + "?timeout=1", "--fresh"],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        holder.rollback()
        holder.close()
    assert locked.returncode != 0
    lines = locked.stderr.strip().splitlines()
    assert len(lines) == 1 and "locked" in lines[0], locked.stderr
    assert (tmp_path / "tiny.db").read_bytes() == before


@pytest.mark.parametrize("flag", ["--fresh"])
def test_fresh_is_the_only_way_to_start_over(tmp_path, mnist_dir, flag):
    write_definition(tmp_path, "tiny")
    url = f"sqlite:///{tmp_path}/tiny.db"
    command = [sys.executable, "-m", "search.run", "--study", "tiny", "--studies-dir",
               str(tmp_path), "--data-dir", str(mnist_dir), "--storage", url, "--workers", "1"]
    for _ in range(2):  # run, then rerun a finished study: both in-process
        assert run.main(command[3:]) == 0
    result = subprocess.run([*command, flag], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert [t.number for t in trials] == [0, 1]  # deleted and run anew, once
    assert "deleted the stored study" in result.stderr


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MB file system of its own, so that filling it harms nothing else."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_is_one_line_and_loses_nothing(small_disk, tmp_path, mnist_dir):
    write_definition(tmp_path, "tiny", epochs=2)
    url = f"sqlite:///{small_disk}/tiny.db"
    command = [sys.executable, "-m", "search.run", "--study", "tiny", "--studies-dir",
               str(tmp_path), "--data-dir", str(mnist_dir), "--storage", url, "--workers", "1"]
    assert run.main([*command[3:], "--epochs", "1"]) == 0  # in-process
    before = optuna.load_study(study_name="tiny-epochs1", storage=url).get_trials()

    with open(small_disk / "filler", "wb") as filler:  # take every byte that is left
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
    full = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert full.returncode != 0
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "full" in lines[0].lower(), full.stderr
    assert "Traceback" not in full.stderr

    (small_disk / "filler").unlink()
    after = optuna.load_study(study_name="tiny-epochs1", storage=url).get_trials()
    assert [(t.number, t.params, t.value, t.user_attrs) for t in after] == \
        [(t.number, t.params, t.value, t.user_attrs) for t in before]
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr  # with space again, the study finishes
