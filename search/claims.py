"""Which grid point a worker runs next, claimed so that no two workers run the same one.

Optuna's GridSampler picks a point by reading which trials exist and then creating a trial:
two workers can read the same state and pick the same point (four workers on SQLite ran 12
trials for 9 points). Here a worker first *claims* a point by inserting the row
(study, grid point, attempt) into ``grid_claims``, whose primary key is exactly those three
columns. The database admits one row per key, on SQLite and PostgreSQL alike, so of two
workers that try the same point at the same moment exactly one insert succeeds; the other
gets an integrity error and looks again. Attempt k+1 of a point is only tried once
attempt k has ended (its trial finished, or its worker is dead), and never once the point
has a COMPLETE trial, so each point gets at most one live attempt and exactly one COMPLETE
trial.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path

import sqlalchemy

_metadata = sqlalchemy.MetaData()
claims_table = sqlalchemy.Table(
    "grid_claims",
    _metadata,
    sqlalchemy.Column("study_id", sqlalchemy.Integer, primary_key=True, autoincrement=False),
    sqlalchemy.Column("grid_id", sqlalchemy.Integer, primary_key=True, autoincrement=False),
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
    grid_id: int
    attempt: int
    owner: str
    claimed_at: float


class ClaimTable:
    """The ``grid_claims`` table, kept in the same database as the study."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self._engine = engine
        _metadata.create_all(engine, checkfirst=True)

    def all(self, study_id: int) -> list[Claim]:
        query = sqlalchemy.select(claims_table).where(claims_table.c.study_id == study_id)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [Claim(row.grid_id, row.attempt, row.owner, row.claimed_at)
                for row in rows]

    def try_claim(self, study_id: int, grid_id: int, attempt: int, owner: str) -> bool:
        """Insert the claim; False if another worker holds that (point, attempt) already."""
        try:
            with self._engine.begin() as connection:
                connection.execute(claims_table.insert().values(
                    study_id=study_id, grid_id=grid_id, attempt=attempt, owner=owner,
                    claimed_at=time.time()))
        except sqlalchemy.exc.IntegrityError:
            return False
        return True

    def delete_study(self, study_id: int) -> None:
        with self._engine.begin() as connection:
            connection.execute(claims_table.delete().where(claims_table.c.study_id == study_id))
