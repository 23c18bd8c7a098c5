"""A full disk, said in one line (where, how much is left there, what to do), and files
written whole or not at all, so that a disk filling up mid-write corrupts nothing.

Every place that writes to a disk (a checkpoint, a trial's model or figure, an exported
model, the report's figures, the SQLite database) turns ENOSPC, EDQUOT and SQLite's
"database or disk is full" into ``full_line``'s wording::

    artifact store studies/mnist.artifacts: the disk is full (12 KB free of 3.0 MB at
    studies/mnist.artifacts); free some space there, then run the same command to resume
    (what was stored is intact)
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)


def is_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it wraps: SQLAlchemy's ``orig``, a ``__cause__``) says a
    disk, a quota or an SQLite database is full."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            return True
        if isinstance(error, sqlite3.Error) and (
                getattr(error, "sqlite_errorcode", None) == _SQLITE_FULL
                or "database or disk is full" in str(error)):
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}" if count < 10 * scale \
                else f"{count // scale} {unit}"
    return f"{count} bytes"


def free_space(location: str | Path) -> str:
    """``12 KB free of 3.0 MB at LOCATION``: the file system that holds it (its nearest
    folder that exists)."""
    folder = Path(location)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return f"free space at {location} unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)} at {location}"


def full_line(location: str | Path,
              remedy: str = "free some space there, then run the same command to resume",
              what: str = "the disk is full", kept: str = "what was stored is intact") -> str:
    """What is full and how much is left where, what to do, and that nothing was lost."""
    return f"{what} ({free_space(location)}); {remedy} ({kept})"


def write_whole(path: str | Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(temporary)``, a file beside it with the same suffix,
    then rename it over ``path``: a full disk (or a kill) leaves the old file, never half
    of the new one."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:  # said of the file the caller named
        if error.filename is None or Path(error.filename) == temporary:
            error.filename = str(path)
        raise
    finally:
        temporary.unlink(missing_ok=True)
