"""The ``grid_claims`` table, and how a worker process is named so others can tell whether
it still lives.

A worker *claims* a unit by inserting the row (study, unit, attempt); the primary key is
exactly those three columns, so of two workers that try the same unit at the same moment
exactly one insert succeeds, on SQLite and PostgreSQL alike. ``search.study.claims`` decides
which unit to try; this module only holds the rows and the owners' identities. Each query
waits out a database outage (``search.study.retry``), as Optuna's calls do.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlalchemy

from search.study import retry

T = TypeVar("T")

# Workers write a heartbeat this often; a trial silent for GRACE_PERIOD is taken as dead.
# A dead worker on this machine is recognised at once by its process id instead.
HEARTBEAT_INTERVAL = 5
GRACE_PERIOD = 30

_metadata = sqlalchemy.MetaData()
claims_table = sqlalchemy.Table(
    "grid_claims",
    _metadata,
    sqlalchemy.Column("study_id", sqlalchemy.Integer, primary_key=True, autoincrement=False),
    # The unit's id (search.study.points.Unit.id); the column keeps its first name so that
    # databases made before replicates existed need no migration.
    sqlalchemy.Column("grid_id", sqlalchemy.Integer, primary_key=True, autoincrement=False,
                      key="unit"),
    sqlalchemy.Column("attempt", sqlalchemy.Integer, primary_key=True, autoincrement=False),
    sqlalchemy.Column("owner", sqlalchemy.String(255), nullable=False),
    sqlalchemy.Column("claimed_at", sqlalchemy.Float, nullable=False),
)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "unknown"


def _process_start(pid: int) -> str:
    """The kernel's start time of a living ``pid`` ("?" if none), so a reused pid is not
    taken for the old process. A zombie counts as dead: it has exited, only its parent
    has not collected it yet."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return "?"
    return "?" if fields[0] in ("Z", "X") else fields[19]


def current_owner() -> str:
    """This process, named so that another process can tell whether it is still alive."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{_process_start(pid)}"


def is_alive(owner: str) -> bool | None:
    """True or False for a process on this machine (and this boot); None when unknowable."""
    host, boot, pid, start = owner.split("/")
    if host != socket.gethostname():
        return None
    if boot != _boot_id():
        return False  # the machine rebooted since: every process of that boot is gone
    return start != "?" and _process_start(int(pid)) == start


@dataclasses.dataclass(frozen=True)
class Claim:
    unit: int
    attempt: int
    owner: str
    claimed_at: float


class ClaimTable:
    """The ``grid_claims`` table, kept in the same database as the study."""

    def __init__(self, engine: sqlalchemy.Engine, outage: retry.Outage | None = None) -> None:
        self._engine, self._outage = engine, outage
        _metadata.create_all(engine, checkfirst=True)

    def _call(self, operation: Callable[[], T]) -> T:
        return self._outage.call(operation) if self._outage else operation()

    def _rows(self, query: sqlalchemy.Select) -> list[sqlalchemy.Row]:
        def read() -> list[sqlalchemy.Row]:
            with self._engine.connect() as connection:
                return list(connection.execute(query).all())

        return self._call(read)

    def all(self, study_id: int, unit: int | None = None) -> list[Claim]:
        """The study's claims (of one unit, if given)."""
        query = sqlalchemy.select(claims_table).where(claims_table.c.study_id == study_id)
        if unit is not None:
            query = query.where(claims_table.c.unit == unit)
        return [Claim(row.unit, row.attempt, row.owner, row.claimed_at)
                for row in self._rows(query)]

    def try_claim(self, study_id: int, unit: int, attempt: int, owner: str) -> bool:
        """Insert the claim; False if another worker holds that (unit, attempt) already.

        A retried insert whose first try had committed finds the row: it is this owner's,
        so the claim is won, not lost to a worker that does not exist."""
        def insert() -> bool:
            try:
                with self._engine.begin() as connection:
                    connection.execute(claims_table.insert().values(
                        study_id=study_id, unit=unit, attempt=attempt, owner=owner,
                        claimed_at=time.time()))
            except sqlalchemy.exc.IntegrityError:
                return any(claim.attempt == attempt and claim.owner == owner
                           for claim in self.all(study_id, unit))
            return True

        return self._call(insert)

    def delete_study(self, study_id: int) -> None:
        def delete() -> None:
            with self._engine.begin() as connection:
                connection.execute(
                    claims_table.delete().where(claims_table.c.study_id == study_id))

        self._call(delete)
