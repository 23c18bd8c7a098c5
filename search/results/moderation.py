"""Empirical-Bayes moderated variances, as limma moderates each gene's (Smyth 2004,
"Linear models and empirical Bayes methods for assessing differential expression").

Each pair of points has its own variance of paired differences, ``s2`` on ``df`` degrees of
freedom: valid whatever the points' spreads, but with 3 replicates it rests on 2 degrees of
freedom. The study's pairs together say how much the true variances differ: they are taken
as draws from a scaled inverse chi-square prior (``prior_df``, ``prior_variance``), fitted
to the spread of the pairs' log variances by Smyth's method of moments. Each pair's variance
is then the posterior's, ``(prior_df * prior_variance + df * s2) / (prior_df + df)``, on
``prior_df + df`` degrees of freedom. Equal spreads give an infinite prior (every pair gets
the common variance: a pooled test); very different spreads a prior near 0 (each pair keeps
its own). One formula covers both, with no pre-test to choose between them.

    prior = moderation.fit_prior(variances, df, points=9)
    moderated, total_df = moderation.squeeze(variances, df, prior)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.special


@dataclasses.dataclass(frozen=True)
class Prior:
    """The fitted prior: its degrees of freedom (math.inf: the spreads agree) and variance."""

    df: float
    variance: float
    pooled: bool = False  # variance: the two-way model's pooled residual one (x 2, per pair)


def trigamma_inverse(value: float) -> float:
    """y with trigamma(y) = ``value`` > 0, by limma's Newton iteration."""
    if value > 1e7:
        return 1 / math.sqrt(value)
    if value < 1e-6:
        return 1 / value
    y = 0.5 + 1 / value
    for _ in range(50):
        trigamma = float(scipy.special.polygamma(1, y))
        step = trigamma * (1 - trigamma / value) / float(scipy.special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def fit_prior(variances: np.ndarray, df: np.ndarray, points: int) -> Prior | None:
    """Smyth's moment estimates from the pairs' ``variances`` on ``df`` (1-d, positive).

    The pairs of ``points`` points share points, so their variances agree more than
    independent ones would: two pairs with a point in common have variances correlated 0.25
    under equal spreads, 1 / (points + 1) on average over all pairs of pairs. Their sample
    variance is divided by 1 - 1 / (points + 1) to undo that, so the prior's degrees of
    freedom are not overstated (which would shrink a noisy pair's spread too far).
    None with fewer than 2 pairs.
    """
    if variances.size < 2:
        return None
    half = df / 2
    logs = np.log(variances) - scipy.special.digamma(half) + np.log(half)
    centre = float(logs.mean())
    spread = float(logs.var(ddof=1)) / (1 - 1 / (points + 1))
    excess = spread - float(np.mean(scipy.special.polygamma(1, half)))
    if excess <= 0:
        return Prior(math.inf, math.exp(centre))
    prior_df = 2 * trigamma_inverse(excess)
    half_prior = prior_df / 2
    return Prior(prior_df, math.exp(centre + scipy.special.digamma(half_prior)
                                    - math.log(half_prior)))


def squeeze(variances: np.ndarray, df: np.ndarray, prior: Prior,
            most_df: float) -> tuple[np.ndarray, np.ndarray]:
    """Each variance moderated toward the prior, and its degrees of freedom: ``prior.df +
    df``, at most ``most_df`` (the residual degrees of freedom of the whole study: pooling
    cannot know the common spread better than all the data together do)."""
    if math.isinf(prior.df):
        moderated = np.full(variances.shape, prior.variance)
    else:
        moderated = (prior.df * prior.variance + df * variances) / (prior.df + df)
    return moderated, np.minimum(prior.df + df, np.maximum(most_df, df))
