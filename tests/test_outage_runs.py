"""A PostgreSQL server that goes away mid-study, for real: the run waits and goes on, or,
past ``[storage] outage_seconds``, ends in one line and a rerun finishes exactly.

The server is this module's own (``scripts/start_postgres.sh`` on a free port in a
temporary folder), stopped and started under the run; never the one the other tests share.
Needs Debian's ``postgresql`` package: without it these skip locally and fail in CI.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import REPO, free_port, write_definition
from tests.helpers import (
    complete_by_params,
    run_to_end,
    running_after_epoch,
    start_run,
    trials,
    wait_for,
)

pytestmark = pytest.mark.slow

# Enough epochs that the server goes down while a trial trains, not between two.
SETTINGS = {"learning_rates": (0.001, 0.01), "batch_sizes": (16,), "epochs": 12,
            "train_size": 12_000, "validation_size": 1000}
UNITS = 2
DOWN_SECONDS = 2.0


class Server:
    """A throwaway PostgreSQL server that a test may stop and start."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.url = subprocess.run([str(REPO / "scripts" / "start_postgres.sh"), str(folder),
                                   str(port)], check=True, capture_output=True, text=True,
                                  timeout=120).stdout.strip()

    def _pg_ctl(self, *args: str) -> None:
        (bin_dir,) = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, f"{bin_dir}/pg_ctl", "-D", str(self.folder), *args],
                       check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")  # as a restart does: sessions cut, new ones refused

    def start(self) -> None:
        self._pg_ctl("-l", str(self.folder / "server.log"), "-w", "-o",
                     f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 "
                     "-c max_connections=200", "start")


@pytest.fixture(scope="module")
def server():
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        if os.environ.get("CI"):
            pytest.fail("CI must install PostgreSQL (apt-get install -y postgresql)")
        pytest.skip("no PostgreSQL binaries: apt-get install -y postgresql")
    parent = Path(tempfile.mkdtemp(prefix="search-outage-pg-"))
    parent.chmod(0o755)  # the postgres account reaches its data folder through this one
    started = Server(parent / "data", free_port())
    yield started
    if (started.folder / "postmaster.pid").exists():  # a test stopped half-way starts it
        started._pg_ctl("stop", "-m", "immediate")
    shutil.rmtree(parent, ignore_errors=True)


def _studies(tmp_path: Path, name: str, outage_seconds: float | None = None) -> Path:
    path = write_definition(tmp_path / "studies", name, **SETTINGS)
    if outage_seconds is not None:
        path.write_text(path.read_text() + f"\n[storage]\noutage_seconds = {outage_seconds}\n")
    return path.parent


def _spare(trial) -> bool:
    """A trial made twice by a creation retried across the outage, failed at once."""
    return trial.state == TrialState.FAIL and \
        trial.user_attrs.get("failure", "").startswith("superseded: a spare")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_database_restarted_mid_trial_is_waited_for(workers: int, server: Server,
                                                      tmp_path: Path, mnist_dir: Path) -> None:
    name = f"restarted-{workers}"
    process = start_run(name, server.url, _studies(tmp_path, name), "--workers", str(workers),
                        data_dir=mnist_dir)
    in_flight = wait_for(running_after_epoch(name, server.url, 1), process)
    server.stop()
    time.sleep(DOWN_SECONDS)  # the trial trains on, and waits at its next epoch's end
    server.start()
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "exited with" not in stderr  # no worker gave up
    # Each process that met the outage said so once, and again once it was back.
    waits = [line for line in stderr.splitlines() if "waiting up to 120 s" in line]
    backs = [line for line in stderr.splitlines() if "back after" in line]
    assert 1 <= len(waits) == len(backs) <= workers + (workers > 1), stderr
    assert all(line.startswith(f"storage {server.url}: ") for line in waits + backs)
    stored = [t for t in trials(name, server.url) if not _spare(t)]
    assert [t.state for t in stored] == [TrialState.COMPLETE] * UNITS, \
        [(t.number, t.state, t.user_attrs.get("failure")) for t in stored]
    assert len(complete_by_params(name, server.url)) == UNITS  # each unit exactly once
    for trial in stored:
        assert sorted(trial.intermediate_values) == list(range(1, SETTINGS["epochs"] + 1))
    # The trial in flight went on where it was: never interrupted, never resumed.
    (went_on,) = [t for t in stored if t.number == in_flight.number]
    assert "resumed_from_epoch" not in went_on.user_attrs


def test_a_database_down_past_outage_seconds_is_one_line_and_the_rerun_exact(
        server: Server, tmp_path: Path, mnist_dir: Path) -> None:
    name = "down-too-long"
    studies = _studies(tmp_path, name, outage_seconds=3)
    process = start_run(name, server.url, studies, data_dir=mnist_dir)
    victim = wait_for(running_after_epoch(name, server.url, 2), process)
    server.stop()
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        server.start()
    assert process.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], stderr
    assert lines[-1].startswith(f"error: storage {server.url}: ") and "Traceback" not in stderr
    assert "gave up after 3 s ([storage] outage_seconds = 3)" in lines[-1]
    assert any("waiting up to 3 s for it to come back" in line for line in lines)

    rerun = run_to_end(name, server.url, studies, data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    stored = {t.number: t for t in trials(name, server.url) if not _spare(t)}
    first = stored[victim.number]
    assert first.state == TrialState.FAIL  # found dead by the rerun: no attempt used
    assert first.user_attrs["failure"] == "worker died: its process is gone"
    complete = complete_by_params(name, server.url)
    assert len(complete) == UNITS and len(stored) == UNITS + 1
    resumed = complete[tuple(sorted(victim.params.items()))]
    assert resumed.user_attrs["resumed_from_epoch"] >= max(first.intermediate_values) >= 2
    # What the first run reported before the outage, the resumed trial holds to the bit.
    assert {step: resumed.intermediate_values[step] for step in first.intermediate_values} \
        == first.intermediate_values
    assert len(resumed.user_attrs["history"]["loss"]) == SETTINGS["epochs"]
