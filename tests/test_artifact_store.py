"""The artifact store: a folder and a real S3-compatible server (moto's, started here through
scripts/start_s3.sh on a free loopback port), through Optuna's own artifact API.

Tests that need the server are marked ``slow``; without moto they skip locally and fail in CI.
"""

from __future__ import annotations

import functools
import io
import os
import re
import signal
import threading
import time
import wsgiref.util
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import Boto3ArtifactStore, download_artifact, upload_artifact

from search.errors import SearchError
from search.study import artifact_store, retry, store_checkpoints
from search.study.optuna_internals import study_id, trial_id
from tests.conftest import SECRET, free_port, new_bucket

REPO = Path(__file__).resolve().parent.parent
@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.slow)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store location of each kind: a folder not yet made, a prefix in a fresh bucket."""
    if request.param == "folder":
        return str(tmp_path / "shared" / "artifacts")
    request.getfixturevalue("s3_env")
    return f"s3://{new_bucket()}/team/mnist"


def _keys(location: str) -> set[str]:
    """Every object id in the store, read around our code: the folder's files or the bucket."""
    parsed = artifact_store.parse(location)
    if parsed.folder is not None:
        return {str(path.relative_to(parsed.folder)) for path in parsed.folder.rglob("*")
                if path.is_file()}
    import boto3

    listing = boto3.client("s3").list_objects_v2(Bucket=parsed.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_resolve_takes_the_flag_then_the_environment_then_the_study_file(monkeypatch) -> None:
    monkeypatch.delenv(artifact_store.ARTIFACTS_VARIABLE, raising=False)
    default = Path("studies/mnist.artifacts")
    assert artifact_store.resolve(None, None, default) == str(default)
    assert artifact_store.resolve(None, "s3://file/x", default) == "s3://file/x"
    monkeypatch.setenv(artifact_store.ARTIFACTS_VARIABLE, "s3://env/x")
    assert artifact_store.resolve(None, "s3://file/x", default) == "s3://env/x"
    assert artifact_store.resolve("/flag", "s3://file/x", default) == "/flag"


@pytest.mark.parametrize(("text", "expected"), [
    ("studies/a", artifact_store.Location(folder=Path("studies/a"))),
    ("file:///srv/a", artifact_store.Location(folder=Path("/srv/a"))),
    ("s3://my-bucket", artifact_store.Location(bucket="my-bucket")),
    ("s3://my-bucket/a/b/", artifact_store.Location(bucket="my-bucket", prefix="a/b/")),
])
def test_parse(text: str, expected: artifact_store.Location) -> None:
    assert artifact_store.parse(text) == expected


def test_optuna_uploads_and_downloads_through_the_store(location: str, tmp_path: Path) -> None:
    store = artifact_store.check(location)
    study = optuna.create_study()
    trial = study.ask()
    source = tmp_path / "history.csv"
    source.write_bytes(b"epoch,loss\n1,0.5\n")
    artifact_id = upload_artifact(artifact_store=store, file_path=str(source),
                                  study_or_trial=trial)
    download_artifact(artifact_store=store, artifact_id=artifact_id,
                      file_path=str(tmp_path / "back.csv"))
    assert (tmp_path / "back.csv").read_bytes() == source.read_bytes()
    prefix = "team/mnist/" if location.startswith("s3://") else ""
    assert _keys(location) == {prefix + artifact_id}  # the probe is gone, the prefix kept


def test_bytes_round_trip_and_missing_objects(location: str) -> None:
    store = artifact_store.open_store(location)
    assert artifact_store.get_bytes(store, "a/b/c.bin") is None
    artifact_store.put_bytes(store, "a/b/c.bin", b"\x00" * 1000)
    assert artifact_store.get_bytes(store, "a/b/c.bin") == b"\x00" * 1000
    artifact_store.remove(store, "a/b/c.bin")
    artifact_store.remove(store, "a/b/c.bin")  # already gone: fine
    assert artifact_store.get_bytes(store, "a/b/c.bin") is None


def test_a_checkpoint_counts_once_committed_and_discarding_leaves_nothing(
        location: str) -> None:
    store = artifact_store.open_store(location)
    assert store_checkpoints.load_checkpoint(store, "mnist", "u1") is None
    first = store_checkpoints.save_checkpoint(store, "mnist", "u1", 1, b"one",
                                              extra={"loss": [0.5]})
    second = store_checkpoints.save_checkpoint(store, "mnist", "u1", 2, b"two",
                                               extra={"loss": [0.5, 0.4]}, previous=first)
    assert artifact_store.get_bytes(store, first.artifact_id) is None  # replaced, deleted
    # A writer killed between the write and the commit: the orphan is never read.
    orphan = store_checkpoints.put_checkpoint(store, "mnist", "u1", 3, b"three")
    assert store_checkpoints.load_checkpoint(store, "mnist", "u1") == (second, b"two")
    assert second.extra == {"loss": [0.5, 0.4]}
    assert store_checkpoints.read_checkpoint(
        store, store_checkpoints.Checkpoint.from_json(orphan.to_json())) == b"three"
    store_checkpoints.save_checkpoint(store, "mnist", "u2", 1, b"other unit")
    store_checkpoints.discard_checkpoints(store, "mnist", "u1")
    assert store_checkpoints.load_checkpoint(store, "mnist", "u1") is None
    assert all(key.split("checkpoints/")[1].startswith("mnist/u2/") for key in _keys(location))
    store_checkpoints.discard_checkpoints(store, "mnist")
    assert _keys(location) == set()


def test_a_pointer_to_a_missing_or_different_state_is_no_checkpoint(location: str) -> None:
    store = artifact_store.open_store(location)
    checkpoint = store_checkpoints.save_checkpoint(store, "mnist", "u1", 4, b"state")
    artifact_store.put_bytes(store, checkpoint.artifact_id, b"other")
    assert store_checkpoints.load_checkpoint(store, "mnist", "u1") is None
    artifact_store.remove(store, checkpoint.artifact_id)
    assert store_checkpoints.load_checkpoint(store, "mnist", "u1") is None


def _one_line_error(location: str, *expected: str) -> str:
    started = time.monotonic()
    with pytest.raises(SearchError) as caught:
        artifact_store.check(location)
    message = str(caught.value)
    assert time.monotonic() - started < 15
    assert "\n" not in message and SECRET not in message and "test-key-id" not in message
    assert message.startswith("artifact store") and artifact_store.display(location) in message
    for part in expected:
        assert part in message
    return message


@pytest.mark.parametrize(("location", "expected"), [
    ("gs://bucket/x", ("unknown scheme 'gs'", "s3://bucket/prefix")),
    ("s3://Bad_Bucket/x", ("not a valid S3 bucket name",)),
    (f"s3://test-key-id:{SECRET}@bucket/x", ("s3://***@bucket/x", "AWS_ACCESS_KEY_ID")),
    ("", ("empty",)),
    ("s3://bucket/x?region=eu-west-1", ("no '?' or '#' part", "AWS environment")),
])
def test_malformed_locations_are_one_line(location: str, expected: tuple[str, ...]) -> None:
    _one_line_error(location, *expected)


def test_a_read_only_folder_is_one_line_and_stays_empty(tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    folder.chmod(0o555)
    _one_line_error(str(folder), "is read-only", "make it writable")
    assert list(folder.iterdir()) == []
    (tmp_path / "file").write_text("x")
    _one_line_error(str(tmp_path / "file" / "sub"), "artifact store")


@pytest.mark.slow
def test_s3_misconfigurations_are_one_line(s3_env: str, monkeypatch) -> None:
    _one_line_error("s3://no-such-bucket-here/x", "bucket 'no-such-bucket-here' does not exist")
    bucket = new_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    _one_line_error(f"s3://{bucket}/x", "cannot connect", "AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _one_line_error(f"s3://{bucket}/x", "no AWS credentials", "AWS_SECRET_ACCESS_KEY")


@pytest.mark.slow
def test_a_paused_server_is_waited_for_and_past_the_limit_is_one_line(
        s3_server, s3_env: str, capsys, request: pytest.FixtureRequest) -> None:
    request.addfinalizer(functools.partial(retry.set_outage_seconds, retry.outage_seconds()))
    location = f"s3://{new_bucket()}/run"
    # A stopped server hangs rather than refusing: each try times out after 1 s here.
    store = artifact_store.open_store(location, connect_timeout=1, read_timeout=1, attempts=1)
    artifact_store.put_bytes(store, "kept", b"stored before the pause")
    retry.set_outage_seconds(30)
    os.kill(s3_server[1], signal.SIGSTOP)
    resume = threading.Timer(3, os.kill, (s3_server[1], signal.SIGCONT))
    resume.start()
    try:
        started = time.monotonic()
        with artifact_store.store_errors(location):  # waited for, then written
            artifact_store.put_bytes(store, "during", b"x" * 1_300_000)
        assert 3 <= time.monotonic() - started < 20
    finally:
        resume.join()
        os.kill(s3_server[1], signal.SIGCONT)
    assert artifact_store.get_bytes(store, "during") == b"x" * 1_300_000
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 2 and said[0] == (f"artifact store {location}: the server stopped "
                                          "answering; waiting up to 30 s for it to come back")
    assert re.fullmatch(rf"artifact store {location}: back after \d+ s; carrying on", said[1])

    retry.set_outage_seconds(2)  # past it: one line, and the store works once it resumes
    os.kill(s3_server[1], signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(SearchError, match="stopped answering; gave up after") as caught:
            with artifact_store.store_errors(location):
                artifact_store.put_bytes(store, "lost", b"x" * 1_300_000)
        assert time.monotonic() - started < 10 and "\n" not in str(caught.value)
    finally:
        os.kill(s3_server[1], signal.SIGCONT)
    artifact_store.check(location, store)
    assert artifact_store.get_bytes(store, "kept") == b"stored before the pause"


def test_optuna_dashboard_serves_an_artifact_from_the_store(location: str,
                                                            tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="shown")
    trial = study.ask()
    (tmp_path / "curves.png").write_bytes(b"\x89PNG not really")
    store = artifact_store.check(location)
    artifact_id = upload_artifact(artifact_store=store, file_path=str(tmp_path / "curves.png"),
                                  study_or_trial=trial)
    assert isinstance(store, optuna.artifacts.FileSystemArtifactStore | Boto3ArtifactStore)
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    environ = {"PATH_INFO": f"/artifacts/{study_id(study)}/{trial_id(trial)}/{artifact_id}",
               "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    replies: list[str] = []
    body = b"".join(app(environ, lambda status, headers, *_: replies.append(status)))
    assert replies == ["200 OK"] and body == b"\x89PNG not really"
