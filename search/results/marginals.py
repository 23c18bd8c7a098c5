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


def _sentence(name: str, levels: list[str], beaten_by: dict[str, str], noise: bool,
              replicates: int, averaged: list[str], elsewhere: list[str],
              best_level: str | None = None) -> str:
    """What the levels' comparison found, saying what each level averages over; a level
    is never called best: a single point with another level may still be a contender.
    ``beaten_by``: each ruled-out level -> the level that beats it; ``best_level``: the best
    point's level (named when it is a beaten one, lest the two lines seem to disagree)."""
    contenders = [level for level in levels if level not in beaten_by]
    over = f"averaged over {_join(averaged)}, " if averaged else ""
    if not noise:
        return f"{over}{name}: {_join(levels)} not compared (no noise estimate)"
    if not beaten_by:
        return (f"{over}{name}: {_join(levels)} cannot be told apart at {replicates} "
                "replicates")
    rivals: dict[str, list[str]] = {}
    for level, rival in beaten_by.items():
        rivals.setdefault(rival, []).append(level)
    claims = "; ".join(f"{rival} beats {_join(beaten)}" for rival, beaten in rivals.items())
    sentence = f"{over}{name} {claims}"
    if len(contenders) > 1:
        sentence += f"; {_join(contenders)} cannot be told apart"
    if elsewhere:
        among = ", the best point among them," if best_level in elsewhere else ""
        sentence += (f" (single points with {name} {_join(elsewhere)}{among} still cannot be "
                     "ruled out as best)")
    return sentence


def _settled_one_by_one(name: str, levels: list[str], ruled_out: list[str],
                        contenders: Sequence[dict[str, Any]], noise: bool) -> str:
    """A level the levels' comparison keeps although every point with it is ruled out as
    best: said, so "cannot be told apart" and "ruled out" do not seem to disagree."""
    if not contenders or not noise:
        return ""
    held = {format_value(point.get(name)) for point in contenders}
    kept = [text for text in levels if text not in ruled_out]
    settled = [text for text in kept if text not in held]
    if not settled or len(kept) < 2:  # a sole kept level beats the others: nothing to square
        return ""
    them = "it" if len(settled) == 1 else "them"
    return (f" (every point with {name} {_join(settled)} is ruled out as best; averaged, "
            f"the stricter comparison of levels does not yet separate {them})")


def marginal(name: str, completed: Sequence[PointSummary], alpha: float, maximize: bool,
             replicates: int, contenders: Sequence[dict[str, Any]] = (),
             averaged: Sequence[str] = ()) -> Marginal | None:
    """The hyperparameter's marginal claims, or None when it has fewer than 2 levels.
    ``contenders``: the points that cannot be ruled out as best, the best first (their
    levels are named when the levels' comparison rules them out); ``averaged``: the other
    hyperparameters that vary."""
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
    elsewhere = [text for text in ruled_out
                 if any(format_value(point.get(name)) == text for point in contenders)]
    beaten_by = {text: levels[int(standing.decided_by[index])]
                 for index, text in enumerate(levels) if standing.ruled_out[index]}
    best_level = format_value(contenders[0].get(name)) if contenders else None
    sentence = _sentence(name, levels, beaten_by, noise, replicates, list(averaged),
                         elsewhere, best_level)
    sentence += _settled_one_by_one(name, levels, ruled_out, contenders, noise)
    waiting = [text for text in groups if text not in levels]
    if waiting:  # no seed is complete at all of its points yet
        sentence += f"; {_join(waiting)} not comparable yet"
    return Marginal(name, means, best, [text for text in levels if text not in ruled_out],
                    ruled_out, sentence)


def marginals(completed: Sequence[PointSummary], alpha: float, maximize: bool,
              replicates: int, contenders: Sequence[dict[str, Any]] = ()) -> list[Marginal]:
    """Every varying hyperparameter's marginal, ``alpha`` split evenly between them."""
    names = dict.fromkeys(name for summary in completed for name in summary.params)
    varying = [name for name in names if len(_levels(name, completed)) > 1]
    found = [marginal(name, completed, alpha / max(len(varying), 1), maximize, replicates,
                      contenders, [other for other in varying if other != name])
             for name in varying]
    return [item for item in found if item is not None]
