"""A study definition's [search] section: which sampler, how many search trials, how many of
the best configurations to confirm, the sampler's seed and options.

``checked_search`` returns the section's values, defaults filled in, or raises one
``SearchError`` line naming the file and the key. A grid (the default) takes lists only and
needs no budget; every other sampler needs ``trials``. Optuna is imported only to check a
sampler's options against its class.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import warnings
from typing import Any

from search import ranges
from search.errors import SearchError

# Our names -> Optuna's sampler classes (optuna.samplers.*).
SAMPLERS = {"grid": "GridSampler", "random": "RandomSampler", "qmc": "QMCSampler",
            "tpe": "TPESampler", "cmaes": "CmaEsSampler", "gp": "GPSampler"}
DEFAULT_CONFIRM = 3  # the best configurations re-trained on fresh seeds (at most `trials`)
SAMPLED_REPEATS = 3  # fresh-seed runs of each confirmed configuration, unless [training] says
# Each key of [search]: (type, default, what it means), as the manual's reference shows it.
KEYS: dict[str, tuple[str, object, str]] = {
    "sampler": ("str", "grid", "grid (lists only), random, qmc, tpe, cmaes or gp: which of "
                "Optuna's samplers proposes the configurations"),
    "trials": ("int", None, "search trials, exactly, across all workers and machines; "
               "required by every sampler but grid"),
    "confirm": ("int", DEFAULT_CONFIRM, "the best configurations by search value, each "
                "re-trained on `repeats` fresh seeds (at most `trials`; 0: none)"),
    "seed": ("int", "[training] seed", "the sampler's seed"),
    "sampler_options": ("table", {}, "keyword arguments of the sampler's Optuna class, like "
                        "{n_startup_trials = 8}"),
    "pruner": ("str", "none", "none, median, percentile, successive-halving or hyperband: "
               "which of Optuna's pruners stops poor search trials early"),
    "pruner_options": ("table", {}, "keyword arguments of the pruner's Optuna class, like "
                       "{min_resource = 1}"),
}
# Our names -> Optuna's pruner classes (optuna.pruners.*); none: every trial runs its epochs.
PRUNERS = {"none": None, "median": "MedianPruner", "percentile": "PercentilePruner",
           "successive-halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner"}


@dataclasses.dataclass(frozen=True)
class SearchPlan:
    """A study's [search]: its sampler, and for a sampler its exact search trials, the best
    configurations it confirms, its seed and its Optuna class's options."""

    sampler: str = "grid"
    trials: int | None = None
    confirm: int = 0
    seed: int | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    pruner: str = "none"
    pruner_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        """Whether a sampler proposes the configurations (else the grid lists them)."""
        return self.sampler != "grid"

    def budget(self) -> dict[str, Any]:
        """What a sampled study's trials depend on: never trials or confirm, which may grow."""
        found = {"sampler": self.sampler, "seed": self.seed, "sampler_options": self.options}
        if self.pruner != "none":  # which trials stop early: what they hold depends on it
            found |= {"pruner": self.pruner, "pruner_options": self.pruner_options}
        return found


def _integer(source: str, table: dict[str, Any], key: str) -> int | None:
    value = table.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise SearchError(f"{source}: 'search.{key}' must be a whole number, not {value!r}")
    return value


def _check_options(source: str, sampler: str, options: dict[str, Any], seed: int) -> None:
    """Every option is a keyword of the sampler's Optuna class, and the class takes them."""
    import optuna

    cls = getattr(optuna.samplers, SAMPLERS[sampler])
    taken = [name for name in inspect.signature(cls.__init__).parameters
             if name not in ("self", "args", "kwargs")]
    for key in options:
        if key == "seed":
            raise SearchError(f"{source}: 'search.sampler_options.seed': the sampler's seed is "
                              "[search] seed")
        if key not in taken:
            raise SearchError(f"{source}: 'search.sampler_options.{key}' is not an option of "
                              f"optuna.samplers.{cls.__name__}; it takes "
                              f"{', '.join(n for n in taken if n != 'seed')}")
    if sampler == "gp" and importlib.util.find_spec("torch") is None:
        raise SearchError(f"{source}: 'search.sampler' gp needs PyTorch: pip install torch "
                          "(or pick another sampler: tpe, random, qmc, cmaes)")
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise SearchError(f"{source}: 'search.sampler' cmaes needs the cmaes package: pip "
                          "install cmaes")
    try:
        with warnings.catch_warnings():  # "experimental": said of QMCSampler, GPSampler
            warnings.simplefilter("ignore")
            cls(seed=seed, **options)
    except Exception as error:  # whatever the class says of a bad value
        raise SearchError(f"{source}: 'search.sampler_options' rejected by "
                          f"optuna.samplers.{cls.__name__}: {error}") from None


