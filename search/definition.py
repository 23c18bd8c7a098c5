"""Study definitions: one TOML file per study, in ``./studies/`` or shipped with the package.

A definition holds the search space and the training budget. It is checked on load, so a
typo ends in one line naming the file and the key, before any trial starts. ``load`` looks
in the studies folder first (``./studies``, relative to the current folder, or
``--studies-dir``), then among the definitions shipped inside the package
(``search.studies``: the repository's ``studies/`` folder, installed as package data).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from collections.abc import Callable, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import SearchError

# The user's definitions, and by default their databases, checkpoints and artifacts: a
# folder relative to the current one, never the installed package (site-packages is not the
# user's to write). Run from a clone's root, it is the folder that holds the shipped ones.
STUDIES_DIR = Path("studies")
SHIPPED = "search.studies"  # the package the shipped definitions are data of

# Names Keras resolves (keras.activations.get) and optimizers search.training.model builds;
# spelled out here so that reading a definition never imports TensorFlow.
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "elu", "selu", "silu", "swish", "leaky_relu",
               "relu6", "mish", "softplus", "softsign")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
# The seed's MLP. A knob is searched ([search_space]) or fixed ([training]), never both.
SEED_MODEL: dict[str, Any] = {"hidden_units": [128, 64], "activation": "relu",
                              "dropout": 0.0, "optimizer": "adam"}

# Each key: (type or types, required, default). Every [training] key defaults to the seed's
# setup, so a study file holds only what differs from it.
_SCHEMA: dict[str, dict[str, tuple[Any, bool, Any]]] = {
    "search_space": {},  # the names of _PARAMETERS, each a non-empty list of values
    "training": {
        "epochs": (int, False, 10),
        "hidden_units": (list, False, SEED_MODEL["hidden_units"]),
        "activation": (str, False, SEED_MODEL["activation"]),
        "dropout": (int | float, False, SEED_MODEL["dropout"]),
        "optimizer": (str, False, SEED_MODEL["optimizer"]),
        "validation_size": (int, False, 6000),
        "train_size": (int, False, None),
        "seed": (int, False, 0),
        "max_attempts": (int, False, 3),
        "repeats": (int, False, 1),
    },
    "storage": {
        "url": (str, False, None),
    },
}
_REQUIRED_PARAMETERS = ("learning_rate", "batch_size")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _layer_sizes(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(map(_positive_int, value))


# What a value of each parameter must be: (check, "must ..." for one value, for a list).
_PARAMETERS: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "learning_rate": (lambda v: _number(v) and 0 < v < 1, "lie in (0, 1)", "lie in (0, 1)"),
    "batch_size": (_positive_int, "be a positive integer", "be positive integers"),
    "hidden_units": (_layer_sizes, "be a non-empty list of positive integers",
                     "be non-empty lists of positive integers (like [[128, 64], [512]])"),
    "dropout": (lambda v: _number(v) and 0 <= v < 1, "lie in [0, 1)", "lie in [0, 1)"),
    "activation": (lambda v: v in ACTIVATIONS, f"be one of {', '.join(ACTIVATIONS)}",
                   f"each be one of {', '.join(ACTIVATIONS)}"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"be one of {', '.join(OPTIMIZERS)}",
                  f"each be one of {', '.join(OPTIMIZERS)}"),
}


def units_label(hidden_units: Sequence[int]) -> str:
    """A hidden_units choice as Optuna stores it and reports show it: ``128-64``.

    Optuna's categorical choices must be None, bool, int, float or str, so a list of layer
    sizes travels through the grid, the trials and the storage as this string.
    """
    return "-".join(str(units) for units in hidden_units)


def layer_sizes(label: str) -> list[int]:
    """The layer sizes of a ``units_label``: ``"128-64"`` -> ``[128, 64]``."""
    return [int(units) for units in label.split("-")]


@dataclasses.dataclass(frozen=True)
class StudyDefinition:
    """A study's search space and budget, as read from ``studies/NAME.toml``."""

    name: str
    search_space: dict[str, list[Any]]  # Optuna's values: hidden_units as "128-64"
    epochs: int = 10
    hidden_units: list[int] = dataclasses.field(
        default_factory=lambda: list(SEED_MODEL["hidden_units"]))
    validation_size: int = 6000
    seed: int = 0
    activation: str = SEED_MODEL["activation"]
    dropout: float = SEED_MODEL["dropout"]
    optimizer: str = SEED_MODEL["optimizer"]
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

    def model_arguments(self, params: dict[str, Any]) -> dict[str, Any]:
        """What ``build_model`` takes at grid point ``params``: its searched values, the
        fixed ones for the rest, hidden_units as a list again."""
        arguments = {key: getattr(self, key) for key in SEED_MODEL}
        arguments.update((key, value) for key, value in params.items()
                         if key in SEED_MODEL or key == "learning_rate")
        if isinstance(arguments["hidden_units"], str):
            arguments["hidden_units"] = layer_sizes(arguments["hidden_units"])
        return arguments

    def budget(self) -> dict[str, Any]:
        """What the stored trials depend on: a study is not continued if this changes.

        The fixed activation, dropout and optimizer enter only where they differ from the
        seed's model: a study stored before they existed (the seed's model, necessarily)
        keeps an equal budget, so it continues, and so do its checkpoints. Changing any of
        them later adds its key, and the study is refused as for any other change.
        """
        budget = {
            "search_space": self.search_space,
            "epochs": self.epochs,
            "hidden_units": self.hidden_units,
            "validation_size": self.validation_size,
            "train_size": self.train_size,
            "seed": self.seed,
        }
        if "hidden_units" in self.search_space:  # the fixed value means nothing then
            del budget["hidden_units"]
        for key in ("activation", "dropout", "optimizer"):
            if getattr(self, key) != SEED_MODEL[key]:
                budget[key] = getattr(self, key)
        return budget


