"""Study definitions: one TOML file per study under ``studies/``.

A definition holds the search space and the training budget. It is checked on load, so a
typo ends in one line naming the file and the key, before any trial starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import SearchError

STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"

# Each key: (type or types, required, default).
_SCHEMA: dict[str, dict[str, tuple[Any, bool, Any]]] = {
    "search_space": {},  # any names, each a non-empty list of numbers or strings
    "training": {
        "epochs": (int, True, None),
        "hidden_units": (list, True, None),
        "validation_size": (int, True, None),
        "train_size": (int, False, None),
        "seed": (int, True, None),
        "max_attempts": (int, False, 3),
        "repeats": (int, False, 1),
    },
    "storage": {
        "url": (str, False, None),
    },
}
_REQUIRED_PARAMETERS = ("learning_rate", "batch_size")


@dataclasses.dataclass(frozen=True)
class StudyDefinition:
    """A study's search space and budget, as read from ``studies/NAME.toml``."""

    name: str
    search_space: dict[str, list[Any]]
    epochs: int
    hidden_units: list[int]
    validation_size: int
    seed: int
    max_attempts: int = 3
    repeats: int = 1  # replicates per grid point; may grow on a stored study, never shrink
    train_size: int | None = None
    storage_url: str | None = None
    source: str = ""

    @property
    def grid(self) -> list[dict[str, Any]]:
        """Every point of the search space, in a fixed order."""
        names = list(self.search_space)
        values = itertools.product(*(self.search_space[name] for name in names))
        return [dict(zip(names, point, strict=True)) for point in values]

    def default_storage_url(self, studies_dir: Path = STUDIES_DIR) -> str:
        return self.storage_url or f"sqlite:///{studies_dir / self.name}.db"

    def with_overrides(self, epochs: int | None = None, train_size: int | None = None,
                       repeats: int | None = None, name_suffix: str = "") -> StudyDefinition:
        changes: dict[str, Any] = {"name": self.name + name_suffix}
        for key, value in (("epochs", epochs), ("train_size", train_size),
                           ("repeats", repeats)):
            if value is not None:
                changes[key] = value
        return dataclasses.replace(self, **changes)

    def seed_for(self, replicate: int) -> int:
        """The seed of a replicate's initial weights and batch order, the same at every point.

        Replicate 0 uses the study's seed itself, so a one-replicate study trains as before;
        the others draw theirs from (seed, replicate). The validation split always uses the
        study's seed.
        """
        if replicate == 0:
            return self.seed
        return int(np.random.SeedSequence([self.seed, replicate]).generate_state(1)[0])

    def budget(self) -> dict[str, Any]:
        """What the stored trials depend on: a study is not continued if this changes."""
        return {
            "search_space": self.search_space,
            "epochs": self.epochs,
            "hidden_units": self.hidden_units,
            "validation_size": self.validation_size,
            "train_size": self.train_size,
            "seed": self.seed,
        }


def _check_type(source: str, key: str, value: Any, expected: Any) -> None:
    # bool is an int in Python; a definition that says `epochs = true` is still wrong.
    if isinstance(value, bool) or not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise SearchError(f"{source}: '{key}' must be {name}, not {value!r}")


def _positive_ints(source: str, key: str, values: list[Any]) -> None:
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        raise SearchError(f"{source}: '{key}' must be a non-empty list of positive integers")


def parse(text: str, name: str, source: str) -> StudyDefinition:
    """Build a definition from TOML text; ``source`` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SearchError(f"{source}: not valid TOML ({error})") from None
    for section in document:
        if section not in _SCHEMA:
            # repr: a quoted TOML name may hold a newline, and the error must stay one line.
            raise SearchError(f"{source}: unknown section {f'[{section}]'!r}; expected one of "
                              f"{', '.join(_SCHEMA)}")
    space = document.get("search_space")
    if not isinstance(space, dict) or not space:
        raise SearchError(f"{source}: [search_space] is missing or empty")
    for key, values in space.items():
        if not isinstance(values, list) or not values:
            raise SearchError(f"{source}: 'search_space.{key}' must be a non-empty list")
        if any(isinstance(v, bool) or not isinstance(v, int | float | str) for v in values):
            raise SearchError(f"{source}: 'search_space.{key}' holds a value that is not a "
                              "number or a string")
        if len(set(values)) != len(values):
            raise SearchError(f"{source}: 'search_space.{key}' repeats a value")
    for key in _REQUIRED_PARAMETERS:
        if key not in space:
            raise SearchError(f"{source}: 'search_space.{key}' is missing")
    for key in space:
        if key not in _REQUIRED_PARAMETERS:  # the model would silently ignore it
            raise SearchError(f"{source}: {'search_space.' + key!r} is not a parameter of "
                              f"this model; it takes {', '.join(_REQUIRED_PARAMETERS)}")
    _positive_ints(source, "search_space.batch_size", space["batch_size"])
    if any(isinstance(v, str) or not 0 < v < 1 for v in space["learning_rate"]):
        raise SearchError(f"{source}: 'search_space.learning_rate' values must lie in (0, 1)")

    fields: dict[str, Any] = {}
    for section in ("training", "storage"):
        table = document.get(section, {})
        if not isinstance(table, dict):
            raise SearchError(f"{source}: '{section}' must be a table")
        for key in table:
            if key not in _SCHEMA[section]:
                raise SearchError(f"{source}: unknown key {f'{section}.{key}'!r}; expected "
                                  f"one of {', '.join(_SCHEMA[section])}")
        for key, (expected, required, default) in _SCHEMA[section].items():
            if key not in table:
                if required:
                    raise SearchError(f"{source}: '{section}.{key}' is missing")
                fields[key] = default
                continue
            _check_type(source, f"{section}.{key}", table[key], expected)
            fields[key] = table[key]
    _positive_ints(source, "training.hidden_units", fields["hidden_units"])
    for key in ("epochs", "validation_size", "max_attempts", "repeats"):
        if fields[key] <= 0:
            raise SearchError(f"{source}: 'training.{key}' must be positive")
    if fields["train_size"] is not None and fields["train_size"] <= 0:
        raise SearchError(f"{source}: 'training.train_size' must be positive")
    # NumPy's and Keras's seeding accept only unsigned 32-bit seeds; fail here, not mid-study.
    if not 0 <= fields["seed"] < 2**32:
        raise SearchError(f"{source}: 'training.seed' must lie in 0..{2**32 - 1}")
    storage_url = fields.pop("url")
    return StudyDefinition(name=name, search_space=space, storage_url=storage_url,
                           source=text, **fields)


def load(name: str, studies_dir: Path = STUDIES_DIR) -> StudyDefinition:
    """Read ``studies_dir/NAME.toml``."""
    path = studies_dir / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in studies_dir.glob("*.toml"))
        raise SearchError(f"no study '{name}': {path} does not exist (known: "
                          f"{', '.join(known) or 'none'})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SearchError(f"{path}: cannot be read as UTF-8 text ({error})") from None
    return parse(text, name, str(path))


# Studies that search.run derives from a definition: --quick and --epochs N.
_DERIVED = re.compile(r"^(?P<base>.+?)(?P<suffix>-quick|-epochs\d+)$")


def find(name: str, studies_dir: Path = STUDIES_DIR) -> StudyDefinition:
    """``NAME.toml``, or for NAME-quick and NAME-epochsN the one they came from (for the tools
    that read a stored study)."""
    match = _DERIVED.match(name)
    if match and not (studies_dir / f"{name}.toml").is_file():
        return load(match["base"], studies_dir).with_overrides(name_suffix=match["suffix"])
    return load(name, studies_dir)
