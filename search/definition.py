"""Study definitions: one TOML file per study, in ``./studies/`` or shipped with the package.

A definition holds the search space and the training budget. It is checked on load, so a
typo ends in one line naming the file and the key, before any trial starts. ``load`` looks
in the studies folder first (``./studies``, relative to the current folder, or
``--studies-dir``), then among the definitions shipped inside the package
(``search.studies``: the repository's ``studies/`` folder, installed as package data).
The checks themselves live in ``search.definition_schema`` (sections, keys, types, defaults)
and ``search.knobs`` (the MLP's knobs and the values each may take).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from search import definition_schema, knobs, model_sections
from search.definition_schema import default
from search.errors import SearchError
from search.search_section import SearchPlan

# The user's definitions, and by default their databases, checkpoints and artifacts: a
# folder relative to the current one, never the installed package (site-packages is not the
# user's to write). Run from a clone's root, it is the folder that holds the shipped ones.
STUDIES_DIR = Path("studies")
SHIPPED = "search.studies"  # the package the shipped definitions are data of


@dataclasses.dataclass(frozen=True)
class StudyDefinition:
    """A study's search space and budget, as read from ``studies/NAME.toml``."""

    name: str
    # A list of Optuna's values (hidden_units as "128-64") or a range (search.ranges).
    search_space: dict[str, Any]
    epochs: int = default("epochs")
    hidden_units: list[int] = dataclasses.field(
        default_factory=lambda: list(default("hidden_units")))
    validation_size: int = default("validation_size")
    seed: int = default("seed")
    activation: str = default("activation")
    dropout: float = default("dropout")
    optimizer: str = default("optimizer")
    learning_rate: float = default("learning_rate")  # the MLP's, unless searched
    batch_size: int = default("batch_size")  # unless searched
    max_attempts: int = default("max_attempts")
    repeats: int = default("repeats")  # per grid point; may grow on a stored study, never shrink
    train_size: int | None = default("train_size")
    path: str = default("path")  # a [model]'s training path, or "auto" (the rule's)
    storage_url: str | None = None  # the definition's [storage] url
    artifacts: str | None = None  # the definition's [storage] artifacts
    outage_seconds: float = definition_schema.DEFAULT_OUTAGE_SECONDS  # [storage]
    model: dict[str, Any] | None = None  # [model]: build = "module:function", fixed arguments
    data: dict[str, str] | None = None  # [data]: load = "module:function", or path = "x.npz"
    metric: str = model_sections.DEFAULT_METRIC  # [objective]
    direction: str = "maximize"
    search: SearchPlan = SearchPlan()  # [search]: the grid, or a sampler and its budget
    file: str | None = None  # the definition's file; [model] and [data] files are beside it
    source: str = ""

    @property
    def folder(self) -> Path | None:
        return None if self.file is None else Path(self.file).parent

    def where(self, key: str) -> str:
        """How errors name one of the definition's keys: ``studies/x.toml: 'model.build'``."""
        return f"{self.file or 'study ' + repr(self.name)}: '{key}'"

    @property
    def grid(self) -> list[dict[str, Any]]:
        """Every point of the search space, in a fixed order (a grid study's only)."""
        if self.search.sampled:
            raise ValueError(f"study {self.name!r} samples its configurations: it has no grid")
        names = list(self.search_space)
        values = itertools.product(*(self.search_space[name] for name in names))
        return [dict(zip(names, point, strict=True)) for point in values]

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

    def batch_size_at(self, params: dict[str, Any]) -> int:
        return int(params.get("batch_size", self.batch_size))

    def model_arguments(self, params: dict[str, Any]) -> dict[str, Any]:
        """What the builder takes at grid point ``params``: its searched values and the fixed
        ones (batch_size is the service's). For the built-in MLP, its knobs, hidden_units
        as a list again."""
        if self.model is not None:
            fixed = {key: value for key, value in self.model.items() if key != "build"}
            return {**fixed, **{key: value for key, value in params.items()
                                if key != "batch_size"}}
        arguments = {key: getattr(self, key) for key in knobs.SEED_MODEL}
        arguments.update((key, value) for key, value in params.items()
                         if key in knobs.SEED_MODEL)
        if isinstance(arguments["hidden_units"], str):
            arguments["hidden_units"] = knobs.layer_sizes(arguments["hidden_units"])
        return arguments

    def budget(self) -> dict[str, Any]:
        """What the stored trials depend on: a study is not continued if this changes.

        The fixed activation, dropout and optimizer enter only where they differ from the
        seed's model: a study stored before they existed (the seed's model, necessarily)
        keeps an equal budget, so it continues, and so do its checkpoints. Changing any of
        them later adds its key, and the study is refused as for any other change.
        """
        budget = {"search_space": self.search_space, "epochs": self.epochs,
                  "hidden_units": self.hidden_units, "validation_size": self.validation_size,
                  "train_size": self.train_size, "seed": self.seed}
        for key in ("learning_rate", "batch_size"):  # every stored study searched both
            if key not in self.search_space:
                budget[key] = getattr(self, key)
        if self.search.sampled:  # never trials, confirm or repeats: those may grow
            budget["search"] = self.search.budget()
        if self.model is not None:
            del budget["hidden_units"]
            return {**budget, "model": self.model, "data": self.data,
                    "objective": [self.metric, self.direction]}
        if "hidden_units" in self.search_space:  # the fixed value means nothing then
            del budget["hidden_units"]
        for key in ("activation", "dropout", "optimizer"):
            if getattr(self, key) != knobs.SEED_MODEL[key]:
                budget[key] = getattr(self, key)
        if (self.metric, self.direction) != (model_sections.DEFAULT_METRIC, "maximize"):
            budget["objective"] = [self.metric, self.direction]
        return budget


def parse(text: str, name: str, source: str, file: str | None = None) -> StudyDefinition:
    """Build a definition from TOML text; ``source`` names it in error messages, ``file`` is
    where it was read (its [model] and [data] files are beside it)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SearchError(f"{source}: not valid TOML ({error})") from None
    space, fields = definition_schema.checked_fields(document, source)
    storage_url = fields.pop("url")
    return StudyDefinition(name=name, search_space=space, storage_url=storage_url,
                           source=text, file=file, **fields)


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
    return parse(text, name, str(source), str(source))


# Studies that search.run derives from a definition: --quick and --epochs N.
_DERIVED = re.compile(r"^(?P<base>.+?)(?P<suffix>-quick|-epochs\d+)$")


def find(name: str, studies_dir: Path = STUDIES_DIR) -> StudyDefinition:
    """``NAME.toml``, or for NAME-quick and NAME-epochsN the one they came from (for the tools
    that read a stored study)."""
    match = _DERIVED.match(name)
    if match and not _exists(name, studies_dir):
        return load(match["base"], studies_dir).with_overrides(name_suffix=match["suffix"])
    return load(name, studies_dir)
