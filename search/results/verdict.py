"""The verdict on a study: the best grid point, which points noise cannot separate from it,
each hyperparameter's effect averaged over the others, and how many replicates would tell
the best from the runner-up. Built from ``search.results.statistics`` summaries alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.results.statistics import (
    ALPHA,
    TEST_NAME,
    Comparison,
    PointSummary,
    compare_paired,
    replicates_needed,
)
from search.study.points import format_params, format_value

_NO_NOISE = (
    "the ranking carries no noise estimate: every point was trained once, so differences "
    "between points may be seed noise; to get one, set repeats = 3 (or more) in the study's "
    "[training] section, or pass --repeats 3, and run the same command again: only the new "
    "replicates run")
_TEST_LINE = "the test set chose nothing: test accuracy is reported, never used to rank"

@dataclasses.dataclass(frozen=True)
class Marginal:
    """One hyperparameter's effect, each value averaged over the other hyperparameters."""

    name: str
    means: dict[str, float]
    best: str
    tied_with_best: list[str]
    sentence: str


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _value_series(group: list[PointSummary]) -> tuple[dict[int, float], float]:
    """Per-replicate averages over one value's points, and the value's mean."""
    # Only replicates where every point of the value is complete, so each average is over the
    # same points and a missing replicate cannot shift it.
    complete = set.intersection(*(set(summary.validation) for summary in group))
    series = {r: float(np.mean([s.validation[r] for s in group])) for r in sorted(complete)}
    if series:
        return series, float(np.mean(list(series.values())))
    return series, float(np.mean([summary.mean for summary in group]))


def _marginal(name: str, completed: list[PointSummary], alpha: float,
              replicates: int) -> Marginal | None:
    groups: dict[str, list[PointSummary]] = {}
    raw: dict[str, Any] = {}
    for summary in completed:
        if name in summary.params:
            text = format_value(summary.params[name])
            groups.setdefault(text, []).append(summary)
            raw.setdefault(text, summary.params[name])
    if len(groups) < 2:
        return None
    try:
        order = sorted(groups, key=lambda text: raw[text])
    except TypeError:  # values of mixed types: keep the order they first appear in
        order = list(groups)
    series, means = {}, {}
    for text in order:
        series[text], means[text] = _value_series(groups[text])
    best = max(order, key=lambda text: means[text])
    comparisons = {text: compare_paired(series[best], series[text], {}, alpha)
                   for text in order if text != best}
    # Fewer than 2 shared replicates cannot be tested: such a value is neither tied nor
    # beaten, only not comparable yet.
    untested = [text for text, c in comparisons.items() if replicates > 1 and c.shared < 2]
    tied = [text for text, c in comparisons.items()
            if replicates > 1 and c.shared >= 2 and not c.distinguishable]
    if replicates <= 1:
        sentence = f"{name} {best} has the highest mean (no noise estimate at 1 replicate)"
    elif not tied and not untested:
        sentence = f"{name} {best} is clearly best"
    elif len(tied) == len(order) - 1:
        sentence = f"{name} {_join(order)} are indistinguishable at {replicates} replicates"
    elif tied:
        sentence = (f"{name} {best} is best; {_join(tied)} cannot be told apart from it at "
                    f"{replicates} replicates")
    else:
        sentence = f"{name} {best} has the highest mean"
    if untested:
        sentence += f"; {_join(untested)} not comparable yet (fewer than 2 shared replicates)"
    return Marginal(name, means, best, tied, sentence)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Which point is best, which points noise cannot separate from it, and what would."""

    best: PointSummary | None
    comparisons: list[Comparison]
    indistinguishable: list[PointSummary]
    marginals: list[Marginal]
    replicates: int
    replicates_needed: int | None
    lines: list[str]
    alpha: float = ALPHA

    def to_json(self) -> dict[str, Any]:
        def point(summary: PointSummary) -> dict[str, Any]:
            return {key: summary.to_json()[key] for key in ("params", "n", "mean", "std")}

        found = {format_params(c.params): c for c in self.comparisons}
        tied = [point(s) | {"p_value": found[format_params(s.params)].p_value,
                            "difference": found[format_params(s.params)].difference}
                for s in self.indistinguishable]
        return {"best": point(self.best) if self.best is not None else None,
                "indistinguishable": tied, "test": _test_name(self.alpha), "alpha": self.alpha,
                "replicates": self.replicates, "replicates_needed": self.replicates_needed,
                "marginals": [dataclasses.asdict(marginal) for marginal in self.marginals],
                "lines": list(self.lines)}


def _test_name(alpha: float) -> str:
    return TEST_NAME if alpha == ALPHA else TEST_NAME.replace("5 %", f"{alpha * 100:g} %")


def judge(summaries: Sequence[PointSummary], alpha: float = ALPHA) -> Verdict:
    """The best point by mean validation accuracy, tested against every other point."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    completed = [summary for summary in summaries if summary.n > 0]
    if not completed:
        return Verdict(None, [], [], [], 0, None, ["no completed trials yet: nothing to rank",
                                                   _TEST_LINE], alpha)
    replicates = max(summary.n for summary in completed)
    ranked = sorted(completed, key=lambda summary: -summary.mean)  # stable: first of equals
    best = ranked[0]
    others = [summary for summary in completed if summary is not best]
    comparisons = [compare_paired(best.validation, other.validation, other.params, alpha)
                   for other in others]
    pairs = list(zip(others, comparisons, strict=True))
    tied = [(other, comparison) for other, comparison in pairs
            if replicates > 1 and comparison.shared >= 2 and not comparison.distinguishable]
    untested = [other for other, comparison in pairs if replicates > 1 and comparison.shared < 2]
    names = dict.fromkeys(name for summary in completed for name in summary.params)
    marginals = [marginal for name in names
                 if (marginal := _marginal(name, completed, alpha, replicates)) is not None]
    needed, needed_line = None, None
    if len(ranked) > 1:
        runner_up = comparisons[next(i for i, s in enumerate(others) if s is ranked[1])]
        if not runner_up.distinguishable and runner_up.shared >= 2:
            needed, needed_line = replicates_needed(best, ranked[1], alpha)
    lines = [_best_line(best), _noise_line(tied, bool(comparisons), replicates, alpha)]
    if untested:
        lines.append("not comparable with it yet (fewer than 2 replicates shared with it): "
                     + "; ".join(format_params(other.params) for other in untested))
    lines += [marginal.sentence for marginal in marginals]
    lines += [needed_line] if needed_line else []
    return Verdict(best, comparisons, [other for other, _ in tied], marginals, replicates, needed,
                   lines + [_TEST_LINE], alpha)


def _best_line(best: PointSummary) -> str:
    spread = f" ± {best.std:.4f} (std, n={best.n})" if best.std is not None else f" (n={best.n})"
    return f"best: {format_params(best.params)} mean validation accuracy {best.mean:.4f}{spread}"


def _noise_line(tied: list[tuple[PointSummary, Comparison]], compared: bool, replicates: int,
                alpha: float) -> str:
    if replicates <= 1:
        return _NO_NOISE
    if not compared:
        return "no other point has completed trials to compare it with"
    if not tied:
        return f"no other point is within noise of it ({_test_name(alpha)})"
    described = [f"{format_params(other.params)} (p={c.p_value:.2f})" for other, c in tied]
    return f"within noise of it ({_test_name(alpha)}): " + "; ".join(described)
