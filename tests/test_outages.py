"""Faults that pass, in memory and on real SQLite files: waited out, said once, never doubled.

The database faults are injected where the network would put them: a commit that succeeds
but whose reply is lost, a call refused for a while. The claim table decides who owns a
unit, also after an outage. PostgreSQL restarted for real: tests/test_outage_runs.py.
"""

from __future__ import annotations

import datetime
import errno
import os
import sqlite3
import time
import warnings

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search import definition
from search.errors import SearchError, StoreError
from search.study import artifact_store, claim_table, claims, holding, lifecycle, points, retry
from search.study.optuna_internals import study_id, trial_id
from search.study.reconnecting import ReconnectingStorage, StorageUnavailable, _chain, passes
from search.study.storage import Storage, storage_errors
from search.study.store_objects import passes as store_passes
from search.worker import behind, loop
from tests.helpers import without_fsync

LOST = "the reply was lost"  # what an injected fault says; only it passes in these tests

GRID = """\
[search_space]
learning_rate = [0.001, 0.01]
batch_size = [32, 64]

[training]
epochs = 3
hidden_units = [8]
validation_size = 10
max_attempts = 2
"""


class _Refused(Exception):
    pass


@pytest.fixture(autouse=True)
def _quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_PAUSE", 0.05)
    monkeypatch.setattr(retry, "LONGEST_PAUSE", 0.1)
    previous = retry.outage_seconds()
    retry.set_outage_seconds(10)
    yield
    retry.set_outage_seconds(previous)


def _innermost(error: BaseException) -> str:
    return str(list(_chain(error))[-1])


def _outage(name: str = "storage test") -> retry.Outage:
    return retry.Outage(name, lambda error: isinstance(error, _Refused) or any(
        LOST in str(link) for link in _chain(error)), _innermost, StorageUnavailable)


def _failing(times: int, then: object = "done"):
    calls = []

    def operation() -> object:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise _Refused("connection refused")
        return then

    return operation, calls


def test_a_fault_that_passes_is_waited_out_and_said_once_each_way(capsys) -> None:
    outage = _outage()
    operation, calls = _failing(3)
    assert outage.call(operation) == "done" and len(calls) == 4
    assert outage.call(operation) == "done"  # no fault now: nothing more is said
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == "storage test: connection refused; waiting up to 10 s for it to come back"
    assert lines[1].startswith("storage test: back after 0 s")
    assert outage.began is None and time.time() - outage.ended_at < 5


def test_past_the_limit_it_is_one_line_and_other_faults_are_raised_at_once(capsys) -> None:
    retry.set_outage_seconds(0.3)
    outage = _outage()
    operation, calls = _failing(1000)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        outage.call(operation)
    assert 0.3 <= time.monotonic() - started < 2 and len(calls) > 2
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("connection refused; gave up after 0 s ([storage] "
                                        "outage_seconds = 0.3)")
    with pytest.raises(ValueError):  # not a fault that passes: raised as it is, at once
        outage.call(lambda: int("x"))
    retry.set_outage_seconds(0)  # never wait
    operation, calls = _failing(1)
    with pytest.raises(_Refused):
        outage.call(operation)
    retry.set_outage_seconds(10)
    operation, calls = _failing(1)
    with pytest.raises(_Refused), retry.at_once():  # a first contact's probe
        outage.call(operation)
    assert len(calls) == 1


def test_a_heartbeat_is_tried_once_and_a_stopping_process_waits_for_nothing(
        monkeypatch) -> None:
    outage = _outage()
    operation, calls = _failing(1)
    assert outage.attempt(operation) is False and outage.began is not None
    assert outage.attempt(operation) is True and outage.began is None
    from search import signals

    signals._interrupted.set()
    operation, calls = _failing(5)
    with pytest.raises(KeyboardInterrupt):
        outage.call(operation)
    assert len(calls) == 1


def _error(orig: BaseException, invalidated: bool = False,
           kind: type = sqlalchemy.exc.OperationalError) -> Exception:
    error = kind("SELECT 1", None, orig, connection_invalidated=invalidated)
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during commit")
    wrapped.__cause__ = error
    return wrapped


