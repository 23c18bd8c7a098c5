"""Failed trials, foreign workers and storage faults: bounded retries, one line, no loss."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search import definition, report, run
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
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take every byte of ``disk`` but about ``leave`` (tmpfs frees whole 4 KB pages)."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 4096)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def files(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def stored_trials(name: str, url: str) -> list[tuple]:
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    return [(t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs,
             t.intermediate_values, t.datetime_start, t.datetime_complete) for t in trials]


def one_error_line(stderr: str, *fragments: str) -> str:
    """The run's only complaint: one ``error:`` line (progress lines aside), no traceback,
    no warning."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for unwanted in ("Traceback", "Exception ignored", "WARNING"):
        assert unwanted not in stderr, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# The MLP of write_definition ([16, 8] units): its weights and Adam's two moments, float32.
STATE_BYTES = 3 * 4 * (784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10)


def test_a_full_disk_is_one_line_and_loses_nothing(small_disk, tmp_path, mnist_dir, capsys):
    """A full disk at a checkpoint, then at an exported model and at the report's figures,
    then a database that cannot grow: one line each, and nothing stored changes."""
    write_definition(tmp_path, "tiny", epochs=2)
    url, store = f"sqlite:///{tmp_path}/tiny.db", small_disk / "tiny.artifacts"
    where = ["--study", "tiny", "--studies-dir", str(tmp_path), "--storage", url,
             "--artifacts", str(store)]
    command = [*where, "--data-dir", str(mnist_dir), "--workers", "1"]
    report_command = [*where, "--out", str(small_disk / "report")]
    assert run.main(command) == 0
    assert report.main(report_command) == 0  # figures that a full disk must not spoil
    (small_disk / "best.keras").write_bytes(b"an earlier export")
    before, trials_before = files(small_disk), stored_trials("tiny", url)
    capsys.readouterr()

    # Room for one checkpoint, not for the next (written before the last one is dropped).
    filler = fill(small_disk, leave=int(1.5 * STATE_BYTES))
    assert run.main([*command, "--repeats", "2"]) == 1
    one_error_line(capsys.readouterr().err, f"artifact store {store}: the disk is full (",
                   "free of 3.0 MB at", "run the same command to resume")
    after = files(small_disk)
    assert {name: after[name] for name in before if name != "filler"} == \
        {name: digest for name, digest in before.items() if name != "filler"}
    assert stored_trials("tiny", url)[:2] == trials_before  # byte for byte
    # The epoch 1 checkpoint is whole and recorded; nothing of epoch 2's is left.
    new = sorted(name for name in after if name not in before and name != "filler")
    [pointer] = [name for name in new if name.endswith("latest.json")]
    checkpoint = json.loads((small_disk / pointer).read_text())
    assert checkpoint["epoch"] == 1
    assert new == sorted([pointer, f"tiny.artifacts/{checkpoint['artifact_id']}"])
    interrupted = optuna.load_study(study_name="tiny", storage=url).get_trials()[2]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["failure"] == "interrupted: the disk is full"

    filler.unlink()  # with space again the run resumes from that checkpoint
    assert run.main([*command, "--repeats", "2"]) == 0
    final = optuna.load_study(study_name="tiny", storage=url).get_trials()
    complete = [t for t in final if t.state == TrialState.COMPLETE]
    assert sorted((t.params["learning_rate"], t.user_attrs["replicate"]) for t in complete) \
        == [(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)]
    resumed = [t for t in complete if t.params == interrupted.params
               and t.user_attrs["replicate"] == 1]
    assert resumed[0].user_attrs["resumed_from_epoch"] == 1

    # A model exported to, and the report's figures drawn on, a full disk: one line each.
    filler = fill(small_disk)
    capsys.readouterr()
    target = small_disk / "best.keras"
    assert report.main([*report_command, "--export-model", str(target)]) == 1
    one_error_line(capsys.readouterr().err, f"cannot write {target}: the disk is full (",
                   "--export-model", "any earlier file there is unchanged")
    assert report.main(report_command) == 1
    one_error_line(capsys.readouterr().err,
                   f"cannot write to {small_disk / 'report'}: the disk is full (")
    left = files(small_disk)
    assert {name: left[name] for name in before if not name.startswith("tiny.artifacts")
            and name != "filler"} == {name: digest for name, digest in before.items()
                                      if not name.startswith("tiny.artifacts")
                                      and name != "filler"}
    assert not [name for name in left if any(part.startswith(".")
                                             for part in Path(name).parts)]

    filler.unlink()  # and a database that cannot grow
    database_full_is_one_line(url, tmp_path / "tiny.db", command, capsys)


def database_full_is_one_line(url: str, database: Path, command: list[str], capsys) -> None:
    """SQLite's max_page_count stands in for a full disk: the database cannot grow."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA page_size = 512")  # small pages, packed by VACUUM: the
        connection.execute("VACUUM")  # next rows need new ones, which it may not have
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
    before = stored_trials("tiny", url)

    def no_growth(dbapi_connection, record) -> None:  # every connection of the run
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    capsys.readouterr()
    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", no_growth)
    try:
        assert run.main([*command, "--repeats", "3"]) == 1
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", no_growth)
    one_error_line(capsys.readouterr().err, f"error: storage {url}: database or disk is full (",
                   "free of", f"at {database}); free some space there")
    assert stored_trials("tiny", url)[:len(before)] == before  # byte for byte
