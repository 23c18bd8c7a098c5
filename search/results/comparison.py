"""Comparisons of grid points, or of one hyperparameter's levels, on seed-adjusted means.

Replicate r of every point is trained with the same seed, so each value is modelled as
point effect + seed effect + noise: a two-way additive model, fitted by least squares on the
cells that completed. A point's *seed-adjusted mean* is its effect at the average seed; with
every replicate done it is the plain mean, and a point that missed an unlucky seed does not
rank higher for it. Values are scores here: higher is better (the verdict negates a
minimised objective before it comes here).

The noise behind each comparison is estimated one of two ways:

- pooled: the model's residual variance, shared by all points ((k-1)(n-1) degrees of freedom
  with every cell done). Valid when the points' spreads agree, so used only when Bartlett's
  test on the residuals (of the points with 3 or more replicates) finds no sign that they
  differ: p >= 0.5. The threshold is that high on purpose: with 3-5 replicates the test is
  weak, and at 0.10 a truly best, steady point beside noisy equals was ruled out 6-7 % of
  the time instead of 5 % (scripts/calibrate_verdict.py, "unequal spreads").
- per pair: each pair's paired differences on the replicates it shares (n-1 degrees of
  freedom) with a Bonferroni share of alpha: valid whatever the spreads. Used otherwise,
  and whenever the spreads cannot be compared (fewer than 2 points with 3 replicates).

A pair without a noise estimate (fewer than 2 shared replicates, or differences without any
spread) is never the reason for a claim. ``with_best`` is Hsu's multiple comparison with the
best; ``all_pairs`` rules a group out only when another beats it by an all-pairs margin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats

SPREAD_CHECK_ALPHA = 0.5
# Differences whose spread is below this (relative to the values' size) have none: equal
# values, or a gap every replicate repeats exactly, up to floating-point rounding.
_NO_SPREAD = 1e-12


@dataclasses.dataclass(frozen=True)
class Fit:
    """The additive model's seed-adjusted means and what their comparisons need."""

    means: np.ndarray
    covariance: np.ndarray  # of the means, in units of one run's noise variance
    residuals: np.ndarray  # like the values, NaN where a cell is missing
    df: int
    sigma: float | None  # one run's noise (residual sd); None without residual df or spread