class _PgError(Exception):
    def __init__(self, text: str, sqlstate: str | None) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("error", "expected"), [
    (_error(_PgError("connection failed: ... Connection refused", None)), True),
    (_error(_PgError("FATAL:  the database system is shutting down", None)), True),
    (_error(_PgError("terminating connection due to administrator command", "57P01")), True),
    (_error(_PgError("the database system is starting up", "57P03")), True),
    (_error(_PgError("sorry, too many clients already", "53300")), True),
    (_error(_PgError("server closed the connection unexpectedly", None), invalidated=True),
     True),
    (_error(_PgError('FATAL:  database "nothing" does not exist', None)), False),
    (_error(_PgError("password authentication failed for user", None)), False),
    (_error(_PgError("value too long for type character varying(2048)", "22001"),
            kind=sqlalchemy.exc.DataError), False),
    (_error(_PgError("duplicate key value", "23505"), kind=sqlalchemy.exc.IntegrityError),
     False),
    (sqlalchemy.exc.DisconnectionError("pool"), True),
    (optuna.exceptions.UpdateFinishedTrialError("finished"), False),
    (StorageUnavailable("gave up"), False),
], ids=lambda value: str(value)[:40] if isinstance(value, Exception) else str(value))
def test_which_database_faults_pass(error: Exception, expected: bool) -> None:
    assert passes(error) is expected


@pytest.mark.parametrize(("error", "expected"), [
    (OSError(errno.EACCES, "Permission denied"), True),
    (OSError(errno.EROFS, "Read-only file system"), True),
    (OSError(errno.ESTALE, "Stale file handle"), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),  # a full disk lasts
    (OSError(errno.EDQUOT, "Disk quota exceeded"), False),
    (FileNotFoundError(errno.ENOENT, "No such file"), False),
    (ValueError("artifact id leaves the store's folder"), False),
], ids=str)
def test_which_folder_faults_pass(error: Exception, expected: bool) -> None:
    assert store_passes(error) is expected


def test_which_s3_faults_pass() -> None:
    botocore = pytest.importorskip("botocore.exceptions")

    def answered(status: int, code: str) -> Exception:
        return botocore.ClientError({"Error": {"Code": code}, "ResponseMetadata": {
            "HTTPStatusCode": status}}, "PutObject")

    assert store_passes(answered(500, "InternalError"))
    assert store_passes(answered(503, "SlowDown"))
    assert store_passes(botocore.ReadTimeoutError(endpoint_url="http://s3"))
    assert store_passes(botocore.EndpointConnectionError(endpoint_url="http://s3"))
    assert store_passes(botocore.ConnectTimeoutError(endpoint_url="http://s3"))
    assert not store_passes(answered(404, "NoSuchBucket"))
    assert not store_passes(answered(403, "AccessDenied"))
    assert not store_passes(botocore.NoCredentialsError())