def _grid(source: str, table: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """A grid's [search]: lists only, nothing of a sampler's."""
    ranged = next((key for key, values in space.items() if ranges.is_range(values)), None)
    if ranged is not None:
        raise SearchError(f"{source}: 'search_space.{ranged}' is a range, and a grid takes "
                          "lists only; pick a sampler in [search] (e.g. sampler = \"tpe\" "
                          "with trials = 40) or list its values")
    given = next((key for key in ("trials", "confirm", "seed", "sampler_options", "pruner",
                                  "pruner_options") if key in table), None)
    if given is not None:
        why = ("a pruned grid point would have no complete replicates for the verdict"
               if given.startswith("pruner") else "a grid runs every point")
        raise SearchError(f"{source}: 'search.{given}' applies to a sampler; {why} (set "
                          "search.sampler to search by trials)")
    return {"search": SearchPlan()}


def _checked_pruner(source: str, table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The pruner's name and options, each option a keyword its Optuna class takes, and the
    class content with them (a required one, such as percentile's, present)."""
    pruner, options = table.get("pruner", "none"), table.get("pruner_options", {})
    if pruner not in PRUNERS:
        raise SearchError(f"{source}: 'search.pruner' must be one of {', '.join(PRUNERS)}, "
                          f"not {pruner!r}")
    if not isinstance(options, dict):
        raise SearchError(f"{source}: 'search.pruner_options' must be a table of keyword "
                          f"arguments, not {options!r}")
    if PRUNERS[pruner] is None:
        if options:
            raise SearchError(f"{source}: 'search.pruner_options' needs a pruner (set "
                              "search.pruner)")
        return pruner, {}
    import optuna

    cls = getattr(optuna.pruners, PRUNERS[pruner])
    parameters = inspect.signature(cls.__init__).parameters
    taken = [name for name in parameters if name != "self"]
    for key in options:
        if key not in taken:
            raise SearchError(f"{source}: 'search.pruner_options.{key}' is not an option of "
                              f"optuna.pruners.{cls.__name__}; it takes {', '.join(taken)}")
    required = [name for name in taken if parameters[name].default is inspect.Parameter.empty
                and name not in options]
    if required:
        raise SearchError(f"{source}: 'search.pruner_options.{required[0]}' is required by "
                          f"optuna.pruners.{cls.__name__} (pruner {pruner})")
    try:
        cls(**options)
    except Exception as error:  # whatever the class says of a bad value
        raise SearchError(f"{source}: 'search.pruner_options' rejected by "
                          f"optuna.pruners.{cls.__name__}: {error}") from None
    return pruner, dict(options)


def checked_search(document: dict[str, Any], source: str, space: dict[str, Any],
                   training: dict[str, Any], seed: int) -> dict[str, Any]:
    """``{"search": SearchPlan}``, and repeats defaulted to 3 for a sampled study whose
    [training] does not set it."""
    table = document.get("search", {})
    if not isinstance(table, dict):
        raise SearchError(f"{source}: 'search' must be a table")
    for key in table:
        if key not in KEYS:
            raise SearchError(f"{source}: unknown key {f'search.{key}'!r}; expected one of "
                              f"{', '.join(KEYS)}")
    sampler = table.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise SearchError(f"{source}: 'search.sampler' must be one of {', '.join(SAMPLERS)}, "
                          f"not {sampler!r}")
    trials, confirm = _integer(source, table, "trials"), _integer(source, table, "confirm")
    sampler_seed = _integer(source, table, "seed")
    options = table.get("sampler_options", {})
    if not isinstance(options, dict):
        raise SearchError(f"{source}: 'search.sampler_options' must be a table of keyword "
                          f"arguments, not {options!r}")
    if sampler == "grid":
        return _grid(source, table, space)
    if trials is None or trials <= 0:
        raise SearchError(f"{source}: 'search.trials' must be a positive whole number: sampler "
                          f"{sampler} runs exactly that many search trials")
    confirm = min(DEFAULT_CONFIRM, trials) if confirm is None else confirm
    if not 0 <= confirm <= trials:
        raise SearchError(f"{source}: 'search.confirm' must lie in 0..{trials} (search.trials), "
                          f"not {confirm}")
    sampler_seed = seed if sampler_seed is None else sampler_seed
    if not 0 <= sampler_seed < 2**32:
        raise SearchError(f"{source}: 'search.seed' must lie in 0..{2**32 - 1}")
    _check_options(source, sampler, options, sampler_seed)
    pruner, pruner_options = _checked_pruner(source, table)
    return {"search": SearchPlan(sampler, trials, confirm, sampler_seed, dict(options),
                                 pruner, pruner_options),
            **({} if "repeats" in training else {"repeats": SAMPLED_REPEATS})}