def fit(values: np.ndarray) -> Fit | None:
    """Fit groups x seeds ``values`` (NaN = not run); None when some group's effect cannot
    be told from the seeds' (it shares no seed with the others)."""
    groups, seeds = values.shape
    rows, cols = np.nonzero(~np.isnan(values))
    design = np.zeros((rows.size, groups + seeds - 1))
    design[np.arange(rows.size), rows] = 1.0
    # Seed effects sum to zero (the last is minus the others), so a group's coefficient is
    # its effect at the average seed: its seed-adjusted mean.
    seed_part = design[:, groups:]
    last = cols == seeds - 1
    seed_part[np.nonzero(~last)[0], cols[~last]] = 1.0
    seed_part[last] = -1.0
    gram = design.T @ design
    if np.linalg.matrix_rank(gram) < gram.shape[0]:
        return None
    inverse = np.linalg.inv(gram)
    observed = values[rows, cols]
    coefficients = inverse @ (design.T @ observed)
    residuals = np.full(values.shape, np.nan)
    residuals[rows, cols] = observed - design @ coefficients
    df = rows.size - gram.shape[0]
    sigma = float(np.sqrt(np.sum(residuals[rows, cols] ** 2) / df)) if df > 0 else None
    if sigma is not None and sigma <= _NO_SPREAD * max(1.0, float(np.abs(observed).max())):
        sigma = None
    return Fit(coefficients[:groups], inverse[:groups, :groups], residuals, df, sigma)


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Every ordered pair (i, j): i's advantage over j, its standard error (NaN: none) and
    degrees of freedom; how the noise was estimated, and the means that rank the groups."""

    advantage: np.ndarray
    se: np.ndarray
    df: np.ndarray
    pooled: bool
    method: str
    means: np.ndarray
    sigma: float | None  # the pooled noise of one run, when the model could estimate it
    rho: float | None = None  # pooled: the comparisons' smallest correlation (Dunnett's)


def _pooled(model: Fit, p_value: float, complete: bool) -> Pairs:
    diagonal = np.diag(model.covariance)
    variance = diagonal[:, None] + diagonal[None, :] - 2 * model.covariance
    se = model.sigma * np.sqrt(np.clip(variance, 0, None))
    np.fill_diagonal(se, np.nan)
    method = (f"pooled spread of all points (two-way point + seed model, {model.df} degrees "
              f"of freedom; no sign that the spreads differ, Bartlett p = {p_value:.2f})")
    return Pairs(model.means[:, None] - model.means[None, :], se,
                 np.full(se.shape, float(model.df)), True, method, model.means, model.sigma,
                 equicorrelation(model.covariance, complete))


def _paired(values: np.ndarray, means: np.ndarray, sigma: float | None, why: str) -> Pairs:
    differences = values[:, None, :] - values[None, :, :]
    shared = ~np.isnan(differences)
    counts = shared.sum(axis=-1)
    mean = np.where(shared, differences, 0).sum(axis=-1) / np.maximum(counts, 1)
    deviations = np.where(shared, differences - mean[..., None], 0)
    spread = np.sqrt((deviations ** 2).sum(axis=-1) / np.maximum(counts - 1, 1))
    scale = max(1.0, float(np.nanmax(np.abs(values))))
    usable = (counts >= 2) & (spread > _NO_SPREAD * scale)
    se = np.where(usable, spread / np.sqrt(np.maximum(counts, 1)), np.nan)
    advantage = np.where(counts > 0, mean, np.nan)
    return Pairs(advantage, se, counts - 1.0, False,
                 f"each pair's own paired differences ({why})", means, sigma)


def spread_check(model: Fit) -> float | None:
    """Bartlett's p-value for equal spreads of the residuals of the points with 3 or more
    replicates; None when fewer than 2 such points have a spread."""
    groups = [row[~np.isnan(row)] for row in model.residuals]
    groups = [group for group in groups if group.size >= 3]
    if len(groups) < 2:
        return None
    # Bartlett's statistic, written out: SciPy's wrapper costs more than the sum itself,
    # and the calibration runs it tens of thousands of times.
    df = np.array([group.size - 1 for group in groups], dtype=float)
    variances = np.array([group.var(ddof=1) for group in groups])
    if not (variances > 0).all():
        return None
    pooled = df @ variances / df.sum()
    statistic = df.sum() * np.log(pooled) - df @ np.log(variances)
    correction = 1 + ((1 / df).sum() - 1 / df.sum()) / (3 * (len(groups) - 1))
    return float(scipy.stats.chi2.sf(statistic / correction, len(groups) - 1))


def estimate(values: np.ndarray, pool: bool = True) -> Pairs:
    """The pair statistics of groups x seeds ``values``: pooled when ``pool`` and the
    spreads agree, else each pair's own."""
    model = fit(values)
    if model is None:  # not estimable: only pairs' own shared seeds can be compared
        counts = np.sum(~np.isnan(values), axis=1)
        means = np.nanmean(np.where(counts[:, None] > 0, values, 0), axis=1)
        return _paired(values, means, None, "the points share too few seeds for a model")
    if not pool:
        return _paired(values, model.means, model.sigma, "valid whatever the spreads")
    p_value = spread_check(model) if model.sigma is not None else None
    if p_value is not None and p_value >= SPREAD_CHECK_ALPHA:
        return _pooled(model, p_value, not np.isnan(values).any())
    if p_value is not None:
        # Three decimals: 0.4996 must not read as 0.50 beside "< 0.5".
        why = (f"equal spreads not shown: Bartlett p = {p_value:.3f} < "
               f"{SPREAD_CHECK_ALPHA:g}")
    else:
        why = "their spreads cannot be compared with fewer than 3 replicates"
    return _paired(values, model.means, model.sigma, why)


def equicorrelation(model_covariance: np.ndarray, complete: bool) -> float:
    """The smallest correlation between two comparisons that share a point (0.5 when every
    cell is done); a smaller common value makes Dunnett's critical value safe."""
    if complete:
        return 0.5
    cov = model_covariance
    diagonal = np.diag(cov)
    variance = diagonal[:, None] + diagonal[None, :] - 2 * cov
    lowest = 1.0
    for i in range(cov.shape[0]):
        others = np.arange(cov.shape[0]) != i
        shared = (cov[i, i] - cov[i, others][:, None] - cov[i, others][None, :]
                  + cov[np.ix_(others, others)])
        scale = np.sqrt(np.outer(variance[i, others], variance[i, others]))
        correlation = shared / scale
        np.fill_diagonal(correlation, 1.0)
        lowest = min(lowest, float(correlation.min()))
    return lowest
