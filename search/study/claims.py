"""Which unit (grid point and replicate) a worker runs next, claimed so that no two run it.

Optuna's GridSampler picks a point by reading which trials exist and then creating a trial:
two workers can read the same state and pick the same point. Here a worker first *claims* a
unit by inserting the row (study, unit, attempt) into ``grid_claims``, whose primary key is
exactly those three columns. The database admits one row per key, on SQLite and PostgreSQL
alike, so of two workers that try the same unit at the same moment exactly one insert
succeeds; the other gets an integrity error and looks again. Attempt k+1 of a unit is only
tried once attempt k has ended (its trial finished, or its worker is dead), and never once
the unit has a COMPLETE trial, so each unit gets at most one live attempt and exactly one
COMPLETE trial.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from search.study import points
from search.study.optuna_internals import stale_trial_ids, study_id, trial_id

if TYPE_CHECKING:
    from search.study.storage import Storage

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
    unit: int
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

    def try_claim(self, study_id: int, unit: int, attempt: int, owner: str) -> bool:
        """Insert the claim; False if another worker holds that (unit, attempt) already."""
        try:
            with self._engine.begin() as connection:
                connection.execute(claims_table.insert().values(
                    study_id=study_id, grid_id=unit, attempt=attempt, owner=owner,
                    claimed_at=time.time()))
        except sqlalchemy.exc.IntegrityError:
            return False
        return True

    def delete_study(self, study_id: int) -> None:
        with self._engine.begin() as connection:
            connection.execute(claims_table.delete().where(claims_table.c.study_id == study_id))


# --- choosing the next unit ----------------------------------------------------------------


def mark_failed(storage: Storage, trial_id: int, reason: str) -> bool:
    """Record why, then FAIL the trial; False if it had already finished."""
    try:
        storage.optuna.set_trial_user_attr(trial_id, points.FAILURE, reason)
        return storage.optuna.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def fail_dead_trials(study: optuna.Study, storage: Storage) -> list[int]:
    """FAIL every RUNNING trial whose worker is gone; return their numbers.

    A worker on this machine is dead when its process is; one elsewhere when its heartbeat
    is older than the grace period. So a rerun on one machine recovers at once.
    """
    stale = stale_trial_ids(storage, study)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(points.OWNER)
        alive = is_alive(owner) if owner else None
        if alive is False or (alive is None and trial_id(trial) in stale):
            how = "its process is gone" if alive is False else "its heartbeat stopped"
            if mark_failed(storage, trial_id(trial), f"worker died: {how}"):
                recovered.append(trial.number)
    return recovered


def _in_flight(claim: Claim, trials: list[FrozenTrial]) -> bool:
    """Whether the claim's attempt may still be running."""
    for trial in trials:
        if trial.system_attrs.get(points.CLAIM) == [claim.unit, claim.attempt]:
            return trial.state == TrialState.RUNNING
    # Claimed but no trial yet: in flight while its owner lives (or, elsewhere, briefly).
    alive = is_alive(claim.owner)
    return alive is True or (alive is None and time.time() - claim.claimed_at < GRACE_PERIOD)


def claim_next(study: optuna.Study, storage: Storage,
               owner: str) -> tuple[points.Unit, int] | None:
    """Claim a unit that needs a run; return (unit, attempt), or None if none is free."""
    fail_dead_trials(study, storage)
    trials = study.get_trials(deepcopy=False)
    latest: dict[int, Claim] = {}
    for claim in storage.claims.all(study_id(study)):
        if claim.unit not in latest or claim.attempt > latest[claim.unit].attempt:
            latest[claim.unit] = claim
    limit = points.max_attempts(study)
    for status in points.unit_status(study, trials):
        if status.state(limit) not in points.CLAIMABLE:
            continue
        unit = status.unit
        claim = latest.get(unit.id)
        if claim is not None and _in_flight(claim, trials):
            continue
        attempt = claim.attempt + 1 if claim is not None else 0
        if storage.claims.try_claim(study_id(study), unit.id, attempt, owner):
            return unit, attempt
    return None


def still_latest(study: optuna.Study, storage: Storage, unit: int, attempt: int) -> bool:
    """After creating its trial, a worker checks nobody took the unit over meanwhile."""
    claims = storage.claims.all(study_id(study))
    return all(claim.attempt <= attempt for claim in claims if claim.unit == unit)
