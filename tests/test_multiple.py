"""Contracts of the verdict's statistics engine (search.results.critical, comparison,
multiple): critical values, the choice of noise estimate, replicates for stated differences.

Run with ``pytest tests/test_multiple.py -q``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

from search.results import comparison, critical, moderation, multiple, statistics
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


def test_unequal_spreads_keep_each_pairs_own_and_equal_ones_pool() -> None:
    rng = np.random.default_rng(4)
    noisy = [point({"learning_rate": rate}, [0.97 + SEED_OFFSETS[r] + rng.normal(0, spread)
                                             for r in range(5)])
             for rate, spread in ((0.001, 0.0002), (0.003, 0.0002), (0.01, 0.01),
                                  (0.03, 0.0002))]
    assert "prior worth 0.5 degrees of freedom" in judge(noisy).method
    steady = grid({0.001: 0.97, 0.01: 0.96}, 0.002, 10, seed=0)
    prior = multiple.with_best(statistics.scores([p.validation for p in steady], True)).pairs
    assert prior.prior.df > 30 and "45 at most" in judge(steady).method


def _agreeing_study(replicates: int) -> np.ndarray:
    """Nine equal points whose pairs' spreads show no difference (an infinite prior)."""
    for seed in range(50):
        rng = np.random.default_rng(seed)
        values = 0.97 + rng.normal(0, 0.002, (1, replicates)) + rng.normal(
            0, 0.002, (9, replicates))
        if comparison.estimate(values).prior.df == math.inf:
            return values
    raise AssertionError("no agreeing study in 50 seeds")


def test_agreeing_spreads_get_the_pooled_residual_spread_from_3_replicates() -> None:
    # Hsu's pooled MCB exactly: every pair's variance is twice the two-way model's.
    values = _agreeing_study(3)
    pairs, model = comparison.estimate(values), comparison.fit(values)
    assert pairs.sigma == pytest.approx(model.sigma)
    off = ~np.eye(9, dtype=bool)
    assert np.allclose(pairs.se[off], model.sigma * math.sqrt(2 / 3))
    assert np.all(pairs.df[off] == model.df) and "pooled residual" in pairs.method
    # At 2 replicates a pair's 1 degree of freedom cannot show unequal spreads: no pooling.
    shallow = comparison.estimate(_agreeing_study(2))
    assert not shallow.prior.pooled and "1 degree of freedom" in shallow.method


def test_the_prior_is_fitted_from_the_spread_of_the_variances() -> None:
    # Smyth's moments recover a scaled inverse chi-square prior from independent draws.
    rng = np.random.default_rng(0)
    truth = 8.0 * 0.5 / rng.chisquare(8.0, 4000)  # prior: 8 degrees of freedom, variance 0.5
    observed = truth * rng.chisquare(3, 4000) / 3
    prior = moderation.fit_prior(observed, np.full(4000, 3.0), points=10_000)
    assert prior.df == pytest.approx(8.0, rel=0.25)
    assert prior.variance == pytest.approx(0.5, rel=0.1)
    equal = moderation.fit_prior(np.full(50, 0.3), np.full(50, 2.0), points=10)
    assert math.isinf(equal.df) and equal.variance == pytest.approx(0.3 * 2 / math.exp(
        scipy.special.digamma(1.0)) / 2)  # the log-scale centre of a 2-df variance
    moderated, df = moderation.squeeze(np.array([1.0, 0.1]), np.array([2.0, 2.0]),
                                       moderation.Prior(2.0, 0.5), most_df=3.0)
    assert moderated == pytest.approx([0.75, 0.3]) and list(df) == [3.0, 3.0]


def test_mcb_multiplier_is_dunnett_with_equal_spreads_and_grows_as_they_differ() -> None:
    dunnett = critical.dunnett(8, 0.5, 16, 0.05)
    assert multiple.multiplier(9, 0.5, 16, math.inf, 2, 0.05) == dunnett
    middle = multiple.multiplier(9, 0.5, 16, 14.0, 2, 0.05)
    sidak = critical.t_quantile(0.95 ** (1 / 8), 16)
    assert dunnett < middle < sidak and middle == pytest.approx(0.875 * dunnett + 0.125 * sidak)


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


@pytest.mark.parametrize(("comparisons", "rho", "df"), [
    (8, 0.5, 16), (8, 0.0, 2), (2, 0.35, 1), (11, 0.2, math.inf), (35, 0.5, 4)])
def test_the_fast_quadrature_never_gives_a_smaller_critical_value(comparisons: int, rho: float,
                                                                  df: float) -> None:
    # The verdict's small quadrature (milliseconds a value) is rounded up past its error:
    # against a fine one (4000 scale points x 96 Hermite nodes) it is larger by under 0.2 %.
    nodes, weights = np.polynomial.hermite_e.hermegauss(96)
    scales = (np.ones(1) if math.isinf(df) else
              np.sqrt(scipy.stats.chi2.ppf((np.arange(4000) + 0.5) / 4000, df) / df))

    def all_below(d: float) -> float:
        inner = scipy.stats.norm.cdf((d * scales[:, None] - math.sqrt(rho) * nodes[None, :])
                                     / math.sqrt(1 - rho))
        return float(np.mean(inner ** comparisons @ weights) / math.sqrt(2 * math.pi))

    fine = scipy.optimize.brentq(lambda d: all_below(d) - 0.95, 0.5, 60, xtol=1e-8)
    assert fine <= critical.dunnett(comparisons, rho, df, 0.05) <= fine * 1.002
