"""The MLP's knobs: the names Keras and the model know, the seed's values, and what each
searched ([search_space]) or fixed ([training]) value of a study definition must be.

``search.definition`` checks a definition's values here, and ``units_label`` and
``layer_sizes`` turn a list of layer sizes into the string Optuna stores and back. Nothing
here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from search import ranges
from search.errors import SearchError

# Names Keras resolves (keras.activations.get, keras.optimizers.get), spelled out here so
# that reading a definition never imports TensorFlow.
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "elu", "selu", "silu", "swish", "leaky_relu",
               "relu6", "mish", "softplus", "softsign")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
# The seed's MLP. A knob is searched ([search_space]) or fixed ([training]), never both.
SEED_MODEL: dict[str, Any] = {"hidden_units": [128, 64], "activation": "relu",
                              "dropout": 0.0, "optimizer": "adam", "learning_rate": 0.001}


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


# What each searched parameter of the built-in MLP means: (type, default, meaning). Not
# searched, a knob takes its [training] value.
PARAMETER_HELP: dict[str, tuple[str, object, str]] = {
    "learning_rate": ("list or range", None, "the optimizer's learning rate, in (0, 1)"),
    "batch_size": ("list or range", None, "examples per training step, a positive integer"),
    "hidden_units": ("list", None, "Dense layer sizes between Flatten and the softmax, "
                     "as lists: [[128, 64], [512]] (shown 128-64)"),
    "dropout": ("list or range", None, "the dropout rate after each hidden layer, in [0, 1)"),
    "activation": ("list", None, f"the hidden layers' activation: {', '.join(ACTIVATIONS)}"),
    "optimizer": ("list", None, f"{', '.join(OPTIMIZERS)} (Keras's defaults besides the "
                  "learning rate)"),
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


# Knobs a range may search: numbers on a scale (the others take lists only).
_RANGED = {"learning_rate": False, "dropout": False, "batch_size": True}  # -> whole numbers


def searched_values(source: str, key: str, values: Any) -> list[Any] | dict[str, Any]:
    """A [search_space] list or range checked, as Optuna will hold it (see
    ``units_label``)."""
    if key not in _PARAMETERS:  # the model would silently ignore it
        raise SearchError(f"{source}: {'search_space.' + key!r} is not a parameter of this "
                          f"model; it takes {', '.join(_PARAMETERS)}")
    if ranges.is_range(values):
        if key not in _RANGED:
            raise SearchError(f"{source}: 'search_space.{key}' takes a list of values, not a "
                              f"range (ranges: {', '.join(_RANGED)})")
        spec = ranges.checked_range(source, key, values)
        check, _, many = _PARAMETERS[key]
        ranges.check_bounds(source, key, spec, check, many, integer=_RANGED[key])
        return spec
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


def check_fixed_values(source: str, space: dict[str, list[Any]], training: dict[str, Any],
                       fields: dict[str, Any]) -> None:
    """Each knob of the seed's model searched or fixed, not both, and its fixed value (from
    ``training``, else the seed's) one the model takes."""
    for key in SEED_MODEL:
        if key in space and key in training:
            raise SearchError(f"{source}: 'search_space.{key}' and 'training.{key}' both set "
                              f"{key}; keep one (searched or fixed)")
        check, one, _ = _PARAMETERS[key]
        if not check(fields[key]):
            raise SearchError(f"{source}: 'training.{key}' must {one}, not {fields[key]!r}")
