"""Statistics of a grid study: one summary per grid point, and the paired test between two.

Replicate r of every grid point is trained with the same seed (initial weights, batch order),
so points are compared with a paired t-test on their per-replicate differences: the
seed-to-seed variation that all points share cancels in the differences, and with 3-10
replicates a t-test on those differences is the standard small-sample choice. Validation
accuracy decides everything; test accuracy is carried along and reported, never used to rank.

    summaries = statistics.summarise(points)
    print("\\n".join(search.results.verdict.judge(summaries).lines))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from search.study.points import format_params

ALPHA = 0.05
POWER = 0.80
TEST_NAME = "paired t-test (two-sided, 5 %), paired by replicate seed"
# Below a tenth of a percentage point, or beyond this many replicates, a difference is
# reported as too small to matter rather than as work worth scheduling.
PRACTICAL_DIFFERENCE = 0.001
MAX_USEFUL_REPLICATES = 100
# a - b rounds (0.98 - 0.97 != 0.99 - 0.98), so "equal differences" allows this much.
_ROUNDING = 1e-12


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and tuples turned into plain JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
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
    """Mean, sample std and 95 % t-interval of one point's validation accuracies."""

    params: dict[str, Any]
    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None
    test_mean: float | None
    validation: dict[int, float]

    def to_json(self) -> dict[str, Any]:
        return {"params": _plain(self.params), "n": self.n, "mean": self.mean, "std": self.std,
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
        half = float(scipy.stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
        ci95 = (mean - half, mean + half)
    test_mean = float(np.mean(list(point.test.values()))) if point.test else None
    return PointSummary(dict(point.params), len(values), mean, std, ci95, test_mean, validation)


def summarise(points: Sequence[PointResult]) -> list[PointSummary]:
    """One summary per point, best mean validation accuracy first, points without results last."""
    summaries = [_summary(point) for point in points]
    # sorted() is stable: equal means, and points without results, keep their input order.
    return sorted(summaries, key=lambda s: (0, -s.mean) if s.mean is not None else (1, 0.0))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The best point against one other point, paired by replicate."""

    params: dict[str, Any]
    shared: int
    difference: float | None
    p_value: float | None
    distinguishable: bool


def compare_paired(best: dict[int, float], other: dict[int, float], params: dict[str, Any],
             alpha: float) -> Comparison:
    """Two-sided paired t-test (a one-sample test of the differences against 0)."""
    differences = np.array([best[r] - other[r] for r in sorted(best.keys() & other.keys())])
    mean = float(differences.mean()) if len(differences) else None
    p_value = None
    if len(differences) >= 2 and np.ptp(differences) > _ROUNDING:
        p_value = float(scipy.stats.ttest_1samp(differences, 0.0).pvalue)
    if len(differences) >= 2 and (p_value is None or not math.isfinite(p_value)):
        # No spread (scipy would answer NaN or warn): equal scores cannot be told apart, and
        # a gap that every replicate repeats exactly always can.
        p_value = 1.0 if abs(mean) <= _ROUNDING else 0.0
    return Comparison(params, len(differences), mean, p_value,
                      p_value is not None and p_value < alpha)


def replicates_for_power(effect: float, alpha: float) -> int:
    """Replicates a two-sided paired t-test at ``alpha`` needs for POWER at this effect size
    (|mean| / std of the differences)."""
    normal = scipy.stats.norm.ppf(1 - alpha / 2) + scipy.stats.norm.ppf(POWER)
    needed = max(2, math.ceil((normal / effect) ** 2))
    # The normal approximation undercounts at small n; t quantiles with n - 1 degrees of
    # freedom correct it, and as they shrink with n the first n that suffices is the answer.
    while needed < 1000:
        quantiles = scipy.stats.t.ppf([1 - alpha / 2, POWER], needed - 1)
        if (quantiles.sum() / effect) ** 2 <= needed:
            break
        needed += 1
    return needed


def replicates_needed(best: PointSummary, runner_up: PointSummary,
                       alpha: float) -> tuple[int | None, str]:
    shared = sorted(best.validation.keys() & runner_up.validation.keys())
    differences = [best.validation[r] - runner_up.validation[r] for r in shared]
    mean, names = float(np.mean(differences)), (format_params(best.params),
                                                 format_params(runner_up.params))
    if abs(mean) <= _ROUNDING:
        return None, (f"{names[0]} and {names[1]} cannot be told apart: the observed "
                      "difference is zero, so more replicates are not expected to separate them")
    spread = float(np.std(differences, ddof=1))
    needed = replicates_for_power(abs(mean) / spread, alpha)
    if abs(mean) < PRACTICAL_DIFFERENCE or needed > MAX_USEFUL_REPLICATES:
        return needed, (f"the difference between {names[0]} and {names[1]} ({mean * 100:+.2f} "
                        "percentage points) is too small to matter in practice: it would take "
                        f"about {needed} replicates to resolve it")
    return needed, (f"telling {names[0]} from {names[1]} apart would take about {needed} "
                    f"replicates (observed difference {mean * 100:+.2f} pp, spread "
                    f"{spread * 100:.2f} pp)")
