"""Machines that share only a PostgreSQL study and an S3 store: README's "Across machines".

Each "machine" is a working folder of its own (with its own copy of the study file) and
processes of its own; they share the database URL, the s3:// store and the AWS variables.
A trial killed on the first continues on the second at epoch 3, and a third exports the
model and serves a trial's figure. An unusable store is one line before any trial; a store
that stops answering for a few seconds mid-study is waited for, and the run goes on.

Needs PostgreSQL (SEARCH_TEST_POSTGRES_URL; see scripts/start_postgres.sh) and moto: without
them these skip locally and fail in CI.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
import wsgiref.util
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from search import dashboard
from search.study.optuna_internals import trial_id
from tests.conftest import REPO, free_port, new_bucket, write_definition
from tests.helpers import (
    complete_by_params,
    postgres_url_or_skip,
    run_to_end,
    running_after_epoch,
    start_run,
    trials,
    wait_for,
)

pytestmark = pytest.mark.slow

# Killed once epoch 2 is reported; the MLP's compiled epochs are short, so many more are
# left for the kill to land in.
EPOCHS = 30


@pytest.fixture
def postgres_url() -> str:
    return postgres_url_or_skip()


def machine(root: Path, study: str, artifacts: str,
            learning_rates: tuple[float, ...] = (0.001,), epochs: int = EPOCHS) -> Path:
    """A machine's studies folder: the same study file, naming the shared store."""
    # Enough steps per epoch that the trial is still in epoch 3 when it is killed.
    path = write_definition(root / "studies", study, learning_rates=learning_rates,
                            batch_sizes=(16,),
                            epochs=epochs, train_size=20_000, validation_size=1000)
    path.write_text(path.read_text() + f'\n[storage]\nartifacts = "{artifacts}"\n')
    return root / "studies"


def study_names(url: str) -> list[str]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return sorted(summary.study_name for summary in optuna.get_all_study_summaries(storage))
    finally:
        storage.engine.dispose()


def test_a_trial_killed_on_one_machine_continues_on_another(
        s3_env, postgres_url: str, tmp_path: Path, mnist_dir: Path) -> None:
    name, straight = f"machines-{uuid.uuid4().hex[:8]}", f"straight-{uuid.uuid4().hex[:8]}"
    store = f"s3://{new_bucket()}/team"
    first = start_run(name, postgres_url, machine(tmp_path / "a", name, store),
                      data_dir=mnist_dir)
    victim = wait_for(running_after_epoch(name, postgres_url, 2), first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    # Meanwhile (the second machine waits for the dead trial's heartbeat to go stale), an
    # uninterrupted run of the same study under another name: the history to match.
    reference = start_run(straight, postgres_url, machine(tmp_path / "d", straight, store),
                          data_dir=mnist_dir)
    second = run_to_end(name, postgres_url, machine(tmp_path / "b", name, store),
                        data_dir=mnist_dir)
    assert second.returncode == 0, second.stderr
    _, reference_errors = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_errors

    (resumed,) = complete_by_params(name, postgres_url).values()
    (uninterrupted,) = complete_by_params(straight, postgres_url).values()
    assert resumed.params == victim.params
    # Killed once epoch 2 was reported: it continues from the last epoch the first machine
    # finished (2, or a few later: the kill takes a moment to land), never from the start.
    assert 2 <= resumed.user_attrs.get("resumed_from_epoch", 0) < EPOCHS, (
        [(t.number, t.state, t.user_attrs.get("failure")) for t in trials(name, postgres_url)],
        second.stderr[-3000:])
    for metric, values in uninterrupted.user_attrs["history"].items():
        assert resumed.user_attrs["history"][metric] == pytest.approx(values, abs=1e-6)
    assert resumed.value == pytest.approx(uninterrupted.value, abs=1e-6)
    assert [t.state for t in trials(name, postgres_url)] == [TrialState.FAIL,
                                                              TrialState.COMPLETE]

    reader = machine(tmp_path / "c", name, store)
    report = subprocess.run(
        [sys.executable, "-m", "search.report", "--study", name, "--storage", postgres_url,
         "--studies-dir", str(reader), "--out", str(tmp_path / "c" / "reports"),
         "--export-model", str(tmp_path / "c" / "best.keras")],
        cwd=tmp_path / "c", capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})  # this package, run from elsewhere
    assert report.returncode == 0, report.stderr
    assert f"exported trial {resumed.number}" in report.stdout
    import keras

    assert keras.saving.load_model(tmp_path / "c" / "best.keras").count_params() > 0
    assert_the_dashboard_serves_the_figure(name, postgres_url, reader, resumed)


def assert_the_dashboard_serves_the_figure(name: str, url: str, studies: Path,
                                           trial: optuna.trial.FrozenTrial) -> None:
    args = dashboard.build_parser().parse_args(
        ["--study", name, "--storage", url, "--studies-dir", str(studies), "--port", "0"])
    server, _ = dashboard.make_server(args)
    storage = optuna.storages.RDBStorage(url)
    try:
        (figure,) = [meta for meta in get_all_artifact_meta(trial, storage=storage)
                     if meta.filename.endswith("-curves.png")]
        environ = {"PATH_INFO": f"/artifacts/{storage.get_study_id_from_name(name)}/"
                                f"{trial_id(trial)}/{figure.artifact_id}",
                   "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
        wsgiref.util.setup_testing_defaults(environ)
        replies: list[str] = []
        app = server.get_app()
        body = b"".join(app(environ, lambda status, headers, *_: replies.append(status)))
    finally:
        server.server_close()
        storage.engine.dispose()
    assert replies == ["200 OK"] and body.startswith(b"\x89PNG")


@pytest.mark.parametrize("fault", ["no such bucket", "endpoint refused"])
def test_an_unusable_store_is_one_line_before_any_trial(
        fault: str, s3_env, postgres_url: str, tmp_path: Path, mnist_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"unusable-{uuid.uuid4().hex[:8]}"
    store = f"s3://{new_bucket()}/team"
    if fault == "no such bucket":
        store, expected = f"s3://missing-{uuid.uuid4().hex[:8]}/team", "does not exist"
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        expected = "cannot connect"
    before = study_names(postgres_url)
    failed = run_to_end(name, postgres_url, machine(tmp_path, name, store),
                        data_dir=mnist_dir, timeout=120)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and store in lines[0], failed.stderr
    assert "test-secret" not in failed.stderr
    assert study_names(postgres_url) == before  # nothing stored


def test_a_store_that_stops_answering_for_a_while_is_waited_for(
        s3_server, s3_env, tmp_path: Path, mnist_dir: Path) -> None:
    name, url = "outage", f"sqlite:///{tmp_path}/outage.db"
    store = f"s3://{new_bucket()}/team"
    studies = machine(tmp_path, name, store, learning_rates=(0.001, 0.01), epochs=6)
    process = start_run(name, url, studies, data_dir=mnist_dir)
    wait_for(running_after_epoch(name, url, 1), process, timeout=300)
    os.kill(s3_server[1], signal.SIGSTOP)  # it hangs, as a server that stops answering does
    try:
        time.sleep(4)  # the trial's next checkpoint waits for it
    finally:
        os.kill(s3_server[1], signal.SIGCONT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "error" not in stderr
    stored = trials(name, url)
    assert [t.state for t in stored] == [TrialState.COMPLETE] * 2
    assert len(complete_by_params(name, url)) == 2
    for trial in stored:  # every file written, none given up
        assert "model_error" not in trial.user_attrs and "model_artifact" in trial.user_attrs
