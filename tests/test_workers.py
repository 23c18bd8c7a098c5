"""Several workers on one study: every grid point exactly once, on SQLite and PostgreSQL.

PostgreSQL tests need a server: ``.ci/run`` starts one and sets SEARCH_TEST_POSTGRES_URL
(see scripts/start_postgres.sh). Without it they skip locally and fail in CI.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search.errors import SearchError
from search.study.storage import load_for_reading, open_storage
from tests.conftest import REPO, write_definition
from tests.helpers import (
    complete_by_params,
    postgres_url_or_skip,
    run_to_end,
    start_run,
    trials,
    wait_for,
)

pytestmark = pytest.mark.slow



@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/workers.db"
    return postgres_url_or_skip()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database_url(request, tmp_path: Path) -> Iterator[str]:
    """A database nobody has opened yet: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/new.db"
        return
    server = sqlalchemy.engine.make_url(postgres_url_or_skip())
    name = f"search_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


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
        # Of a worker the run started: the run's own process is one of the 3 as well, and
        # killing it ends the run as it ends a run of one worker.
        running = [t for t in trials(name, storage_url) if t.state == TrialState.RUNNING
                   and 1 in t.intermediate_values
                   and int(t.system_attrs["owner"].split("/")[2]) != pool.pid]
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


def _command_lines_below(root: int) -> dict[int, str]:
    """The command line of every process below ``root``, by process id."""
    lines, parents = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, IndexError):
                continue
    below, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in below} - below
        grew, below = bool(more), below | more
    return {pid: lines[pid].decode(errors="replace") for pid in below - {root} if pid in lines}


def test_replicates_run_exactly_once_with_workers_that_never_see_the_url(
        tmp_path: Path, storage_url: str, mnist_dir: Path) -> None:
    name = f"replicates-{uuid.uuid4().hex[:8]}"
    studies = tmp_path / "studies"
    write_definition(studies, name, learning_rates=(0.001, 0.01), batch_sizes=(32, 64),
                     train_size=1000, validation_size=500, repeats=3)
    # The storage comes from the environment, as the README shows for a password.
    process = subprocess.Popen(
        [sys.executable, "-m", "search.run", "--study", name, "--studies-dir", str(studies),
         "--data-dir", str(mnist_dir), "--workers", "2"], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "OPTUNA_STORAGE": storage_url})
    seen: list[str] = []
    try:
        while process.poll() is None and not seen:  # the run's own process is the other
            seen = [line for line in _command_lines_below(process.pid).values()
                    if "search" in line]
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr
    assert seen and all(storage_url not in line for line in seen), seen
    done = [(tuple(sorted(t.params.items())), t.user_attrs["replicate"])
            for t in trials(name, storage_url) if t.state == TrialState.COMPLETE]
    assert len(done) == len(set(done)) == 12
    assert "4 of 4 grid points complete, 12 of 12 trials" in stdout


def _statistics_mapped(pid: int) -> list[str]:
    """The report's statistics (SciPy's stats and special functions) among the files a live
    process has mapped: their compiled modules are there once imported."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # it has exited
        return []
    return sorted({line.split()[-1] for line in maps.splitlines()
                   if "/scipy/stats/" in line or "/scipy/special/" in line})


def _any_complete(name: str, url: str) -> bool:
    """Whether a trial is complete, read without making tables (Optuna's own storage would
    make them too, racing the run that is making them)."""
    try:
        study = load_for_reading(url, name)
    except SearchError:  # not made yet
        return False
    return any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def test_a_worker_loads_none_of_the_reports_statistics(tmp_path: Path, mnist_dir: Path) -> None:
    name, url = "lean", f"sqlite:///{tmp_path}/lean.db"
    studies = tmp_path / "studies"
    write_definition(studies, name, learning_rates=(0.001, 0.01), batch_sizes=(32, 64),
                     train_size=600, validation_size=200, repeats=2)
    process = start_run(name, url, studies, "--workers", "2", data_dir=mnist_dir)
    mapped: dict[int, list[str]] = {}
    looked_after_a_trial = 0
    while process.poll() is None:
        workers = [pid for pid, line in _command_lines_below(process.pid).items()
                   if "search.worker" in line]
        finished = os.path.exists(tmp_path / "lean.db") and _any_complete(name, url)
        for pid in workers:
            mapped[pid] = _statistics_mapped(pid)
            looked_after_a_trial += finished
    assert process.wait(timeout=300) == 0, process.stderr.read()
    # The run's own process is the other worker ...
    assert len(mapped) == 1 and looked_after_a_trial > 0
    assert mapped == {pid: [] for pid in mapped}
    # ... and keeps the dashboard's note with the verdict.
    study = optuna.load_study(study_name=name, storage=url)
    assert "4 of 4 grid points complete" in optuna_dashboard.get_note(study)


def _open_and_claim(url: str, barrier, results) -> None:
    try:
        barrier.wait(60)
        storage = open_storage(url)  # a new database: each process finds its tables missing
        barrier.wait(60)
        results.put(storage.claims.try_claim(study_id=1, unit=0, attempt=0,
                                             owner=str(os.getpid())))
    except BaseException as error:  # reported to the test, not lost in a child's stderr
        barrier.abort()  # the others stop waiting for this one
        results.put(repr(error))


def test_workers_opening_a_new_database_at_once_all_start_and_one_wins_a_point(
        new_database_url):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(6), context.Queue()
    processes = [context.Process(target=_open_and_claim, daemon=True,
                                 args=(new_database_url, barrier, results))
                 for _ in range(6)]
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.kill()
            process.join()
    assert (outcomes.count(True), outcomes.count(False)) == (1, 5), outcomes
