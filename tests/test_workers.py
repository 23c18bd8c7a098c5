"""Several workers on one study: every grid point exactly once, on SQLite and PostgreSQL.

PostgreSQL tests need a server: ``.ci/run`` starts one and sets SEARCH_TEST_POSTGRES_URL
(see scripts/start_postgres.sh). Without it they skip locally and fail in CI.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from optuna.trial import TrialState

from search.claims import ClaimTable
from tests.conftest import write_definition
from tests.helpers import complete_by_params, run_to_end, start_run, trials, wait_for

POSTGRES_URL = os.environ.get("SEARCH_TEST_POSTGRES_URL")


def _postgres_or_skip() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if os.environ.get("CI"):
        pytest.fail("SEARCH_TEST_POSTGRES_URL is not set; .ci/run must start PostgreSQL")
    pytest.skip("no PostgreSQL server: run scripts/start_postgres.sh and set "
                "SEARCH_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/workers.db"
    return _postgres_or_skip()


def make_study(folder: Path, epochs: int, train_size: int) -> tuple[str, Path]:
    # A unique name: PostgreSQL tests share one database.
    name = f"workers-{uuid.uuid4().hex[:8]}"
    write_definition(folder / "studies", name, learning_rates=(0.0001, 0.001, 0.01),
                     batch_sizes=(32, 64, 128), epochs=epochs, train_size=train_size,
                     validation_size=500)
    return name, folder / "studies"


@pytest.fixture
def grid_study(tmp_path: Path) -> tuple[str, Path]:
    return make_study(tmp_path, epochs=1, train_size=1000)


@pytest.fixture
def slow_grid_study(tmp_path: Path) -> tuple[str, Path]:
    # Epochs long enough (20,000 images) that a trial seen running is still running when
    # its worker is killed a moment later.
    return make_study(tmp_path, epochs=2, train_size=20_000)


def assert_exactly_once(name: str, url: str) -> None:
    assert not [t.number for t in trials(name, url) if t.state == TrialState.RUNNING]
    complete = complete_by_params(name, url)  # fails on a point completed twice
    assert len(complete) == 9
    assert {dict(key)["learning_rate"] for key in complete} == {0.0001, 0.001, 0.01}
    assert {dict(key)["batch_size"] for key in complete} == {32, 64, 128}


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_run_every_point_exactly_once(grid_study, storage_url, workers, mnist_dir):
    name, studies = grid_study
    result = run_to_end(name, storage_url, studies, "--workers", str(workers),
                        data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr
    assert_exactly_once(name, storage_url)
    assert len(trials(name, storage_url)) == 9  # nothing failed, nothing ran twice
    assert "9 of 9 grid points complete" in result.stdout


def test_a_worker_killed_mid_run_is_replaced(slow_grid_study, storage_url, mnist_dir):
    name, studies = slow_grid_study
    pool = start_run(name, storage_url, studies, "--workers", "3", data_dir=mnist_dir)

    def a_running_trial():
        running = [t for t in trials(name, storage_url) if t.state == TrialState.RUNNING
                   and 1 in t.intermediate_values]
        return running[0] if running else None

    victim = wait_for(a_running_trial, pool)
    owner = trials(name, storage_url)[victim.number].system_attrs["owner"]
    os.kill(int(owner.split("/")[2]), signal.SIGKILL)
    _, stderr = pool.communicate(timeout=300)
    assert pool.returncode == 0, stderr
    assert_exactly_once(name, storage_url)
    dead = trials(name, storage_url)[victim.number]
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["failure"].startswith("worker died")


def _claim(url: str, barrier, results) -> None:
    table = ClaimTable(sqlalchemy.create_engine(url, connect_args=(
        {"timeout": 60} if url.startswith("sqlite") else {})))
    barrier.wait()
    results.put(table.try_claim(study_id=1, grid_id=0, attempt=0, owner=str(os.getpid())))


def test_simultaneous_claims_of_one_point_admit_exactly_one(storage_url, tmp_path):
    if storage_url.startswith("postgresql"):
        engine = sqlalchemy.create_engine(storage_url)
        ClaimTable(engine).delete_study(1)
        engine.dispose()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(6), context.Queue()
    processes = [context.Process(target=_claim, args=(storage_url, barrier, results))
                 for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    outcomes = [results.get(timeout=5) for _ in processes]
    assert sorted(outcomes) == [False] * 5 + [True]
