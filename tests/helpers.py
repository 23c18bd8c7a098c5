"""Running the real CLI in a subprocess and watching its storage, for fault tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

REPO = Path(__file__).resolve().parent.parent


_started: list[subprocess.Popen] = []


def start_run(study: str, storage_url: str, studies_dir: Path, *extra: str,
              data_dir: Path) -> subprocess.Popen:
    """The run in one process (what a kill of it tests) unless ``extra`` says --workers N."""
    command = [sys.executable, "-m", "search.run", "--study", study, "--storage", storage_url,
               "--studies-dir", str(studies_dir), "--data-dir", str(data_dir),
               "--workers", "1", *extra]
    # A session of its own, so that a test that fails half-way can stop the run together
    # with the worker processes it spawned (stop_leftover_runs).
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _started.append(process)
    return process


def stop_leftover_runs() -> None:
    """Kill every run a test started and left behind, with its workers."""
    while _started:
        process = _started.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdout, process.stderr):
            stream.close()


def run_to_end(study: str, storage_url: str, studies_dir: Path, *extra: str,
               data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    process = start_run(study, storage_url, studies_dir, *extra, data_dir=data_dir)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def trials(study: str, storage_url: str) -> list[FrozenTrial]:
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    except KeyError:
        return []
    finally:
        storage.engine.dispose()


def wait_for(condition: Callable[[], FrozenTrial | None], process: subprocess.Popen,
             timeout: float = 180) -> FrozenTrial:
    """Poll until ``condition`` returns a trial; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found is not None:
            return found
        if process.poll() is not None:
            raise AssertionError(f"run ended first (exit {process.returncode}): "
                                 f"{process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the run")


def running_after_epoch(study: str, storage_url: str, epoch: int, skip: int = 0
                        ) -> Callable[[], FrozenTrial | None]:
    """A condition: some RUNNING trial numbered >= skip has reported ``epoch``."""
    def condition() -> FrozenTrial | None:
        for trial in trials(study, storage_url):
            if trial.number >= skip and trial.state == TrialState.RUNNING and \
                    epoch in trial.intermediate_values:
                return trial
        return None
    return condition


def complete_by_params(study: str, storage_url: str) -> dict[tuple, FrozenTrial]:
    result: dict[tuple, FrozenTrial] = {}
    for trial in trials(study, storage_url):
        if trial.state == TrialState.COMPLETE:
            key = tuple(sorted(trial.params.items()))
            assert key not in result, f"grid point {key} completed twice"
            result[key] = trial
    return result


def postgres_url_or_skip() -> str:
    """The test PostgreSQL server's URL; without one a test skips here and fails in CI."""
    url = os.environ.get("SEARCH_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("SEARCH_TEST_POSTGRES_URL is not set; .ci/run must start PostgreSQL")
    pytest.skip("no PostgreSQL server: run scripts/start_postgres.sh and set "
                "SEARCH_TEST_POSTGRES_URL")


def without_fsync(engine) -> None:
    """SQLite waits for the disk at every commit, which is most of the time these throwaway
    studies take to build; they need no durability."""
    import sqlalchemy

    sqlalchemy.event.listen(engine, "connect",
                            lambda connection, _: connection.execute("PRAGMA synchronous = OFF"))
    engine.dispose()  # connections opened before the listener reconnect with it


def scratch_storage(url: str):
    """A storage opened as a run opens it, for a throwaway study built in a test."""
    from search.study.storage import open_storage

    opened = open_storage(url)
    without_fsync(opened.rdb.engine)
    return opened
