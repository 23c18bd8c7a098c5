"""Which configuration a search unit gets: asked of the study's sampler when the unit's first
trial starts, then fixed on the unit (every later attempt takes its first trial's params).

``random`` and ``qmc`` configurations depend on (seed, unit) alone, computed here with the
libraries Optuna's RandomSampler and QMCSampler use (NumPy's generator, SciPy's Sobol and
Halton sequences), so one worker and three sample the same configurations. The adaptive
samplers (``tpe``, ``cmaes``, ``gp``) are Optuna's own classes, each seeded per unit and
asked through the trial, so they see the study's complete and running trials (TPE's
constant liar, on by default, keeps parallel workers apart).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna

from search import ranges
from search.search_section import SAMPLERS


def unit_seed(seed: int, unit: int) -> int:
    """A search unit's own seed, from the study's sampler seed and the unit's index."""
    return int(np.random.SeedSequence([seed, unit]).generate_state(1)[0])


def _qmc_point(search: dict[str, Any], dimensions: int, unit: int) -> np.ndarray:
    from scipy.stats import qmc

    options = search["sampler_options"]
    engine_class = qmc.Halton if options.get("qmc_type", "sobol") == "halton" else qmc.Sobol
    engine = engine_class(dimensions, scramble=options.get("scramble", False),
                          seed=search["seed"])
    with warnings.catch_warnings():  # Sobol's "balance properties" warning: one point a unit
        warnings.simplefilter("ignore")
        if unit:  # SciPy's Sobol cannot fast-forward by nothing
            engine.fast_forward(unit)
        return engine.random(1)[0]


def fixed_configuration(search: dict[str, Any], space: dict[str, Any],
                        unit: int) -> dict[str, Any] | None:
    """A random or QMC unit's configuration, from (seed, unit) alone; None for a sampler
    that adapts to the study's trials."""
    if search["sampler"] == "random":
        point = np.random.default_rng(unit_seed(search["seed"], unit)).random(len(space))
    elif search["sampler"] == "qmc":
        point = _qmc_point(search, len(space), unit)
    else:
        return None
    return {name: _plain(ranges.from_unit_interval(values, float(u)))
            for (name, values), u in zip(space.items(), point, strict=True)}


def _plain(value: Any) -> Any:
    return round(value, 12) if isinstance(value, float) else value


def adaptive_sampler(search: dict[str, Any], unit: int) -> optuna.samplers.BaseSampler:
    """The study's Optuna sampler, seeded for ``unit``, with the definition's options."""
    cls = getattr(optuna.samplers, SAMPLERS[search["sampler"]])
    with warnings.catch_warnings():  # "experimental" warnings of some samplers' options
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(seed=unit_seed(search["seed"], unit), **search["sampler_options"])


def sample_into(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """Ask ``trial``'s sampler (the study's, set for this unit) for every parameter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {name: ranges.suggest(trial, name, values) for name, values in space.items()}