def test_a_folder_briefly_unwritable_is_waited_out_a_full_disk_is_not(tmp_path, monkeypatch,
                                                                      capsys) -> None:
    location = str(tmp_path / "store")
    store = artifact_store.check(location)
    real_replace, faults = os.replace, []

    def replace(source, target) -> None:
        if faults:
            raise OSError(faults.pop(), os.strerror(errno.EACCES), str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    faults[:] = [errno.EACCES, errno.EACCES]
    with artifact_store.store_errors(location):
        artifact_store.put_bytes(store, "a/checkpoint", b"state")
    assert artifact_store.get_bytes(store, "a/checkpoint") == b"state"
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == [f"artifact store {location}"] * 2
    assert "waiting up to 10 s" in err[0] and "back after" in err[1]
    faults[:] = [errno.ENOSPC]
    with pytest.raises(StoreError, match="the disk is full"):
        with artifact_store.store_errors(location):
            artifact_store.put_bytes(store, "a/other", b"x")
    assert capsys.readouterr().err == ""  # not waited for
    assert sorted(p.name for p in (tmp_path / "store" / "a").iterdir()) == ["checkpoint"]
    retry.set_outage_seconds(0.3)
    faults[:] = [errno.EROFS] * 1000
    with pytest.raises(StoreError) as caught:
        with artifact_store.store_errors(location):
            artifact_store.put_bytes(store, "a/late", b"x")
    assert str(caught.value).startswith(f"artifact store {location}: folder ")
    assert "gave up after" in str(caught.value) and "\n" not in str(caught.value)


# The database: a real SQLite file, its commits made to fail where a network would.


def _storage(tmp_path) -> Storage:
    url = f"sqlite:///{tmp_path}/outage.db"
    outage = _outage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = ReconnectingStorage(url, outage, heartbeat_interval=claim_table.HEARTBEAT_INTERVAL,
                                  grace_period=claim_table.GRACE_PERIOD)
    without_fsync(rdb.engine)
    return Storage(url, rdb, claim_table.ClaimTable(rdb.engine, outage), outage)


class _LostReplies:
    """``arm(marker, times)``: the next ``times`` commits of a transaction that ran SQL
    containing ``marker`` succeed, then report the connection lost (as a server's restart
    between the commit and its reply would)."""

    def __init__(self, engine: sqlalchemy.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.marker, self.times, self.seen = "", 0, False
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._ran)
        commit = engine.dialect.do_commit

        def do_commit(connection) -> None:
            commit(connection)
            seen, self.seen = self.seen, False
            if seen and self.times > 0:
                self.times -= 1
                raise sqlite3.OperationalError(LOST)

        monkeypatch.setattr(engine.dialect, "do_commit", do_commit)

    def _ran(self, connection, cursor, statement: str, *args) -> None:
        self.seen = self.seen or (bool(self.marker) and self.marker in statement)

    def arm(self, marker: str, times: int = 1) -> None:
        self.marker, self.times, self.seen = marker, times, False


def _study(storage: Storage) -> optuna.Study:
    return lifecycle.open_study(storage, definition.parse(GRID, "grid", "grid.toml"))


def test_a_commit_whose_reply_was_lost_is_neither_lost_nor_doubled(tmp_path, monkeypatch,
                                                                   capsys) -> None:
    storage = _storage(tmp_path)
    study = _study(storage)
    lost = _LostReplies(storage.rdb.engine, monkeypatch)
    owner = claim_table.current_owner()
    lost.arm("INSERT INTO grid_claims")  # its retry finds the row: this owner's, so won
    assert storage.claims.try_claim(study_id(study), 3, 0, owner) is True
    assert [c.owner for c in storage.claims.all(study_id(study))] == [owner]
    lost.arm("INSERT INTO trials ")  # Optuna creates it again itself: a spare trial
    held = claims.claim(study, storage, owner)
    made = [t for t in study.get_trials() if t.system_attrs[points.CLAIM][0] == held.unit.id]
    assert [t.state for t in made] == [TrialState.FAIL, TrialState.RUNNING]
    assert made[0].user_attrs[points.FAILURE].startswith("superseded: a spare")
    assert claims.claim(study, storage, owner).unit.id != held.unit.id  # still in flight
    for value in (1.0, 2.0):
        lost.arm("trial_intermediate_values")
        storage.rdb.set_trial_intermediate_value(trial_id(held.trial), 1, value)
    lost.arm("UPDATE trials SET")  # the result: its retry finds it recorded, so it is done
    assert storage.rdb.set_trial_state_values(trial_id(held.trial), TrialState.COMPLETE,
                                              [0.5]) is True
    frozen = storage.rdb.get_trial(trial_id(held.trial))
    assert (frozen.state, frozen.values, frozen.intermediate_values) == \
        (TrialState.COMPLETE, [0.5], {1: 2.0})
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # another's end stays
        storage.rdb.set_trial_state_values(trial_id(held.trial), TrialState.FAIL)
    assert "waiting up to" in capsys.readouterr().err


def test_past_the_limit_the_database_is_one_line(tmp_path, monkeypatch) -> None:
    storage = _storage(tmp_path)
    _study(storage)
    retry.set_outage_seconds(0.3)
    _LostReplies(storage.rdb.engine, monkeypatch).arm("study_user_attributes", 1000)
    with pytest.raises(SearchError) as caught, storage_errors(storage.url):
        storage.rdb.set_study_user_attr(1, "x", 1)
    assert str(caught.value).startswith(f"storage {storage.url}: {LOST}; gave up after")


def _foreign_trial(storage: Storage, study: optuna.Study, unit: points.Unit,
                   heartbeat_age: float) -> int:
    owner = "elsewhere/boot/1/1"
    storage.claims.try_claim(study_id(study), unit.id, 0, owner)
    trial = claims.start_trial(study, storage, unit, 0, owner)
    storage.rdb.record_heartbeat(trial_id(trial))
    with storage.rdb.engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "UPDATE trial_heartbeats SET heartbeat = :when WHERE trial_id = :id"),
            {"when": datetime.datetime.now() - datetime.timedelta(seconds=heartbeat_age),
             "id": trial_id(trial)})
    return trial.number


def test_after_an_outage_silence_counts_from_the_moment_the_database_came_back(
        tmp_path) -> None:
    storage = _storage(tmp_path)
    study = _study(storage)
    from search.study import units

    first, second = units.grid_units(units.stored_grid(study), 1)[:2]
    silent = _foreign_trial(storage, study, first, heartbeat_age=120)  # an outage's length
    storage.claims.try_claim(study_id(study), second.id, 0, "elsewhere/boot/2/1")
    with storage.rdb.engine.begin() as connection:  # claimed 2 minutes ago, no trial yet
        connection.execute(sqlalchemy.text("UPDATE grid_claims SET claimed_at = :when"),
                           {"when": time.time() - 120})
    storage.outage.ended_at = time.time() - 5  # this worker saw the database come back
    assert claims.fail_dead_trials(study, storage) == []
    assert claims.claim(study, storage, "here/boot/3/1").unit.id not in (first.id, second.id)
    storage.outage.ended_at = time.time() - claim_table.GRACE_PERIOD - 1
    assert claims.fail_dead_trials(study, storage) == [silent]


