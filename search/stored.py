"""Finding a study that has already run, for the tools that only read it.

The report (``python scripts/report.py --study mnist``) and the dashboard
(``python -m search.dashboard --study mnist``) look a study up where ``python -m search.run``
put it and create nothing: a missing file or study is one line, never an empty database.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import sqlalchemy

from search import definition as definitions
from search.errors import SearchError
from search.storage import storage_errors

# Studies that search.run derives from a definition: --quick and --epochs N.
_DERIVED = re.compile(r"^(?P<base>.+?)(?P<suffix>-quick|-epochs\d+)$")


def find_definition(name: str, studies_dir: Path) -> definitions.StudyDefinition:
    """``studies/NAME.toml``, or for NAME-quick and NAME-epochsN the one they came from."""
    match = _DERIVED.match(name)
    if match and not (studies_dir / f"{name}.toml").is_file():
        base = definitions.load(match["base"], studies_dir)
        return base.with_overrides(name_suffix=match["suffix"])
    return definitions.load(name, studies_dir)


def storage_url(name: str, storage: str | None, studies_dir: Path) -> str:
    """The URL search.run used: --storage, else the definition's, else studies/NAME.db."""
    if storage:
        return storage
    return find_definition(name, studies_dir).default_storage_url(studies_dir)


def _parse(url: str) -> sqlalchemy.engine.URL:
    try:
        return sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise SearchError(f"storage URL {url!r} is not a database URL; use e.g. "
                          "sqlite:///studies/mnist.db") from None


def open_storage(url: str, name: str) -> optuna.storages.RDBStorage:
    """The storage at URL, opened without creating tables or files; it must hold NAME."""
    parsed = _parse(url)
    shown = parsed.render_as_string(hide_password=True)
    run_it = f"run python -m search.run --study {name} first"
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            raise SearchError(f"storage {shown}: {path} does not exist; {run_it}")
    try:
        with storage_errors(url):
            storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    except (ModuleNotFoundError, sqlalchemy.exc.NoSuchModuleError) as error:
        raise SearchError(f"storage {shown}: the driver for '{parsed.drivername}' is not "
                          f"installed ({error})") from None
    except SearchError as error:
        if "no such table" not in str(error):
            raise
        raise SearchError(f"storage {shown} holds no Optuna studies; {run_it}") from None
    with storage_errors(url):
        known = optuna.get_all_study_names(storage)
    if name not in known:
        raise SearchError(f"storage {shown} has no study '{name}' (it holds: "
                          f"{', '.join(known) or 'none'}); {run_it}")
    return storage


def load_study(url: str, name: str) -> optuna.Study:
    """The stored study NAME at URL, for reading."""
    storage = open_storage(url, name)
    with storage_errors(url):
        return optuna.load_study(study_name=name, storage=storage)
