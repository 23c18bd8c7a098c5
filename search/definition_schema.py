"""The layout of a study definition: its sections, their keys, types and defaults.

``checked_fields`` takes a definition's parsed TOML and returns its search space and its
[training] and [storage] values, defaults filled in; anything else ends in one
``SearchError`` line naming the file and the key. ``search.definition.parse`` builds the
``StudyDefinition`` from them.
"""

from __future__ import annotations

from typing import Any

from search import knobs, model_sections, search_section
from search.errors import SearchError

DEFAULT_MAX_ATTEMPTS = 3  # errors before a unit is given up; studies stored without one too
DEFAULT_OUTAGE_SECONDS = 120  # how long a run waits for its database or store to come back

# Each key: (type or types, default, what it means). Every [training] key defaults to the
# seed's setup, so a study file holds only what differs; ``StudyDefinition`` takes its
# defaults here, and the manual's study-file reference its words (``reference``).
_SCHEMA: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "search_space": {},  # lists or ranges: knobs.PARAMETER_HELP, model_sections (a builder's)
    "model": {},  # search.model_sections checks these three
    "data": {},
    "objective": {},
    "search": {},  # search.search_section checks it: sampler, trials, confirm, seed, options
    "training": {
        "epochs": (int, 10, "epochs every trial trains"),
        "batch_size": (int, 32, "the batch size when [search_space] does not search it "
                       "(Keras's default)"),
        "learning_rate": (int | float, knobs.SEED_MODEL["learning_rate"],
                          "the built-in MLP's learning rate when not searched"),
        "hidden_units": (list, knobs.SEED_MODEL["hidden_units"],
                         "the built-in MLP's Dense layer sizes between Flatten and the softmax"),
        "activation": (str, knobs.SEED_MODEL["activation"],
                       "the built-in MLP's hidden activation when not searched"),
        "dropout": (int | float, knobs.SEED_MODEL["dropout"],
                    "the built-in MLP's dropout rate after each hidden layer when not searched"),
        "optimizer": (str, knobs.SEED_MODEL["optimizer"],
                      "the built-in MLP's optimizer (adam, sgd, rmsprop) when not searched"),
        "validation_size": (int, 6000, "examples held out of the training set for "
                            "validation, by the study's seed (unless the data has x_valid)"),
        "train_size": (int, None, "use only this many training examples (smoke runs); "
                       "default: all"),
        "seed": (int, 0, "the validation split, and replicate 0's weights and batch order "
                 "(the others' seeds are drawn from it)"),
        "max_attempts": (int, DEFAULT_MAX_ATTEMPTS, "runs of a unit that may end in an error "
                         "before it is given up"),
        "repeats": (int, 1, "replicates per grid point, or fresh-seed runs of each confirmed "
                    "configuration (3 for a sampled study); may grow on a stored study"),
        "path": (str, "auto", "a [model]'s training path: auto (the rule), xla, graph or fit"),
    },
    "storage": {
        "url": (str, None, "the database URL (sqlite:///..., postgresql+psycopg://...); "
                "default: studies/NAME.db; --storage and $OPTUNA_STORAGE take precedence"),
        "artifacts": (str, None, "the artifact store for checkpoints, figures and models: a "
                      "folder or s3://bucket/prefix; default: NAME.artifacts beside the "
                      "database"),
        "outage_seconds": (int | float, DEFAULT_OUTAGE_SECONDS, "how long a run waits for "
                           "the database or the artifact store to come back after a fault "
                           "that passes (a restart, a refused or lost connection, a timeout); "
                           "0: never wait"),
    },
}


def default(key: str) -> Any:
    """The default of a [training] key."""
    return _SCHEMA["training"][key][1]


def reference() -> dict[str, dict[str, tuple[str, Any, str]]]:
    """Every section's keys as (type, default, meaning), read from where each is checked:
    the manual's study-file reference is generated from this."""
    def named(expected: Any) -> str:
        return " or ".join(kind.__name__ for kind in getattr(expected, "__args__", (expected,)))

    fixed = {section: {key: (named(kind), value, meaning)
                       for key, (kind, value, meaning) in _SCHEMA[section].items()}
             for section in ("training", "storage")}
    space = {**knobs.PARAMETER_HELP, "<builder argument>": model_sections.BUILDER_SPACE_HELP}
    return {"search_space": space, **model_sections.HELP,
            "search": dict(search_section.KEYS), **fixed}


def _check_type(source: str, key: str, value: Any, expected: Any) -> None:
    # bool is an int in Python; a definition that says `epochs = true` is still wrong.
    if isinstance(value, bool) or not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise SearchError(f"{source}: '{key}' must be {name}, not {value!r}")


