"""Where a study's things live: the studies folder, the database, the artifact store and
reports. Computed once, from the options or a reading tool's flags, and passed on as one
``Locations`` value; nothing else works out a path.

The database is ``--storage``, else ``$OPTUNA_STORAGE``, else the definition's ``[storage]
url``, else ``studies/NAME.db``. The artifact store (checkpoints under ``checkpoints/NAME/``,
the trials' figures, histories and models) is ``--artifacts``, else ``$SEARCH_ARTIFACTS``,
else the definition's ``[storage] artifacts``, else a folder beside a SQLite file
(``studies/NAME.artifacts``), else in the studies folder. It is a location string, a folder
or ``s3://bucket/prefix``; ``search.study.artifact_store`` opens it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search import definition
from search.errors import SearchError

STORAGE_VARIABLE = "OPTUNA_STORAGE"  # as Optuna's own command line reads it
ARTIFACTS_VARIABLE = "SEARCH_ARTIFACTS"
REPORTS_DIR = Path("reports")


@dataclasses.dataclass(frozen=True)
class Locations:
    study_name: str
    studies_dir: Path  # the user's definitions, and by default everything below
    storage_url: str
    # The artifact store: a folder or s3://bucket/prefix (never credentials), holding the
    # checkpoints of unfinished units and the trials' figures, histories and models.
    artifacts: str
    reports: Path  # the report's figures

    def to_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Locations:
        paths = {key: Path(value) for key, value in fields.items()
                 if key in ("studies_dir", "reports")}
        return cls(study_name=fields["study_name"], storage_url=fields["storage_url"],
                   artifacts=fields["artifacts"], **paths)

    def make_studies_dir(self) -> None:
        """The default database lives in the studies folder, made when first needed (a
        fresh folder has none); a --storage file in a missing folder stays an error."""
        if self.storage_url != _default_url(self.study_name, self.studies_dir) \
                or self.studies_dir.is_dir():
            return
        try:
            self.studies_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SearchError(f"cannot create the studies folder {self.studies_dir}: "
                              f"{error.strerror}; pass --studies-dir or --storage") from None


def _default_url(name: str, studies_dir: Path) -> str:
    return f"sqlite:///{studies_dir / name}.db"


def _beside_database(storage_url: str, suffix: str) -> Path | None:
    """``studies/mnist.db`` -> ``studies/mnist.SUFFIX``; None unless the storage is a file."""
    try:
        url = make_url(storage_url)
    except ArgumentError:  # not a URL at all: opening the storage says so, in one line
        return None
    if url.get_backend_name() == "sqlite" and url.database:
        database = Path(url.database)
        return database.with_name(f"{database.stem}.{suffix}")
    return None


def artifacts_location(flag: str | None, study_file: str | None, default_folder: Path) -> str:
    """--artifacts, else $SEARCH_ARTIFACTS, else the study file's [storage] artifacts, else
    the default folder, as for the database URL."""
    return flag or os.environ.get(ARTIFACTS_VARIABLE) or study_file or str(default_folder)


def locate(study: definition.StudyDefinition, storage_url: str | None = None,
           studies_dir: Path | None = None, artifacts: str | None = None) -> Locations:
    """Where the study lives; ``storage_url`` and ``artifacts`` are the --storage and
    --artifacts flags, if given."""
    folder = studies_dir or definition.STUDIES_DIR
    url = storage_url or os.environ.get(STORAGE_VARIABLE) or study.storage_url \
        or _default_url(study.name, folder)
    # One artifact folder serves every study in a SQLite file (artifact ids are unique), so
    # the dashboard, which shows a whole storage, finds them all.
    default = _beside_database(url, "artifacts") or folder / f"{study.name}.artifacts"
    return Locations(
        study_name=study.name, studies_dir=folder, storage_url=url,
        artifacts=artifacts_location(artifacts, study.artifacts, default),
        reports=REPORTS_DIR / study.name)


def locate_stored(name: str, storage_url: str | None = None, studies_dir: Path | None = None,
                  artifacts: str | None = None) -> Locations:
    """Where ``python -m search.run`` stored the study NAME (NAME-quick and NAME-epochsN
    included): for the tools that only read it."""
    folder = studies_dir or definition.STUDIES_DIR
    if storage_url or os.environ.get(STORAGE_VARIABLE):
        # The definition is needed only for its [storage] artifacts: read it if it is here.
        try:
            found = definition.find(name, folder)
        except SearchError:
            found = definition.StudyDefinition(name=name, search_space={})
        return locate(found, storage_url, folder, artifacts)
    return locate(definition.find(name, folder), None, folder, artifacts)
