"""The layout of a study definition: its sections, their keys, types and defaults.

``checked_fields`` takes a definition's parsed TOML and returns its search space and its
[training] and [storage] values, defaults filled in; anything else ends in one
``SearchError`` line naming the file and the key. ``search.definition.parse`` builds the
``StudyDefinition`` from them.
"""

from __future__ import annotations

from typing import Any

from search import knobs
from search.errors import SearchError

DEFAULT_MAX_ATTEMPTS = 3  # errors before a unit is given up; studies stored without one too

# Each key: (type or types, default). Every [training] key defaults to the seed's setup, so
# a study file holds only what differs from it; ``StudyDefinition`` takes its defaults here.
_SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "search_space": {},  # the parameters search.knobs checks, each a non-empty list of values
    "training": {
        "epochs": (int, 10),
        "hidden_units": (list, knobs.SEED_MODEL["hidden_units"]),
        "activation": (str, knobs.SEED_MODEL["activation"]),
        "dropout": (int | float, knobs.SEED_MODEL["dropout"]),
        "optimizer": (str, knobs.SEED_MODEL["optimizer"]),
        "validation_size": (int, 6000),
        "train_size": (int, None),
        "seed": (int, 0),
        "max_attempts": (int, DEFAULT_MAX_ATTEMPTS),
        "repeats": (int, 1),
    },
    "storage": {
        "url": (str, None),
        "artifacts": (str, None),  # the artifact store: a folder or s3://bucket/prefix
    },
}


def default(key: str) -> Any:
    """The default of a [training] key."""
    return _SCHEMA["training"][key][1]


_REQUIRED_PARAMETERS = ("learning_rate", "batch_size")


def _check_type(source: str, key: str, value: Any, expected: Any) -> None:
    # bool is an int in Python; a definition that says `epochs = true` is still wrong.
    if isinstance(value, bool) or not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise SearchError(f"{source}: '{key}' must be {name}, not {value!r}")


def _search_space(document: dict[str, Any], source: str) -> dict[str, list[Any]]:
    for section in document:
        if section not in _SCHEMA:
            # repr: a quoted TOML name may hold a newline, and the error must stay one line.
            raise SearchError(f"{source}: unknown section {f'[{section}]'!r}; expected one of "
                              f"{', '.join(_SCHEMA)}")
    space = document.get("search_space")
    if not isinstance(space, dict) or not space:
        raise SearchError(f"{source}: [search_space] is missing or empty")
    space = {key: knobs.searched_values(source, key, values) for key, values in space.items()}
    for key in _REQUIRED_PARAMETERS:
        if key not in space:
            raise SearchError(f"{source}: 'search_space.{key}' is missing")
    return space


def _section_values(document: dict[str, Any], source: str) -> dict[str, Any]:
    """The [training] and [storage] keys, each checked against its type or defaulted."""
    fields: dict[str, Any] = {}
    for section in ("training", "storage"):
        table = document.get(section, {})
        if not isinstance(table, dict):
            raise SearchError(f"{source}: '{section}' must be a table")
        for key in table:
            if key not in _SCHEMA[section]:
                raise SearchError(f"{source}: unknown key {f'{section}.{key}'!r}; expected "
                                  f"one of {', '.join(_SCHEMA[section])}")
        for key, (expected, value) in _SCHEMA[section].items():
            if key not in table:
                fields[key] = value
                continue
            _check_type(source, f"{section}.{key}", table[key], expected)
            fields[key] = table[key]
    return fields


def checked_fields(document: dict[str, Any],
                   source: str) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The search space (as Optuna will hold it) and the [training] and [storage] values of
    a parsed definition, checked, defaults filled in; ``source`` names it in errors."""
    space = _search_space(document, source)
    fields = _section_values(document, source)
    knobs.check_fixed_values(source, space, document.get("training", {}), fields)
    fields["hidden_units"] = list(fields["hidden_units"])  # never the shared default
    fields["dropout"] = float(fields["dropout"])
    for key in ("epochs", "validation_size", "max_attempts", "repeats"):
        if fields[key] <= 0:
            raise SearchError(f"{source}: 'training.{key}' must be positive")
    if fields["train_size"] is not None and fields["train_size"] <= 0:
        raise SearchError(f"{source}: 'training.train_size' must be positive")
    # NumPy's and Keras's seeding accept only unsigned 32-bit seeds; fail here, not mid-study.
    if not 0 <= fields["seed"] < 2**32:
        raise SearchError(f"{source}: 'training.seed' must lie in 0..{2**32 - 1}")
    return space, fields
