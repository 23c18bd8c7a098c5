"""A study's storage: Optuna's RDBStorage on SQLite or PostgreSQL, checked first.

``open_storage`` opens it for a run (creating tables); ``open_for_reading`` opens it for the
report and the dashboard (creating nothing). Every way the storage can be wrong (a bad URL,
a missing driver, a file that is not a database, a read-only or locked file, an unreachable
server) becomes one SearchError line, raised before anything is written. Once open, a run's
storage waits out a PostgreSQL outage (``search.study.reconnecting``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy

from search import disk_space
from search.errors import SearchError
from search.study import claim_table, reconnecting, retry, sqlite_file

# SQLite serialises writers; a writer waits this long for the lock rather than failing
# with "database is locked" while another worker commits.
SQLITE_TIMEOUT = 60
# Any fixed number: the PostgreSQL advisory lock that processes creating tables take turns on.
_SCHEMA_LOCK_KEY = 0x5EA4C4


@dataclasses.dataclass
class Storage:
    url: str
    rdb: optuna.storages.RDBStorage  # Optuna's storage of the same database
    claims: claim_table.ClaimTable
    outage: retry.Outage  # the database's faults as this process meets them

    @property
    def display_url(self) -> str:
        return display(self.url)


def parse_url(url: str) -> sqlalchemy.engine.URL:
    try:
        return sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise SearchError(f"storage URL {url!r} is not a database URL; use e.g. "
                          "sqlite:///studies/mnist.db or postgresql+psycopg://user@host/db") \
            from None


def display(url: str) -> str:
    """The URL with its password masked: what messages show."""
    return parse_url(url).render_as_string(hide_password=True)


def new_file(url: str) -> Path | None:
    """The SQLite file ``url`` names if it is not made yet, checked as ``open_storage`` checks
    it but not made (a run makes it once its input has passed: bad input leaves no file)."""
    parsed = parse_url(url)
    file = Path(parsed.database or ".")
    if parsed.get_backend_name() != "sqlite" or not parsed.database or file.exists():
        return None
    sqlite_file.check(parsed)
    return file


def describe_error(error: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background links."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__
    if "locked" in text:
        text += " (another program holds a write lock; wait for it or stop it)"
    elif "disk is full" in text or "No space left" in text:
        text += " (free some disk space; stored trials are intact)"
    elif "readonly" in text or "read-only" in text:
        text += " (make the file and its folder writable)"
    return text


@contextlib.contextmanager
def _schema_lock(url: sqlalchemy.engine.URL, engine_kwargs: dict) -> Iterator[None]:
    """Processes opening a new database at the same moment take turns creating its tables.

    Each would otherwise check that a table is missing, then create it, and all but one
    fail ("table ... already exists", inside Optuna too). On SQLite the turns are an
    flock on the database file, which SQLite's own byte-range locks do not see; on
    PostgreSQL, a transaction-scoped advisory lock.
    """
    if url.get_backend_name() == "sqlite":
        try:
            descriptor = os.open(url.database, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as error:
            raise SearchError(f"storage {url}: cannot open {url.database} ({error.strerror})") \
                from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)
        return
    if url.get_backend_name() != "postgresql":
        yield  # other databases: no lock, as with Optuna alone
        return
    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _SCHEMA_LOCK_KEY})
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn database failures inside the block into one SearchError line."""
    shown = display(url)
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        cause = error.__cause__ if isinstance(error.__cause__, sqlalchemy.exc.SQLAlchemyError) \
            else error
        raise SearchError(f"storage {shown}: {_full_or_described(url, cause)}") from None


def _full_or_described(url: str, error: BaseException) -> str:
    """A full SQLite database names its file and the space left there; else the error."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and disk_space.is_full(error):
        return disk_space.full_line(parsed.database, what="database or disk is full")
    return describe_error(error)


def open_storage(url: str, wait: bool = False) -> Storage:
    """Open (creating if needed) the RDB storage at ``url`` with heartbeats on. A failed
    first contact is one line at once (a wrong URL is no outage) unless ``wait``: a worker
    opens what its run has just reached, and waits out an outage as later calls do."""
    parsed = parse_url(url)
    engine_kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        sqlite_file.check(parsed)
        if "timeout" not in parsed.query:  # sqlite:///x.db?timeout=S sets it per URL
            engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT}
    else:
        engine_kwargs = reconnecting.engine_options(parsed)
    try:
        sqlalchemy.create_engine(parsed, **engine_kwargs).dispose()
    except (ModuleNotFoundError, sqlalchemy.exc.NoSuchModuleError) as error:
        extra = " (pip install -e '.[postgres]')" if "postgres" in parsed.drivername else ""
        raise SearchError(f"storage {parsed.render_as_string(hide_password=True)}: the driver "
                          f"for '{parsed.drivername}' is not installed ({error}){extra}") from None
    outage = reconnecting.outage_of(display(url), parsed.get_backend_name(), describe_error)

    def connect() -> Storage:
        with warnings.catch_warnings(), _schema_lock(parsed, engine_kwargs):
            # Heartbeats are experimental in Optuna; the warning would break one-line errors.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = reconnecting.ReconnectingStorage(
                url, outage, engine_kwargs=engine_kwargs,
                heartbeat_interval=claim_table.HEARTBEAT_INTERVAL,
                grace_period=claim_table.GRACE_PERIOD)
            claims = claim_table.ClaimTable(rdb.engine, outage)
        return Storage(url=url, rdb=rdb, claims=claims, outage=outage)

    with storage_errors(url):
        return outage.call(connect) if wait else connect()


def _run_flags(name: str) -> str:
    """``mnist --quick`` for the stored study mnist-quick: the command that makes it."""
    if name.endswith("-quick"):
        return name.removesuffix("-quick") + " --quick"
    base, _, epochs = name.rpartition("-epochs")
    return f"{base} --epochs {epochs}" if base and epochs.isdigit() else name


def open_for_reading(url: str, name: str) -> optuna.storages.RDBStorage:
    """The storage at URL, opened without creating tables or files; it must hold NAME."""
    parsed = parse_url(url)
    shown = display(url)
    run_it = f"run python -m search.run --study {_run_flags(name)} first"
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            raise SearchError(f"storage {shown}: {path} does not exist; {run_it}")
    try:
        with storage_errors(url):
            rdb = optuna.storages.RDBStorage(url, skip_table_creation=True)
    except (ModuleNotFoundError, sqlalchemy.exc.NoSuchModuleError) as error:
        raise SearchError(f"storage {shown}: the driver for '{parsed.drivername}' is not "
                          f"installed ({error})") from None
    except SearchError as error:
        if "no such table" not in str(error):
            raise
        raise SearchError(f"storage {shown} holds no Optuna studies; {run_it}") from None
    with storage_errors(url):
        known = optuna.get_all_study_names(rdb)
        if name not in known:
            raise SearchError(f"storage {shown} has no study '{name}' (it holds: "
                              f"{', '.join(known) or 'none'}); {run_it}")
    return rdb


def load_for_reading(url: str, name: str) -> optuna.Study:
    """The stored study NAME at URL, for the tools that only read."""
    rdb = open_for_reading(url, name)
    with storage_errors(url):
        return optuna.load_study(study_name=name, storage=rdb)
