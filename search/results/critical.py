"""Critical values for the verdict's multiple comparisons (``search.results.comparison``).

- ``dunnett``: the one-sided critical value of the largest of ``m`` equicorrelated t
  statistics (correlation ``rho``, ``df`` degrees of freedom): Hsu's multiple comparison with
  the best uses it with m = points - 1. It is computed by quadrature, not looked up: the
  chance that all m stay below d is an average over the shared noise scale and the shared
  normal part of each statistic.
- ``tukey``: the two-sided critical value for all pairs of ``groups`` means (Tukey's
  studentized range over the square root of 2), used for claims about a hyperparameter.
- ``bonferroni``: one t critical value per comparison, valid whatever the comparisons'
  dependence; used when each pair carries its own spread.

Degrees of freedom are rounded down to a short ladder before a value is computed (fewer
degrees of freedom give a larger, so safer, value), which lets one cache serve every study.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.optimize
import scipy.stats

# Beyond 30 degrees of freedom critical values change in the third digit; these steps keep
# the cache small. math.inf is the normal limit.
_DF_LADDER = (*range(1, 31), 40, 60, 80, 120, 240, 480, math.inf)
_HERMITE = np.polynomial.hermite_e.hermegauss(64)  # nodes, weights for exp(-w^2 / 2)
_SCALE_POINTS = 2000


def ladder_df(df: float) -> float:
    """The largest step of the ladder at or below ``df`` (at least 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df!r}")
    return max(step for step in _DF_LADDER if step <= df)


@functools.lru_cache(maxsize=64)
def _scale_nodes(df: float) -> np.ndarray:
    """Equally likely values of S = sqrt(chi2(df) / df), the t statistics' shared denominator.

    The mean of a function of S is the integral of it over S's quantiles; the midpoint rule
    on that scale stays accurate at 1 degree of freedom, where S is often near 0.
    """
    if math.isinf(df):
        return np.ones(1)
    quantiles = (np.arange(_SCALE_POINTS) + 0.5) / _SCALE_POINTS
    return np.sqrt(scipy.stats.chi2.ppf(quantiles, df) / df)


def _all_below(d: float, comparisons: int, rho: float, df: float) -> float:
    """P(max of the m equicorrelated t statistics <= d)."""
    scales = _scale_nodes(df)
    nodes, weights = _HERMITE
    shared = math.sqrt(rho) * nodes[None, :]
    inner = scipy.stats.norm.cdf((d * scales[:, None] - shared) / math.sqrt(1 - rho))
    return float(np.mean(inner ** comparisons @ weights) / math.sqrt(2 * math.pi))


@functools.lru_cache(maxsize=4096)
def _dunnett(comparisons: int, rho: float, df: float, alpha: float) -> float:
    if comparisons == 1:
        return float(scipy.stats.t.ppf(1 - alpha, df))
    high = float(scipy.stats.t.ppf(1 - alpha / comparisons, df))  # Bonferroni bounds it
    return float(scipy.optimize.brentq(
        lambda d: _all_below(d, comparisons, rho, df) - (1 - alpha), 0.0, high * 1.01 + 0.1,
        xtol=1e-6))


def dunnett(comparisons: int, rho: float, df: float, alpha: float) -> float:
    """One-sided critical value d: P(all ``comparisons`` t statistics <= d) = 1 - alpha.

    ``rho`` is rounded down to a multiple of 0.05 and ``df`` down the ladder: both make d
    larger (Slepian's inequality for rho), so the value stays safe.
    """
    if comparisons < 1 or not 0 < alpha < 1:
        raise ValueError(f"need comparisons >= 1 and 0 < alpha < 1, got {comparisons}, {alpha}")
    rho = min(max(math.floor(rho * 20) / 20, 0.0), 0.95)
    return _dunnett(comparisons, rho, ladder_df(df), alpha)


@functools.lru_cache(maxsize=1024)
def _tukey(groups: int, df: float, alpha: float) -> float:
    # SciPy's studentized range takes a finite df; at 10^4 it equals the normal limit to 4
    # digits.
    q = scipy.stats.studentized_range.ppf(1 - alpha, groups, min(df, 1e4))
    return float(q / math.sqrt(2))


def tukey(groups: int, df: float, alpha: float) -> float:
    """Two-sided critical value for |difference| / its standard error, all pairs of
    ``groups`` means at family-wise ``alpha`` (Tukey; Tukey-Kramer when unbalanced)."""
    if groups < 2 or not 0 < alpha < 1:
        raise ValueError(f"need groups >= 2 and 0 < alpha < 1, got {groups}, {alpha}")
    if groups == 2:
        return float(scipy.stats.t.ppf(1 - alpha / 2, ladder_df(df)))
    return _tukey(groups, ladder_df(df), alpha)


def bonferroni(df: np.ndarray, tail_alpha: float) -> np.ndarray:
    """One-sided t critical values at ``tail_alpha`` for each entry of ``df`` (NaN where
    df < 1)."""
    df = np.asarray(df, dtype=float)
    values = np.full(df.shape, np.nan)
    usable = df >= 1
    values[usable] = scipy.stats.t.ppf(1 - tail_alpha, df[usable])
    return values
