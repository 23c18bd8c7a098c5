"""Contracts of the verdict's statistics engine (search.results.critical, comparison,
multiple): critical values, the choice of noise estimate, replicates for stated differences.

Run with ``pytest tests/test_multiple.py -q``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from search.results import critical, multiple, statistics
from tests.test_statistics import SEED_OFFSETS, grid, judge, point


def test_replicates_needed_uses_stated_differences_and_the_pooled_spread() -> None:
    sigma, groups = 0.002, 9
    needed = multiple.replicates_needed(0.002, sigma, groups)

    def detectable(n: int) -> float:
        df = (groups - 1) * (n - 1)
        return ((critical.dunnett(groups - 1, 0.5, df, 0.05)
                 + scipy.stats.t.ppf(0.8, critical.ladder_df(df))) * sigma * math.sqrt(2 / n))

    assert detectable(needed) <= 0.002 < detectable(needed - 1)
    assert multiple.replicates_needed(0.0001, sigma, groups) is None  # beyond 1000
    # Two studies with the same noise but different observed gaps price alike.
    near = judge(grid({0.001: 0.970, 0.01: 0.9695}, 0.002, 4, seed=3))
    far = judge(grid({0.001: 0.970, 0.01: 0.9600}, 0.002, 4, seed=3))
    assert near.replicates_needed == far.replicates_needed
    assert list(near.replicates_needed) == ["0.001", "0.002", "0.005"]


@pytest.mark.parametrize(("metric", "values", "expected"), [
    ("val_accuracy", [0.9, 0.97], True), ("val_auc", [0.5, 1.0], True),
    ("val_accuracy", [0.9, 1.2], False), ("val_loss", [0.1, 0.2], False), (None, [0.5], False),
])
def test_proportion_rule(metric: str | None, values: list[float], expected: bool) -> None:
    assert statistics.is_proportion(metric, values) is expected


def test_unequal_spreads_use_each_pairs_own_differences() -> None:
    rng = np.random.default_rng(4)
    noisy = [point({"learning_rate": rate}, [0.97 + SEED_OFFSETS[r] + rng.normal(0, spread)
                                             for r in range(5)])
             for rate, spread in ((0.001, 0.0002), (0.003, 0.0002), (0.01, 0.01),
                                  (0.03, 0.0002))]
    assert "equal spreads not shown" in judge(noisy).method
    steady = grid({0.001: 0.97, 0.01: 0.96}, 0.002, 10, seed=0)
    assert "pooled spread of all points" in judge(steady).method


@pytest.mark.parametrize(("comparisons", "rho", "df"), [(8, 0.5, 16), (2, 0.5, 4), (8, 0.5, 1)])
def test_dunnett_critical_value_matches_simulation(comparisons: int, rho: float,
                                                  df: float) -> None:
    value = critical.dunnett(comparisons, rho, df, 0.05)
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((100_000, 1))
    normal = math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.standard_normal(
        (100_000, comparisons))
    scale = np.sqrt(rng.chisquare(df, (100_000, 1)) / df)
    assert np.mean((normal / scale).max(axis=1) > value) == pytest.approx(0.05, abs=0.004)
