"""A study's SQLite file, checked before SQLite opens (or makes) it: each way it can be
unusable is one line saying what to do."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import sqlalchemy

from search.errors import SearchError

_SQLITE_HEADER = b"SQLite format 3\x00"
_ANY_WRITE_BIT = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def check(url: sqlalchemy.engine.URL) -> None:
    """A file a study can use, or one that can be made there; else SearchError."""
    database = url.database
    if not database or database == ":memory:":
        raise SearchError(f"storage {url}: a study needs a file, not an in-memory database")
    path = Path(database)
    if not path.parent.is_dir():
        raise SearchError(f"storage {url}: folder {path.parent} does not exist; create it")
    if path.exists():
        if path.is_dir():
            raise SearchError(f"storage {url}: {path} is a folder, not a database file")
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
        if header and header != _SQLITE_HEADER:
            raise SearchError(f"storage {url}: {path} is not a SQLite database; "
                              "point --storage at another file")
        # os.access alone says yes to root; a file with no write bit was made read-only
        # on purpose, and writing into it anyway would break that promise.
        if not os.access(path, os.W_OK) or not path.stat().st_mode & _ANY_WRITE_BIT:
            raise SearchError(f"storage {url}: {path} is read-only; make it writable")
    if not os.access(path.parent, os.W_OK):
        raise SearchError(f"storage {url}: folder {path.parent} is read-only; SQLite needs to "
                          "write its journal there")
