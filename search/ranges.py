"""A searched parameter's values: a list (one of these values) or a range
(``{low, high, log, step}``), the one module that reads, checks and samples them.

A range is stored as ``{"low", "high", "log", "step"}`` (step None when absent); an int range
has whole-number bounds and step. ``distribution`` turns either form into Optuna's
distribution, and ``suggest`` asks a trial for it, so the objective, the claims and the report
read a parameter the same way. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

from search.errors import SearchError

RANGE_KEYS = ("low", "high", "log", "step")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_range(values: Any) -> bool:
    return isinstance(values, dict)


def is_int_range(spec: dict[str, Any]) -> bool:
    return all(isinstance(spec[key], int) for key in ("low", "high")) \
        and (spec["step"] is None or isinstance(spec["step"], int))


def checked_range(source: str, key: str, table: Any) -> dict[str, Any]:
    """A [search_space] range, checked: both bounds numbers, low < high, a log range above 0,
    a step (positive) or log, not both."""
    where = f"{source}: 'search_space.{key}'"
    unknown = sorted(set(table) - set(RANGE_KEYS))
    if unknown:
        raise SearchError(f"{where} has an unknown key {unknown[0]!r}; a range takes "
                          f"{', '.join(RANGE_KEYS)} (or give a list of values)")
    for bound in ("low", "high"):
        if bound not in table:
            raise SearchError(f"{where} has no '{bound}'; a range needs low and high")
        if not _number(table[bound]) or not math.isfinite(table[bound]):
            raise SearchError(f"{where}: '{bound}' must be a number, not {table[bound]!r}")
    low, high = table["low"], table["high"]
    log, step = table.get("log", False), table.get("step")
    if not isinstance(log, bool):
        raise SearchError(f"{where}: 'log' must be true or false, not {log!r}")
    if low >= high:
        raise SearchError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise SearchError(f"{where}: a log range needs low above 0, not {low}")
    if step is not None:
        if log:
            raise SearchError(f"{where}: 'step' and 'log' cannot be combined (Optuna samples "
                              "a log range continuously); drop one")
        if not _number(step) or step <= 0:
            raise SearchError(f"{where}: 'step' must be a positive number, not {step!r}")
    return {"low": low, "high": high, "log": log, "step": step}


def check_bounds(source: str, key: str, spec: dict[str, Any], check: Any, must: str,
                 integer: bool = False) -> None:
    """Both ends of a range are values ``check`` admits (``must`` says which), and an int
    range where the parameter takes whole numbers only."""
    if integer and not is_int_range(spec):
        raise SearchError(f"{source}: 'search_space.{key}' must be an int range (whole-number "
                          f"low, high and step), not {spec['low']!r}..{spec['high']!r}")
    for bound, value in (("low", spec["low"]), ("high", highest(spec))):
        if not check(value):
            raise SearchError(f"{source}: 'search_space.{key}' {bound} {value!r} is outside "
                              f"what {key} takes: values must {must}")


def lowest(values: list[Any] | dict[str, Any]) -> Any:
    """The first value a parameter may take: the builder is checked there."""
    return values["low"] if is_range(values) else values[0]


def highest(values: list[Any] | dict[str, Any]) -> Any:
    if not is_range(values):
        return values[-1]
    spec = values
    if spec["step"] is None:
        return spec["high"]
    steps = math.floor((spec["high"] - spec["low"]) / spec["step"] + 1e-9)
    return spec["low"] + steps * spec["step"]


def distribution(values: list[Any] | dict[str, Any]) -> Any:
    """Optuna's distribution of a parameter: categorical for a list, else int or float."""
    from optuna import distributions

    if not is_range(values):
        return distributions.CategoricalDistribution(values)
    spec = values
    if is_int_range(spec):
        return distributions.IntDistribution(spec["low"], spec["high"], log=spec["log"],
                                             step=spec["step"] or 1)
    return distributions.FloatDistribution(float(spec["low"]), float(spec["high"]),
                                           log=spec["log"], step=spec["step"])


def distributions_of(space: dict[str, Any]) -> dict[str, Any]:
    return {name: distribution(values) for name, values in space.items()}


def from_unit_interval(values: list[Any] | dict[str, Any], u: float) -> Any:
    """The value at ``u`` in [0, 1) of a parameter: a list's index, a range's point (on its
    log scale or its step grid), as Optuna's QMC sampler maps its samples."""
    if not is_range(values):
        return values[min(int(u * len(values)), len(values) - 1)]
    spec = values
    integer = is_int_range(spec)
    low, high = spec["low"], spec["high"]
    if spec["log"]:
        # Optuna widens an int log range by half a unit on each side before rounding.
        low_t = math.log(low - 0.5 if integer else low)
        high_t = math.log(high + 0.5 if integer else high)
        value = math.exp(low_t + u * (high_t - low_t))
        return min(max(round(value), low), high) if integer else min(max(value, low), high)
    step = spec["step"] or (1 if integer else None)
    if step is None:
        return low + u * (high - low)
    count = math.floor((high - low) / step + 1e-9) + 1
    value = low + min(int(u * count), count - 1) * step
    return int(value) if integer else float(value)


def suggest(trial: Any, name: str, values: list[Any] | dict[str, Any]) -> Any:
    """Ask ``trial`` (an optuna.Trial) for parameter ``name``: a value it holds already, or
    its sampler's."""
    if not is_range(values):
        return trial.suggest_categorical(name, values)
    spec = values
    if is_int_range(spec):
        return trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"],
                                 step=spec["step"] or 1)
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=spec["log"],
                               step=spec["step"])
