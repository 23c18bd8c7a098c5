"""What a study can rule out, corrected for the number of comparisons, and the power of it.

- ``with_best``: Hsu's multiple comparison with the best (MCB). Group i is *ruled out* when
  some other group's mean exceeds i's by more than the critical value times their standard
  error: then, at family-wise ``alpha``, i is not the best. The truly best group is ruled
  out at most ``alpha`` of the time, however many groups there are and whichever looks best.
  Each pair's spread is moderated toward the study's common one by empirical Bayes
  (``search.results.comparison``); the critical value is ``multiplier``'s.
- ``all_pairs``: a group is ruled out only when another beats it on their shared seeds by
  more than a Bonferroni margin over all pairs (each pair with its own spread: choosing
  between pooled and per-pair noise from the same data pushed these claims' error from 5 %
  to 7 %). Stricter than MCB: it controls every claim "a is worse than b", so no level as
  good as the best is ruled out more than ``alpha`` of the time, however many are equally
  good.
- ``replicates_needed``: replicates per point for 80 % power to rule out a point that is
  worse than the best by a stated difference, with a given per-run spread, by the same
  moderated MCB.

Values are groups x seeds arrays of scores, higher is better, NaN where not run.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from search.results import comparison, critical
from search.results.comparison import Pairs

ALPHA = 0.05
POWER = 0.80
MAX_REPLICATES = 1000


@dataclasses.dataclass(frozen=True)
class Standing:
    """Each group's fate. ``lower``/``upper`` bound how much better it is than the best of
    the others (MCB) or than its strongest rival (all pairs); NaN where nothing bounds it."""

    means: np.ndarray
    ruled_out: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    decided_by: np.ndarray  # the group whose comparison set the upper bound; -1: none
    bound: np.ndarray  # the most each can beat decided_by by (unclipped; < 0: ruled out)
    pairs: Pairs
    critical: np.ndarray  # per pair, the multiplier of its standard error
    detectable: float | None  # the difference to the best found with 80 % power


def multiplier(groups: int, rho: float, df: float, prior_df: float, own_df: float,
               alpha: float) -> float:
    """MCB's multiplier of a moderated standard error, for one group's k - 1 comparisons.

    They share the group's own noise (correlation ``rho``). Their spreads share the prior's
    part (weight w = prior df / (prior df + own df)) and keep their own part apart: all
    shared gives Dunnett's one-sided value on ``df`` degrees of freedom, none shared
    Sidak's (valid for positively dependent comparisons with their own denominators). The
    multiplier is w * Dunnett + (1 - w) * Sidak: with equal spreads (an infinite prior)
    exactly Hsu's pooled MCB.
    """
    shared = critical.dunnett(groups - 1, rho, df, alpha)
    if math.isinf(prior_df):
        return shared
    apart = critical.t_quantile((1 - alpha) ** (1 / (groups - 1)), critical.ladder_df(df))
    weight = prior_df / (prior_df + max(own_df, 0.0))
    return weight * shared + (1 - weight) * apart


def _critical(pairs: Pairs, groups: int, alpha: float, best: bool) -> np.ndarray:
    """Per pair (i, j), the multiplier of its standard error: row i's ``multiplier`` at its
    smallest correlation and fewest degrees of freedom (MCB, moderated spreads), else a
    Bonferroni share of alpha for each pair's own t distribution."""
    comparisons = groups - 1 if best else groups * (groups - 1)  # all pairs: both tails
    if not best or pairs.prior is None:
        return critical.bonferroni(pairs.df, alpha / comparisons)
    values = np.full(pairs.se.shape, np.nan)
    prior_df = pairs.prior.df
    own = pairs.df - prior_df if math.isfinite(prior_df) else np.zeros_like(pairs.df)
    for row in range(groups):
        known = np.isfinite(pairs.se[row])
        if known.any():
            values[row] = multiplier(groups, float(pairs.rho[row]),
                                     float(pairs.df[row][known].min()), prior_df,
                                     float(own[row][known].max()), alpha)
    return values


