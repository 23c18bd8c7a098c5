"""The [model], [data] and [objective] sections of a study definition: the user's builder
and data, and what the study optimizes. Without them a study trains the built-in MLP on
MNIST and maximizes validation accuracy, as ever.

    [model]
    build = "convnet:build"   # "module:function" beside the study file; other keys are
    filters = 32              # fixed keyword arguments of the builder
    [data]
    load = "my_data:load"     # or: path = "digits.npz"
    [objective]
    metric = "val_loss"       # any validation metric the compiled model reports
    direction = "minimize"    # default: by the metric's name (see ``default_direction``)

Only the form is checked here; importing and calling the user's code, and checking the
data and the metric against the model, happens before the first trial (``search.running``).
"""

from __future__ import annotations

import re
from typing import Any

from search import ranges
from search.errors import SearchError

DEFAULT_METRIC = "val_accuracy"
MLP_METRICS = ("val_loss", "val_accuracy")  # what the built-in MLP reports
MINIMIZED_ENDINGS = ("loss", "error", "mse", "mae")  # lower is better
MAXIMIZED_ENDINGS = ("accuracy", "auc")  # higher is better
DIRECTIONS = ("maximize", "minimize")
_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
# The built-in MLP's knobs, set in [training]; a [model] builder takes its own in [model].
MLP_ONLY = ("hidden_units", "activation", "dropout", "optimizer", "learning_rate")
# Each key: (type, default, what it means), as the manual's study-file reference shows it.
HELP: dict[str, dict[str, tuple[str, object, str]]] = {
    "model": {
        "build": ("str", None, "the builder, \"module:function\" (the study file's folder "
                  "first on the path); called with plain values, returns a compiled model"),
        "<any other key>": ("any", None, "a fixed keyword argument of the builder"),
    },
    "data": {
        "load": ("str", None, "the loader, \"module:function\", returning the arrays; called "
                 "once per process (exactly one of load and path)"),
        "path": ("str", None, "an .npz file beside the study file holding x_train, y_train, "
                 "..."),
    },
    "objective": {
        "metric": ("str", DEFAULT_METRIC, "the validation metric the study optimizes (any "
                   "val_ metric the compiled model reports)"),
        "direction": ("str", "by the metric's name", "maximize or minimize; minimize for "
                      "names ending in loss, error, mse or mae, maximize for accuracy and auc"),
    },
}
# A [model] builder's [search_space]: any of its keyword arguments, and batch_size.
BUILDER_SPACE_HELP = ("list or range", None, "with a [model]: any keyword argument of the "
                      "builder, as a list of values or a range")


def _table(document: dict[str, Any], section: str, source: str) -> dict[str, Any] | None:
    table = document.get(section)
    if table is not None and not isinstance(table, dict):
        raise SearchError(f"{source}: '{section}' must be a table ([{section}])")
    return table


