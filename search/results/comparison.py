"""Comparisons of grid points, or of one hyperparameter's levels, on seed-adjusted means.

Replicate r of every point is trained with the same seed, so each value is modelled as
point effect + seed effect + noise: a two-way additive model, fitted by least squares on the
cells that completed. A point's *seed-adjusted mean* is its effect at the average seed; with
every replicate done it is the plain mean, and a point that missed an unlucky seed does not
rank higher for it. Values are scores here: higher is better (the verdict negates a
minimised objective before it comes here).

The noise behind each comparison is each pair's own: the spread of its paired differences
on the replicates both have (n-1 degrees of freedom), valid whatever the points' spreads.
For the verdict's points it is moderated toward the study's common spread by empirical
Bayes (``search.results.moderation``, as limma moderates each gene's variance): when the
spreads agree, every pair gets the common one, on up to the whole study's residual degrees
of freedom (the power of a pooled test); when they differ, each pair keeps more of its own.
One formula, no pre-test choosing between pooled and per-pair noise (a choice whose own
errors added up: scripts/calibrate_verdict.py).

A pair without a noise estimate of its own (fewer than 2 shared replicates, or differences
without any spread) is never the reason for a claim. ``with_best`` is Hsu's multiple
comparison with the best; ``all_pairs`` rules a group out only when another beats it by an
all-pairs margin.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from search.results import moderation

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
    """Every ordered pair (i, j): i's advantage over j on their shared replicates, its
    standard error (NaN: none) and degrees of freedom; the means that rank the groups; how
    the noise was estimated."""

    advantage: np.ndarray
    se: np.ndarray
    df: np.ndarray
    means: np.ndarray
    method: str
    sigma: float | None  # one run's spread after seed effects (the prior's, when moderated)
    prior: moderation.Prior | None = None  # None: each pair's own spread, unmoderated
    rho: np.ndarray | None = None  # per group, the smallest correlation of its comparisons

    @property
    def moderated(self) -> bool:
        return self.prior is not None


def _differences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: the mean and variance of the paired differences, and how many there are."""
    differences = values[:, None, :] - values[None, :, :]
    shared = ~np.isnan(differences)
    counts = shared.sum(axis=-1)
    mean = np.where(shared, differences, 0).sum(axis=-1) / np.maximum(counts, 1)
    deviations = np.where(shared, differences - mean[..., None], 0)
    variance = (deviations ** 2).sum(axis=-1) / np.maximum(counts - 1, 1)
    scale = max(1.0, float(np.nanmax(np.abs(values))))
    usable = (counts >= 2) & (np.sqrt(variance) > _NO_SPREAD * scale)
    return (np.where(counts > 0, mean, np.nan), np.where(usable, variance, np.nan),
            counts)


def smallest_correlations(variance: np.ndarray, counts: np.ndarray,
                          present: np.ndarray) -> np.ndarray:
    """Per group i, the smallest correlation between two of its comparisons (j - i and
    l - i share i's own noise), from the pairs' ``variance`` (NaN: none): i's own variance
    is its pairs' mean variance less half the mean of the pairs without it. Clipped to
    [0, 0.5]; a smaller value makes Dunnett's critical value larger (Slepian), so safe."""
    groups = variance.shape[0]
    usable = np.isfinite(variance)
    known = np.where(usable, variance, 0.0)
    row_count = usable.sum(axis=1)
    others = ((known.sum() / 2 - known.sum(axis=1))
              / np.maximum(usable.sum() / 2 - row_count, 1))
    own = known.sum(axis=1) / np.maximum(row_count, 1) - others / 2
    shared = np.einsum("ir,jr,lr->ijl", present, present, present)
    scale = np.sqrt(known[:, :, None] * known[:, None, :]
                    * counts[:, :, None] * counts[:, None, :])
    valid = usable[:, :, None] & usable[:, None, :] & ~np.eye(groups, dtype=bool)[None]
    correlation = np.where(valid, own[:, None, None] * shared / np.where(valid, scale, 1), 1.0)
    return np.clip(correlation.min(axis=(1, 2)), 0.0, 0.5)


def _pooled(prior: moderation.Prior | None, model: Fit,
            own_df: np.ndarray) -> moderation.Prior | None:
    """Where the spreads agree (an infinite prior), the common spread is the two-way model's
    residual one, the pooled estimate of Hsu's MCB: under equal spreads it is independent of
    the pairs' spread ratios that judged them equal (Basu), so MCB keeps its exact 5 %, and it
    is more precise than the pairs' log-mean. Not when most pairs' own spreads rest on 1
    degree of freedom (2 shared replicates): those cannot see unequal spreads (an infinite
    prior in 38 % of unequal-spreads studies at 2 replicates, 55 % of equal ones), so the
    log-mean, which erred less there, stays (scripts/calibrate_verdict.py)."""
    if (prior is None or not np.isinf(prior.df) or model.sigma is None
            or np.median(own_df) < 2):
        return prior
    return moderation.Prior(math.inf, 2 * model.sigma ** 2, pooled=True)


def _method(prior: moderation.Prior | None, most_df: int, why: str) -> str:
    if prior is None:
        return f"each pair's own paired differences ({why})"
    if prior.pooled:
        weight = ("the spreads agree, so every pair gets the two-way model's pooled residual "
                  f"spread: {most_df} degrees of freedom")
    elif np.isinf(prior.df):
        weight = ("no difference between the spreads shows, but with 2 shared replicates a "
                  "pair's spread rests on 1 degree of freedom, too few to show one: every "
                  f"pair gets the pairs' geometric-mean spread, {most_df} degrees of freedom")
    else:
        weight = (f"prior worth {prior.df:.1f} degrees of freedom beside each pair's own, "
                  f"{most_df} at most")
    return ("each pair's spread moderated toward the study's common spread by empirical "
            f"Bayes (limma's moderated t, Smyth 2004; {weight})")


def estimate(values: np.ndarray, moderate: bool = True) -> Pairs:
    """The pair statistics of groups x seeds ``values``: each pair's own spread, moderated
    toward the common one when ``moderate`` and the two-way model can be fitted."""
    model = fit(values)
    advantage, variance, counts = _differences(values)
    own_df = counts - 1.0
    if model is None:  # not estimable: only pairs' own shared seeds can be compared
        present = np.sum(~np.isnan(values), axis=1)
        means = np.nanmean(np.where(present[:, None] > 0, values, 0), axis=1)
        why = "the points share too few seeds for a model"
    else:
        means, why = model.means, "valid whatever the spreads"
    upper = np.triu(np.isfinite(variance), 1)
    prior = None
    if moderate and model is not None and model.df > 0:
        prior = moderation.fit_prior(variance[upper], own_df[upper], values.shape[0])
        prior = _pooled(prior, model, own_df[upper])
    if prior is None:
        se = np.sqrt(variance / np.maximum(counts, 1))
        return Pairs(advantage, se, own_df, means, _method(None, 0, why),
                     model.sigma if model is not None else None)
    moderated, df = moderation.squeeze(variance, own_df, prior, float(model.df))
    moderated = np.where(np.isfinite(variance), moderated, np.nan)
    rho = smallest_correlations(moderated, counts, (~np.isnan(values)).astype(float))
    return Pairs(advantage, np.sqrt(moderated / np.maximum(counts, 1)), df, means,
                 _method(prior, model.df, why), float(np.sqrt(prior.variance / 2)), prior,
                 rho)
