"""What reaches every node through Ray's ``runtime_env``: the study file and the code and data
files it names, nothing else; and how the storage's password stays off the cluster.

``working_dir`` on the studies folder would upload its databases, checkpoints and artifacts
too; so a temporary folder holds copies of just the study file, the modules (or packages)
its ``[model] build`` and ``[data] load`` name and an ``[data] path`` file, and Ray unpacks it
on each node as the worker's current folder. Nothing of the user's is pickled.

A password in the storage URL is not sent either: Ray keeps task arguments where its tools
can show them. Each node's worker takes it from its own environment (``$OPTUNA_STORAGE``
naming the same database, or what the driver reads itself, e.g. ``PGPASSWORD``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import sqlalchemy

from search.definition import StudyDefinition
from search.locations import STORAGE_VARIABLE
from search.options import RunOptions
from search.study.storage import parse_url


def named_files(definition: StudyDefinition) -> list[Path]:
    """The modules, package folders and data file beside the study file that it names."""
    folder = definition.folder
    if folder is None:
        return []
    model, data = definition.model or {}, definition.data or {}
    found = []
    for spec in (model.get("build"), data.get("load")):
        if isinstance(spec, str) and ":" in spec:
            top = spec.partition(":")[0].split(".")[0]
            found += [folder / f"{top}.py", folder / top]
    if isinstance(data.get("path"), str):
        found.append(folder / data["path"])  # elsewhere: read at the same path on each node
    return [path for path in dict.fromkeys(found)
            if path.exists() and path.resolve().is_relative_to(folder.resolve())]


def study_file_name(definition: StudyDefinition) -> str | None:
    """The study file's name in the package; None for a definition made in Python."""
    has_file = definition.file is not None and Path(definition.file).is_file()
    return Path(definition.file).name if has_file else None


@contextlib.contextmanager
def study_package(definition: StudyDefinition) -> Iterator[dict | None]:
    """The ``runtime_env`` with the package, while it exists (Ray uploads it at connection).
    """
    name = study_file_name(definition)
    if name is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="search-cluster-") as temporary:
        root = Path(temporary)
        shutil.copy2(definition.file, root / name)
        for path in named_files(definition):
            copy = root / path.resolve().relative_to(definition.folder.resolve())
            if path.is_dir():
                shutil.copytree(path, copy,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
        yield {"working_dir": str(root)}


def _bare(url: str) -> sqlalchemy.engine.URL:
    """The URL without its password (``URL.set`` takes None for "unchanged")."""
    parsed = parse_url(url)
    return sqlalchemy.engine.URL.create(
        parsed.drivername, username=parsed.username, host=parsed.host, port=parsed.port,
        database=parsed.database, query=parsed.query)


def without_password(options: RunOptions) -> RunOptions:
    """The options as they travel to the nodes: the storage URL without its password."""
    if parse_url(options.storage_url).password is None:
        return options
    bare = _bare(options.storage_url).render_as_string(hide_password=False)
    return dataclasses.replace(options,
                               locations=dataclasses.replace(options.locations,
                                                             storage_url=bare))


def on_this_node(options: RunOptions, study_file: str | None,
                 environment: Mapping[str, str] = os.environ) -> RunOptions:
    """The options a node's worker runs with: the uploaded study file (in the current
    folder) and the password from this node's own ``$OPTUNA_STORAGE``, if it names the same
    database."""
    definition = options.definition
    if study_file is not None:
        definition = dataclasses.replace(definition, file=str(Path.cwd() / study_file))
    url = options.storage_url
    mine = environment.get(STORAGE_VARIABLE)
    if mine and parse_url(url).password is None and _bare(mine) == parse_url(url):
        url = mine
    # cluster=None: the worker is the one place it trains; it joins nothing itself.
    return dataclasses.replace(options, definition=definition, cluster=None,
                               locations=dataclasses.replace(options.locations,
                                                             storage_url=url))