def _check_type(source: str, key: str, value: Any, expected: Any) -> None:
    # bool is an int in Python; a definition that says `epochs = true` is still wrong.
    if isinstance(value, bool) or not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise SearchError(f"{source}: '{key}' must be {name}, not {value!r}")


def _parameter_values(source: str, key: str, values: Any) -> list[Any]:
    """A [search_space] list checked, as Optuna will hold it (see ``units_label``)."""
    if key not in _PARAMETERS:  # the model would silently ignore it
        raise SearchError(f"{source}: {'search_space.' + key!r} is not a parameter of this "
                          f"model; it takes {', '.join(_PARAMETERS)}")
    if not isinstance(values, list) or not values:
        raise SearchError(f"{source}: 'search_space.{key}' must be a non-empty list")
    check, _, many = _PARAMETERS[key]
    wrong = [value for value in values if not check(value)]
    if wrong:
        raise SearchError(f"{source}: 'search_space.{key}' values must {many}, not "
                          f"{wrong[0]!r}")
    if key == "hidden_units":
        values = [units_label(value) for value in values]
    elif key == "dropout":
        values = [float(value) for value in values]
    if len(set(values)) != len(values):
        raise SearchError(f"{source}: 'search_space.{key}' repeats a value")
    return values


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
    space = {key: _parameter_values(source, key, values) for key, values in space.items()}
    for key in _REQUIRED_PARAMETERS:
        if key not in space:
            raise SearchError(f"{source}: 'search_space.{key}' is missing")

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
    training = document.get("training", {})
    for key in SEED_MODEL:
        if key in space and key in training:
            raise SearchError(f"{source}: 'search_space.{key}' and 'training.{key}' both set "
                              f"{key}; keep one (searched or fixed)")
        check, one, _ = _PARAMETERS[key]
        if not check(fields[key]):
            raise SearchError(f"{source}: 'training.{key}' must {one}, not {fields[key]!r}")
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
    storage_url = fields.pop("url")
    return StudyDefinition(name=name, search_space=space, storage_url=storage_url,
                           source=text, **fields)


def _shipped(name: str) -> Traversable | None:
    """The shipped ``NAME.toml``, if the package holds one."""
    try:
        path = resources.files(SHIPPED) / f"{name}.toml"
    except ModuleNotFoundError:  # a source tree that was never installed ships nothing
        return None
    return path if path.is_file() else None


def known(studies_dir: Path = STUDIES_DIR) -> tuple[list[str], list[str]]:
    """The names of the definitions in ``studies_dir`` and of the shipped ones."""
    mine = sorted(path.stem for path in studies_dir.glob("*.toml"))
    try:
        shipped = sorted(entry.name.removesuffix(".toml")
                         for entry in resources.files(SHIPPED).iterdir()
                         if entry.name.endswith(".toml"))
    except ModuleNotFoundError:
        shipped = []
    return mine, shipped


def _exists(name: str, studies_dir: Path) -> bool:
    return (studies_dir / f"{name}.toml").is_file() or _shipped(name) is not None


def load(name: str, studies_dir: Path = STUDIES_DIR) -> StudyDefinition:
    """Read ``studies_dir/NAME.toml``, else the shipped ``NAME.toml``."""
    path = studies_dir / f"{name}.toml"
    source: Path | Traversable | None = path if path.is_file() else _shipped(name)
    if source is None:
        mine, shipped = known(studies_dir)
        raise SearchError(f"no study '{name}': {path} does not exist and none is shipped "
                          f"(known in {studies_dir}: {', '.join(mine) or 'none'}; shipped: "
                          f"{', '.join(shipped) or 'none'})")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SearchError(f"{source}: cannot be read as UTF-8 text ({error})") from None
    return parse(text, name, str(source))


# Studies that search.run derives from a definition: --quick and --epochs N.
_DERIVED = re.compile(r"^(?P<base>.+?)(?P<suffix>-quick|-epochs\d+)$")


def find(name: str, studies_dir: Path = STUDIES_DIR) -> StudyDefinition:
    """``NAME.toml``, or for NAME-quick and NAME-epochsN the one they came from (for the tools
    that read a stored study)."""
    match = _DERIVED.match(name)
    if match and not _exists(name, studies_dir):
        return load(match["base"], studies_dir).with_overrides(name_suffix=match["suffix"])
    return load(name, studies_dir)