def _search_space(document: dict[str, Any], source: str,
                  builder: bool) -> dict[str, list[Any] | dict[str, Any]]:
    """The searched values as Optuna will hold them: the MLP's knobs, or any keyword
    argument of a [model] builder (and batch_size)."""
    for section in document:
        if section not in _SCHEMA:
            # repr: a quoted TOML name may hold a newline, and the error must stay one line.
            raise SearchError(f"{source}: unknown section {f'[{section}]'!r}; expected one of "
                              f"{', '.join(_SCHEMA)}")
    space = document.get("search_space")
    if not isinstance(space, dict) or not space:
        raise SearchError(f"{source}: [search_space] is missing or empty")
    check = model_sections.builder_values if builder else knobs.searched_values
    return {key: check(source, key, values) for key, values in space.items()}


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
        for key, (expected, value, _) in _SCHEMA[section].items():
            if key not in table:
                fields[key] = value
                continue
            _check_type(source, f"{section}.{key}", table[key], expected)
            fields[key] = table[key]
    return fields


def checked_fields(document: dict[str, Any],
                   source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The search space (as Optuna will hold it) and the [training], [storage] and [search]
    values of a parsed definition, checked, defaults filled in; ``source`` names it in
    errors."""
    model = model_sections.model_section(document, source)
    space = _search_space(document, source, builder=model is not None)
    fields = _section_values(document, source)
    training = document.get("training", {})
    _check_fixed(source, space, training, fields, model)
    fields["model"] = model
    fields["data"] = model_sections.data_section(document, source, model)
    fields["metric"], fields["direction"] = model_sections.objective_section(document, source)
    if model is None and fields["metric"] not in model_sections.MLP_METRICS:
        raise SearchError(f"{source}: 'objective.metric' {fields['metric']!r} is not reported "
                          "by the built-in MLP; it reports "
                          f"{', '.join(model_sections.MLP_METRICS)}")
    _check_path(source, fields["path"], model)
    fields["hidden_units"] = list(fields["hidden_units"])  # never the shared default
    fields["dropout"] = float(fields["dropout"])
    for key in ("epochs", "batch_size", "validation_size", "max_attempts", "repeats"):
        if fields[key] <= 0:
            raise SearchError(f"{source}: 'training.{key}' must be positive")
    if fields["outage_seconds"] < 0:
        raise SearchError(f"{source}: 'storage.outage_seconds' must be 0 or more")
    if fields["train_size"] is not None and fields["train_size"] <= 0:
        raise SearchError(f"{source}: 'training.train_size' must be positive")
    # NumPy's and Keras's seeding accept only unsigned 32-bit seeds; fail here, not mid-study.
    if not 0 <= fields["seed"] < 2**32:
        raise SearchError(f"{source}: 'training.seed' must lie in 0..{2**32 - 1}")
    fields.update(search_section.checked_search(document, source, space, training,
                                                fields["seed"]))
    return space, fields


PATHS = ("auto", "xla", "graph", "fit")  # search.training.user_model.PATHS, and the rule


def _check_path(source: str, path: str, model: dict[str, Any] | None) -> None:
    if path not in PATHS:
        raise SearchError(f"{source}: 'training.path' must be one of {', '.join(PATHS)}, not "
                          f"{path!r}")
    if model is None and path != "auto":
        raise SearchError(f"{source}: 'training.path' chooses a [model]'s path; the built-in "
                          "MLP always trains on its own compiled path")


def _check_fixed(source: str, space: dict[str, list[Any]], training: dict[str, Any],
                 fields: dict[str, Any], model: dict[str, Any] | None) -> None:
    """What is searched is not also fixed; the MLP's knobs belong to the MLP alone."""
    if "batch_size" in space and "batch_size" in training:
        raise SearchError(f"{source}: 'search_space.batch_size' and 'training.batch_size' "
                          "both set batch_size; keep one (searched or fixed)")
    if model is None:
        knobs.check_fixed_values(source, space, training, fields)
        return
    for key in model_sections.MLP_ONLY:
        if key in training:
            raise SearchError(f"{source}: 'training.{key}' sets the built-in MLP; a [model] "
                              f"builder takes its fixed arguments in [model]")
    both = sorted(set(space) & set(model) - {"build"})
    if both:
        raise SearchError(f"{source}: 'search_space.{both[0]}' and 'model.{both[0]}' both set "
                          f"{both[0]}; keep one (searched or fixed)")