def _bounds(pairs: Pairs, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the bounds of i's advantage over j (infinite where nothing bounds it)."""
    known = np.isfinite(pairs.se) & np.isfinite(values)
    margin = np.where(known, values * np.where(known, pairs.se, 0), np.inf)
    lower = np.where(known, pairs.advantage - margin, -np.inf)
    upper = np.where(known, pairs.advantage + margin, np.inf)
    np.fill_diagonal(lower, -np.inf)
    np.fill_diagonal(upper, np.inf)
    return lower, upper


def _detectable(pairs: Pairs, multipliers: np.ndarray, best: int) -> float | None:
    """The median over the best's comparisons of (critical + t at 80 %) x standard error."""
    known = np.isfinite(pairs.se[best]) & np.isfinite(multipliers[best])
    if not known.any():
        return None
    power = critical.t_quantiles(POWER, pairs.df[best][known])
    return float(np.median((multipliers[best][known] + power) * pairs.se[best][known]))


def with_best(values: np.ndarray, alpha: float = ALPHA) -> Standing:
    """Hsu's constrained MCB intervals (Hsu 1996, ch. 4) and the groups they rule out."""
    pairs = comparison.estimate(values)
    groups = values.shape[0]
    multipliers = _critical(pairs, groups, alpha, best=True) if groups > 1 else np.ones((1, 1))
    lower_pair, upper_pair = _bounds(pairs, multipliers)
    upper = upper_pair.min(axis=1)
    ruled_out = upper < 0  # some group beats this one by more than the margin
    decided_by = np.where(np.isfinite(upper), upper_pair.argmin(axis=1), -1)
    contenders = ~ruled_out
    lower = np.empty(groups)
    for i in range(groups):
        rivals = contenders & (np.arange(groups) != i)
        lower[i] = min(0.0, lower_pair[i, rivals].min()) if rivals.any() else 0.0
    bound = np.where(np.isfinite(upper), upper, np.nan)
    upper = np.where(np.isfinite(upper), np.maximum(upper, 0.0), np.nan)
    lower = np.where(np.isfinite(lower), lower, np.nan)
    best = int(np.argmax(pairs.means))
    return Standing(pairs.means, ruled_out, lower, upper, decided_by, bound, pairs,
                    multipliers, _detectable(pairs, multipliers, best) if groups > 1 else None)


def all_pairs(values: np.ndarray, alpha: float = ALPHA) -> Standing:
    """Rule a group out only when a rival beats it by the all-pairs margin."""
    pairs = comparison.estimate(values, moderate=False)
    groups = values.shape[0]
    multipliers = _critical(pairs, groups, alpha, best=False)
    lower_pair, upper_pair = _bounds(pairs, multipliers)
    rival = lower_pair.argmax(axis=0)  # [j, i] bounds j's advantage over i from below
    evidence = lower_pair[rival, np.arange(groups)]
    ruled_out = evidence > 0
    index = np.arange(groups)
    lower = lower_pair[index, rival]
    upper = upper_pair[index, rival]
    found = np.isfinite(evidence)
    best = int(np.argmax(pairs.means))
    upper = np.where(found, upper, np.nan)
    return Standing(pairs.means, ruled_out, np.where(found, lower, np.nan), upper,
                    np.where(found, rival, -1), upper, pairs, multipliers,
                    _detectable(pairs, multipliers, best))


def replicates_needed(difference: float, sigma: float, groups: int, alpha: float = ALPHA,
                      prior_df: float = math.inf) -> int | None:
    """Replicates per point for POWER to rule out a point ``difference`` below the best by
    the verdict's own method: MCB over ``groups`` points with moderated spreads (per-run
    spread ``sigma``, the prior worth ``prior_df`` degrees of freedom, at most the study's
    residual degrees of freedom). None beyond MAX_REPLICATES."""
    if groups < 2 or not difference > 0 or not sigma > 0:
        raise ValueError(f"need groups >= 2 and positive difference and sigma, got {groups}, "
                         f"{difference}, {sigma}")

    def enough(replicates: int) -> bool:
        own = replicates - 1
        df = max(min(prior_df + own, (groups - 1) * own), 1)
        needed = (multiplier(groups, 0.5, df, prior_df, own, alpha)
                  + critical.t_quantile(POWER, critical.ladder_df(df)))
        return needed * sigma * math.sqrt(2 / replicates) <= difference

    if not enough(MAX_REPLICATES):
        return None
    low, high = 1, MAX_REPLICATES  # enough(high) holds; the answer is above low
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