class _Epochs:
    """A trainer of a few 'epochs' that, like the objective, checks its claim at each
    epoch's end; at the first unit's second epoch another machine takes the unit over."""

    def __init__(self, storage: Storage, study: optuna.Study) -> None:
        self.storage, self.study = storage, study
        self.epochs: dict[int, list[int]] = {}
        self.forgotten: list[int] = []

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float:
        from search.study import holding

        for epoch in (1, 2, 3):
            holding.raise_if_taken_over()
            self.epochs.setdefault(unit.id, []).append(epoch)
            trial.report(float(epoch), epoch)
            if unit.id == 0 and epoch == 2:  # its trial stays RUNNING: only the claim moves
                self.storage.claims.try_claim(study_id(self.study), 0, 1, "elsewhere/b/7/1")
        return 1.0

    def forget(self, unit: points.Unit) -> None:
        self.forgotten.append(unit.id)


def test_a_worker_whose_claim_was_taken_over_stops_that_unit(tmp_path) -> None:
    storage = _storage(tmp_path)
    study = _study(storage)
    trainer, ended = _Epochs(storage, study), []

    def stop_after_the_others(trial: optuna.trial.FrozenTrial) -> None:
        ended.append(trial.number)
        if len(ended) == 3:
            raise _Refused("enough")

    with pytest.raises(_Refused):
        loop.work(storage, study, trainer, on_trial_end=stop_after_the_others)
    assert trainer.epochs == {0: [1, 2], 1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2, 3]}
    (taken,) = [t for t in study.get_trials() if t.system_attrs[points.UNIT][0] == 0]
    assert taken.state == TrialState.FAIL and taken.intermediate_values == {1: 1.0, 2: 2.0}
    assert taken.user_attrs[points.FAILURE] == "superseded: the unit was claimed again"
    assert 0 not in trainer.forgotten  # its checkpoints are the new owner's
    assert claims.holds(study, storage, 0, 1) and not claims.holds(study, storage, 0, 0)


class _Away:
    """While ``down``, every statement on the engine fails as on a server that is away."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.down = False
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._ran)

    def _ran(self, *args) -> None:
        if self.down:
            raise sqlite3.OperationalError(LOST)


def test_a_trial_trains_on_while_the_database_is_away_and_its_epochs_follow(tmp_path,
                                                                         capsys) -> None:
    storage = _storage(tmp_path)
    study = _study(storage)
    away, epochs = _Away(storage.rdb.engine), behind.EpochWrites()
    claimed = claims.claim(study, storage, claim_table.current_owner())
    trial = claimed.trial

    def report(step: int):
        return lambda: trial.report(float(step), step)

    with holding.hold(storage, study, claimed):
        away.down, started = True, time.monotonic()
        for step in (1, 2):  # each epoch's end: nothing is waited for, nothing is lost
            assert not epochs.owned()
            epochs.keep([report(step)])
        assert time.monotonic() - started < 1 and epochs.behind == 2
        away.down = False
        assert epochs.owned()
        epochs.write([report(3)])
        away.down = True
        retry.set_outage_seconds(0.2)
        assert not epochs.owned()
        time.sleep(0.3)
        with pytest.raises(StorageUnavailable):  # past the limit it ends, as any call does
            epochs.owned()
        away.down = False
    assert storage.rdb.get_trial(trial_id(trial)).intermediate_values == \
        {1: 1.0, 2: 2.0, 3: 3.0}
    said = capsys.readouterr().err
    assert said.count("waiting up to") == 2 and said.count("back after") == 2


@pytest.mark.parametrize(("value", "expected"), [
    ("", 120), ("outage_seconds = 0\n", 0), ("outage_seconds = 7.5\n", 7.5)])
def test_outage_seconds_is_read_from_the_study_file(value: str, expected: float) -> None:
    study = definition.parse(GRID + "\n[storage]\n" + value, "grid", "grid.toml")
    assert study.outage_seconds == expected


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "'storage.outage_seconds' must be 0 or more"),
    ('"2 minutes"', "'storage.outage_seconds' must be")])
def test_a_bad_outage_seconds_is_one_line(value: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        definition.parse(GRID + f"\n[storage]\noutage_seconds = {value}\n", "grid", "grid.toml")


def test_a_server_that_answers_nothing_fails_a_connection_in_seconds() -> None:
    from sqlalchemy.engine import make_url

    from search.study.reconnecting import engine_options

    assert engine_options(make_url("postgresql+psycopg://u@db/search")) == {
        "pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    assert engine_options(make_url("postgresql+psycopg://u@db/search?connect_timeout=3")) \
        == {"pool_pre_ping": True}  # the URL's own wins
