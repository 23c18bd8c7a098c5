"""Critical values for the verdict's multiple comparisons (``search.results.comparison``).

- ``dunnett``: the one-sided critical value of the largest of ``m`` equicorrelated t
  statistics (correlation ``rho``, ``df`` degrees of freedom): Hsu's multiple comparison with
  the best uses it with m = points - 1. It is computed by quadrature, not looked up: the
  chance that all m stay below d is an average over the shared noise scale and the shared
  normal part of each statistic.
- ``bonferroni``: one t critical value per comparison, valid whatever the comparisons'
  dependence; used when each pair carries its own spread.

Degrees of freedom are rounded down to a short ladder before a value is computed (fewer
degrees of freedom give a larger, so safer, value), which lets one cache serve every study.
"""

from __future__ import annotations

import bisect
import functools
import math

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats

# Beyond 30 degrees of freedom critical values change in the third digit; these steps keep
# the cache small. math.inf is the normal limit.
_DF_LADDER = (*range(1, 31), 40, 60, 80, 120, 240, 480, math.inf)
# Quadrature sizes: a first verdict in a process computes a few critical values (one per
# degrees-of-freedom step it meets), and each must cost milliseconds, not the 200 ms that
# 2000 x 64 nodes took. 256 x 32 nodes agree with 2000 x 64 within 0.03 % for rho <= 0.5
# (every correlation the verdict uses); _ROUND_UP covers that, so no value is too small.
_HERMITE = np.polynomial.hermite_e.hermegauss(32)  # nodes, weights for exp(-w^2 / 2)
_SCALE_POINTS = 256
_ROUND_UP = 1.001
_MOST_RHO = 0.5  # Hermite nodes lose accuracy as rho nears 1; the verdict never needs more


def ladder_df(df: float) -> float:
    """The largest step of the ladder at or below ``df`` (at least 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df!r}")
    return _DF_LADDER[bisect.bisect_right(_DF_LADDER, df) - 1]


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
    inner = scipy.special.ndtr((d * scales[:, None] - shared) / math.sqrt(1 - rho))
    return float(np.mean(inner ** comparisons @ weights) / math.sqrt(2 * math.pi))


@functools.lru_cache(maxsize=4096)
def _dunnett(comparisons: int, rho: float, df: float, alpha: float) -> float:
    if comparisons == 1:
        return t_quantile(1 - alpha, df)
    low = t_quantile(1 - alpha, df)  # the largest of several is above any one of them
    high = t_quantile(1 - alpha / comparisons, df)  # Bonferroni bounds it
    return _ROUND_UP * float(scipy.optimize.brentq(
        lambda d: _all_below(d, comparisons, rho, df) - (1 - alpha), low * 0.99,
        high * 1.01 + 0.1, xtol=1e-6))


def dunnett(comparisons: int, rho: float, df: float, alpha: float) -> float:
    """One-sided critical value d: P(all ``comparisons`` t statistics <= d) = 1 - alpha.

    ``rho`` is rounded down to a multiple of 0.05, at most 0.5, and ``df`` down the ladder:
    each makes d larger (Slepian's inequality for rho), so the value stays safe.
    """
    if comparisons < 1 or not 0 < alpha < 1:
        raise ValueError(f"need comparisons >= 1 and 0 < alpha < 1, got {comparisons}, {alpha}")
    rho = min(max(math.floor(rho * 20) / 20, 0.0), _MOST_RHO)
    return _dunnett(comparisons, rho, ladder_df(df), alpha)


@functools.lru_cache(maxsize=4096)
def t_quantile(probability: float, df: float) -> float:
    """Student's t quantile; cached, as the verdict asks for the same few again and again."""
    return float(scipy.stats.t.ppf(probability, df))


def t_quantiles(probability: float, df: np.ndarray) -> np.ndarray:
    """``t_quantile`` for each entry of ``df`` (NaN where df < 1)."""
    df = np.asarray(df, dtype=float)
    values = np.full(df.shape, np.nan)
    for value in np.unique(df[df >= 1]):
        values[df == value] = t_quantile(probability, float(value))
    return values


def bonferroni(df: np.ndarray, tail_alpha: float) -> np.ndarray:
    """One-sided t critical values at ``tail_alpha`` for each entry of ``df`` (NaN where
    df < 1)."""
    return t_quantiles(1 - tail_alpha, df)