def _spec(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _SPEC.fullmatch(value):
        raise SearchError(f"{source}: '{key}' must be \"module:function\" (like "
                          f"\"convnet:build\"), not {value!r}")
    return value


def model_section(document: dict[str, Any], source: str) -> dict[str, Any] | None:
    """[model]: ``build`` and the builder's fixed keyword arguments; None without one."""
    table = _table(document, "model", source)
    if table is None:
        return None
    if "build" not in table:
        raise SearchError(f"{source}: 'model.build' is missing; name the builder, like "
                          "build = \"convnet:build\"")
    _spec(source, "model.build", table["build"])
    return dict(table)


def data_section(document: dict[str, Any], source: str,
                 model: dict[str, Any] | None) -> dict[str, str] | None:
    """[data]: ``load`` (a loader) or ``path`` (an .npz file), exactly one; None without."""
    table = _table(document, "data", source)
    if table is None:
        return None
    if model is None:
        raise SearchError(f"{source}: [data] needs a [model] that takes it; the built-in MLP "
                          "trains on MNIST only")
    unknown = sorted(set(table) - set(HELP["data"]))
    if unknown or len(table) != 1:
        raise SearchError(f"{source}: [data] takes exactly one of 'load' (\"module:function\") "
                          f"or 'path' (an .npz file), not {', '.join(sorted(table)) or 'none'}")
    if "load" in table:
        return {"load": _spec(source, "data.load", table["load"])}
    if not isinstance(table["path"], str) or not table["path"]:
        raise SearchError(f"{source}: 'data.path' must be a file name, not {table['path']!r}")
    return {"path": table["path"]}


def default_direction(metric: str) -> str | None:
    """minimize for names ending in loss, error, mse or mae; maximize for accuracy and auc."""
    name = metric.lower()
    if name.endswith(MINIMIZED_ENDINGS):
        return "minimize"
    if name.endswith(MAXIMIZED_ENDINGS):
        return "maximize"
    return None


def objective_section(document: dict[str, Any], source: str) -> tuple[str, str]:
    """[objective]: the validation metric and its direction."""
    table = _table(document, "objective", source) or {}
    unknown = sorted(set(table) - set(HELP["objective"]))
    if unknown:
        raise SearchError(f"{source}: unknown key 'objective.{unknown[0]}'; expected metric, "
                          "direction")
    metric = table.get("metric", DEFAULT_METRIC)
    if not isinstance(metric, str) or not metric.startswith("val_") or metric == "val_":
        raise SearchError(f"{source}: 'objective.metric' must name a validation metric "
                          f"(val_loss, val_accuracy, ...), not {metric!r}")
    direction = table.get("direction", default_direction(metric))
    if direction is None:
        raise SearchError(f"{source}: 'objective.direction' is missing: say whether "
                          f"{metric} is to be \"maximize\"d or \"minimize\"d")
    if direction not in DIRECTIONS:
        raise SearchError(f"{source}: 'objective.direction' must be maximize or minimize, "
                          f"not {direction!r}")
    return metric, direction


# Names whose meaning a range can be checked against, for any builder: batch_size is the
# service's; the others mean what Keras's own arguments of those names mean.
_CONVENTIONAL = {
    "batch_size": (lambda v: v >= 1, "be positive whole numbers", True),
    "units": (lambda v: v >= 1, "be positive whole numbers (a layer's units)", True),
    "dropout": (lambda v: 0 <= v < 1, "lie in [0, 1) (a dropout rate)", False),
    "learning_rate": (lambda v: v > 0, "be above 0", False),
}


def builder_values(source: str, key: str, values: Any) -> list[Any] | dict[str, Any]:
    """A [search_space] list or range for a [model] builder: values Optuna can store
    (numbers, strings, booleans), none twice; batch_size, the service's, positive integers;
    a range of a conventional name (units, dropout, learning_rate) within what it means."""
    if ranges.is_range(values):
        spec = ranges.checked_range(source, key, values)
        if key in _CONVENTIONAL:
            check, must, integer = _CONVENTIONAL[key]
            ranges.check_bounds(source, key, spec, check, must, integer)
        return spec
    if not isinstance(values, list) or not values:
        raise SearchError(f"{source}: 'search_space.{key}' must be a non-empty list")
    wrong = [value for value in values if not isinstance(value, bool | int | float | str)]
    if wrong:
        raise SearchError(f"{source}: 'search_space.{key}' values must be numbers, strings or "
                          f"booleans, not {wrong[0]!r} (fix a list value in [model] instead)")
    if key == "batch_size" and not all(isinstance(v, int) and not isinstance(v, bool)
                                       and v > 0 for v in values):
        raise SearchError(f"{source}: 'search_space.batch_size' values must be positive "
                          "integers")
    if len({repr(value) for value in values}) != len(values):
        raise SearchError(f"{source}: 'search_space.{key}' repeats a value")
    return list(values)
