"""Each hyperparameter's effect, every level averaged over the other hyperparameters.

A level's value at seed r is the mean of its points at r, taken only where every one of
its points has replicate r, so each average is over the same points. The levels are then
compared (``search.results.multiple.all_pairs``): a level is ruled out only when another
beats it on their shared seeds by more than the Bonferroni margin for all pairs of levels,
at ``alpha`` shared over the hyperparameters that vary. So no level as good as the best is
called out more than 5 % of the time in a study, however many levels are equally good.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.results import multiple
from search.results.statistics import PointSummary, scores
from search.study.points import format_value


@dataclasses.dataclass(frozen=True)
class Marginal:
    """One hyperparameter: its levels' seed-adjusted means and which are ruled out."""

    name: str
    means: dict[str, float]
    best: str
    contenders: list[str]
    ruled_out: list[str]
    sentence: str


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _levels(name: str, completed: Sequence[PointSummary]) -> dict[str, list[PointSummary]]:
    """The value's text -> its points, in the values' natural order where they have one."""
    groups: dict[str, list[PointSummary]] = {}
    raw: dict[str, Any] = {}
    for summary in completed:
        if name in summary.params:
            text = format_value(summary.params[name])
            groups.setdefault(text, []).append(summary)
            raw.setdefault(text, summary.params[name])
    try:
        order = sorted(groups, key=lambda text: raw[text])
    except TypeError:  # values of mixed types: keep the order they first appear in
        order = list(groups)
    return {text: groups[text] for text in order}


def _series(group: list[PointSummary]) -> dict[int, float]:
    complete = set.intersection(*(set(summary.validation) for summary in group))
    return {r: float(np.mean([s.validation[r] for s in group])) for r in sorted(complete)}


def _sentence(name: str, levels: list[str], best: str, ruled_out: list[str],
              noise: bool, replicates: int) -> str:
    contenders = [level for level in levels if level not in ruled_out]
    if not noise:
        return f"{name} {best} has the highest mean (no noise estimate: nothing ruled out)"
    if len(contenders) == 1:
        return f"{name} {best} is clearly best ({_join(ruled_out)} ruled out)"
    if ruled_out:
        return (f"{name}: {_join(contenders)} cannot be ruled out as best; "
                f"{_join(ruled_out)} ruled out")
    return f"{name}: none of {_join(levels)} can be ruled out as best at {replicates} replicates"


def marginal(name: str, completed: Sequence[PointSummary], alpha: float, maximize: bool,
             replicates: int) -> Marginal | None:
    """The hyperparameter's marginal claims, or None when it has fewer than 2 levels."""
    groups = _levels(name, completed)
    series = {text: _series(group) for text, group in groups.items()}
    levels = [text for text in groups if series[text]]  # a level needs one complete seed
    if len(groups) < 2 or len(levels) < 2:
        return None
    standing = multiple.all_pairs(scores([series[text] for text in levels], maximize), alpha)
    sign = 1 if maximize else -1
    means = {text: float(sign * mean) for text, mean in zip(levels, standing.means,
                                                             strict=True)}
    best = levels[int(np.argmax(standing.means))]
    ruled_out = [text for text, out in zip(levels, standing.ruled_out, strict=True) if out]
    noise = bool(np.isfinite(standing.pairs.se).any())
    contenders = [text for text in levels if text not in ruled_out]
    sentence = _sentence(name, levels, best, ruled_out, noise, replicates)
    waiting = [text for text in groups if text not in levels]
    if waiting:  # no seed is complete at all of its points yet
        sentence += f"; {_join(waiting)} not comparable yet"
    return Marginal(name, means, best, contenders, ruled_out, sentence)


def marginals(completed: Sequence[PointSummary], alpha: float, maximize: bool,
              replicates: int) -> list[Marginal]:
    """Every varying hyperparameter's marginal, ``alpha`` split evenly between them."""
    names = dict.fromkeys(name for summary in completed for name in summary.params)
    varying = [name for name in names if len(_levels(name, completed)) > 1]
    found = [marginal(name, completed, alpha / max(len(varying), 1), maximize, replicates)
             for name in varying]
    return [item for item in found if item is not None]
