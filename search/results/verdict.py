"""The verdict on a study: the best grid point by seed-adjusted mean, which points can and
cannot be ruled out as best (Hsu's multiple comparison with the best,
``search.results.multiple``), each hyperparameter's effect (``search.results.marginals``),
the smallest difference the study could see, and the replicates that would show smaller
ones. Built from ``search.results.statistics`` summaries alone; works in either direction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.results import multiple, wording
from search.results.marginals import Marginal, marginals
from search.results.statistics import (
    ALPHA,
    PointSummary,
    is_proportion,
    plain,
    scores,
    stated_differences,
)


@dataclasses.dataclass(frozen=True)
class Standing:
    """One point's place: its seed-adjusted mean and Hsu's interval for how much better it
    is than the best of the others (objective units, positive = better; None = unbounded).
    ``bound`` is the most it can beat ``decided_by`` by: below 0, it is ruled out."""

    params: dict[str, Any]
    n: int
    mean: float
    interval: tuple[float | None, float | None]
    decided_by: dict[str, Any] | None
    bound: float | None
    ruled_out: bool

    def to_json(self) -> dict[str, Any]:
        return {"params": plain(self.params), "n": self.n, "mean": self.mean,
                "interval": list(self.interval),
                "decided_by": plain(self.decided_by), "bound": self.bound}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The best point, the contenders and the ruled out (every point with a result is in
    exactly one list, best first), the marginals, and what more replicates would buy."""

    best: PointSummary | None
    contenders: list[Standing]
    ruled_out: list[Standing]
    marginals: list[Marginal]
    replicates: int
    method: str
    detectable_difference: float | None
    replicates_needed: dict[str, int | None]
    lines: list[str]
    alpha: float = ALPHA
    maximize: bool = True
    metric: str | None = None

    def to_json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {"params": plain(self.best.params), "n": self.best.n,
                    "mean": self.best.adjusted_mean, "raw_mean": self.best.mean,
                    "std": self.best.std}
        return {"best": best, "contenders": [entry.to_json() for entry in self.contenders],
                "ruled_out": [entry.to_json() for entry in self.ruled_out],
                "method": self.method, "alpha": self.alpha,
                "direction": "maximize" if self.maximize else "minimize",
                "metric": self.metric, "replicates": self.replicates,
                "detectable_difference": self.detectable_difference,
                "replicates_needed": dict(self.replicates_needed),
                "marginals": [dataclasses.asdict(marginal) for marginal in self.marginals],
                "lines": list(self.lines)}


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _standings(completed: list[PointSummary], standing: multiple.Standing,
               sign: int) -> list[Standing]:
    """Every completed point's Standing, best seed-adjusted mean first."""
    found = []
    for index in np.argsort(-standing.means, kind="stable"):
        rival = int(standing.decided_by[index])
        summary = completed[index]
        found.append(Standing(
            dict(summary.params), summary.n, float(sign * standing.means[index]),
            (_number(standing.lower[index]), _number(standing.upper[index])),
            dict(completed[rival].params) if rival >= 0 else None,
            _number(standing.bound[index]) if rival >= 0 else None,
            bool(standing.ruled_out[index])))
    return found


def _ranges(completed: list[PointSummary]) -> dict[str, tuple[float, float]]:
    return {wording.format_params(s.params): (min(s.validation.values()),
                                              max(s.validation.values())) for s in completed}


def _needed(standing: multiple.Standing, groups: int, proportion: bool,
            alpha: float) -> dict[str, int | None]:
    sigma, prior = standing.pairs.sigma, standing.pairs.prior
    if sigma is None or prior is None or groups < 2:
        return {}
    return {wording.difference_key(difference, proportion):
            multiple.replicates_needed(difference, sigma, groups, alpha, prior.df)
            for difference in stated_differences(proportion, sigma)}


def judge(summaries: Sequence[PointSummary], alpha: float = ALPHA, maximize: bool = True,
          metric: str | None = None, levels: bool = True) -> Verdict:
    """The verdict on ``summaries`` (from ``statistics.summarise`` with the same
    ``maximize``); ``metric`` names the objective in the lines (None: "objective").
    ``levels``: judge each hyperparameter's levels too (a grid's; sampled configurations
    share no levels to average over)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    completed = [summary for summary in summaries if summary.n > 0]
    label = wording.label(metric)
    if not completed:
        return Verdict(None, [], [], [], 0, "", None, {}, [
            "no completed trials yet: nothing to rank", wording.TEST_LINE], alpha, maximize,
            metric)
    values = scores([summary.validation for summary in completed], maximize)
    standing = multiple.with_best(values, alpha)
    entries = _standings(completed, standing, 1 if maximize else -1)
    best = next(s for s in completed if s.params == entries[0].params)
    replicates = max(summary.n for summary in completed)
    proportion = is_proportion(metric, [v for s in completed for v in s.validation.values()])
    needed = _needed(standing, len(completed), proportion, alpha)
    found = marginals(completed, alpha, maximize, replicates,
                      [e.params for e in entries if not e.ruled_out]) if levels else []
    method = wording.method(standing, alpha)
    lines = [wording.best_line(best, label, maximize),
             *wording.standing_lines(entries, standing, proportion, replicates, method,
                                     maximize, _ranges(completed)),
             *(marginal.sentence for marginal in found),
             *wording.power_lines(standing, needed, proportion, alpha, len(completed)),
             wording.TEST_LINE]
    return Verdict(best, [e for e in entries if not e.ruled_out],
                   [e for e in entries if e.ruled_out], found, replicates, method,
                   standing.detectable, needed, lines, alpha, maximize, metric)

