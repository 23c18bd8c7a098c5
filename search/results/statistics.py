"""Statistics of a grid study: one summary per grid point, on seed-adjusted means.

Replicate r of every grid point is trained with the same seed (initial weights, batch
order), so what a seed does to every point is estimated and taken out: a point's
*seed-adjusted mean* is its mean at the average seed (``search.results.comparison``), the
plain mean when every replicate is done. The objective decides everything (validation
accuracy, or whatever the study optimises, in its direction); test accuracy is carried along
and reported, never used to rank.

    summaries = statistics.summarise(points, maximize=True)
    print("\\n".join(search.results.verdict.judge(summaries).lines))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.results import comparison, critical
from search.results.multiple import ALPHA, POWER
from search.study.points import format_params

__all__ = ["ALPHA", "POWER", "PointResult", "PointSummary", "is_proportion", "plain", "scores",
           "stated_differences", "summarise"]

# A metric is a proportion (stated differences in percentage points) when its name says so
# and every value lies in [0, 1]; anything else gets differences in units of its spread.
PROPORTION_WORDS = ("accuracy", "auc", "precision", "recall", "f1")
PROPORTION_DIFFERENCES = (0.001, 0.002, 0.005)  # 0.1, 0.2 and 0.5 percentage points
SPREAD_MULTIPLES = (0.5, 1.0, 2.0)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and tuples turned into plain JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class PointResult:
    """One grid point's completed replicates: replicate index -> accuracy."""

    params: dict[str, Any]
    validation: dict[int, float]
    test: dict[int, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, values in (("validation", self.validation), ("test", self.test)):
            for replicate, accuracy in values.items():
                if (not isinstance(replicate, int | np.integer) or replicate < 0
                        or not isinstance(accuracy, int | float) or not math.isfinite(accuracy)):
                    raise ValueError(f"{format_params(self.params)}: {kind} {replicate!r}: "
                                     f"{accuracy!r} is not a replicate index (an integer from 0)"
                                     " mapped to a finite accuracy")


@dataclasses.dataclass(frozen=True)
class PointSummary:
    """Mean, sample std and 95 % t-interval of one point's validation values, and its
    seed-adjusted mean (which ranks it)."""

    params: dict[str, Any]
    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None
    test_mean: float | None
    validation: dict[int, float]
    adjusted_mean: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"params": plain(self.params), "n": self.n, "mean": self.mean,
                "seed_adjusted_mean": self.adjusted_mean, "std": self.std,
                "ci95": list(self.ci95) if self.ci95 is not None else None,
                "test_mean": self.test_mean,
                "validation": {str(r): accuracy for r, accuracy in self.validation.items()}}


def _summary(point: PointResult) -> PointSummary:
    validation = {int(r): float(point.validation[r]) for r in sorted(point.validation)}
    values = list(validation.values())
    mean = float(np.mean(values)) if values else None
    std = ci95 = None
    if len(values) >= 2:
        std = float(np.std(values, ddof=1))
        half = critical.t_quantile(0.975, len(values) - 1) * std / math.sqrt(len(values))
        ci95 = (mean - half, mean + half)
    test_mean = float(np.mean(list(point.test.values()))) if point.test else None
    return PointSummary(dict(point.params), len(values), mean, std, ci95, test_mean, validation)


def scores(validations: Sequence[dict[int, float]], maximize: bool) -> np.ndarray:
    """Points x seeds (every replicate index any point has), NaN where not run; negated
    for a minimised objective, so that higher is always better."""
    seeds = sorted(set().union(*validations))
    column = {seed: index for index, seed in enumerate(seeds)}
    values = np.full((len(validations), len(seeds)), np.nan)
    for row, validation in enumerate(validations):
        for seed, value in validation.items():
            values[row, column[seed]] = value
    return values if maximize else -values


def summarise(points: Sequence[PointResult], maximize: bool = True,
              metric: str | None = None) -> list[PointSummary]:
    """One summary per point, best seed-adjusted mean first (highest, or lowest when
    minimising), points without results last. The 95 % intervals of a proportion
    (``is_proportion(metric, ...)``) are clipped to [0, 1], the values it can take."""
    summaries = [_summary(point) for point in points]
    if is_proportion(metric, [v for point in points for v in point.validation.values()]):
        summaries = [dataclasses.replace(s, ci95=(max(s.ci95[0], 0.0), min(s.ci95[1], 1.0)))
                     if s.ci95 else s for s in summaries]
    done = [index for index, summary in enumerate(summaries) if summary.n]
    if done:
        values = scores([summaries[index].validation for index in done], maximize)
        model = comparison.fit(values)
        # Without an estimable model (a point sharing no seed with the rest) the plain
        # means are all there is.
        adjusted = model.means if model is not None else np.nanmean(values, axis=1)
        for index, score in zip(done, adjusted, strict=True):
            summaries[index] = dataclasses.replace(
                summaries[index], adjusted_mean=float(score if maximize else -score))
    sign = 1 if maximize else -1
    # sorted() is stable: equal means, and points without results, keep their input order.
    return sorted(summaries, key=lambda s: (0, -sign * s.adjusted_mean)
                  if s.adjusted_mean is not None else (1, 0.0))


def is_proportion(metric: str | None, values: Sequence[float]) -> bool:
    """Whether differences are stated in percentage points: the metric's name contains one
    of PROPORTION_WORDS and every value lies in [0, 1]."""
    named = metric is not None and any(word in metric.lower() for word in PROPORTION_WORDS)
    return named and all(0.0 <= value <= 1.0 for value in values)


def stated_differences(proportion: bool, sigma: float) -> list[float]:
    """The differences the verdict prices in replicates: 0.1, 0.2 and 0.5 percentage points
    for a proportion, else 0.5, 1 and 2 times one run's spread."""
    if proportion:
        return list(PROPORTION_DIFFERENCES)
    return [multiple * sigma for multiple in SPREAD_MULTIPLES]
