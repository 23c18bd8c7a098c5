"""How the verdict says what it found: names, units and its lines, in one place, so that the
report, the table, the figure and the dashboard note use the same words.

The words follow the method: a point *cannot be ruled out as best*, or is *ruled out*; never
"tied" (failing to separate two points is not evidence that they are equal).
"""

from __future__ import annotations

import numpy as np

from search.results import multiple
from search.results.statistics import POWER, SPREAD_MULTIPLES, PointSummary
from search.study.points import format_params

CONTENDER = "cannot be ruled out as best"
RULED_OUT = "ruled out"
TEST_LINE = "the test set chose nothing: test values are reported, never used to rank"
NO_NOISE = (
    "no noise estimate: every point was trained once, so differences between points may be "
    "seed noise and nothing is ruled out; to get one, set repeats = 3 (or more) in the "
    "study's [training] section, or pass --repeats 3, and run the same command again: only "
    "the new replicates run")
NO_PAIR = ("no pair of points has a noise estimate yet (fewer than 2 shared replicates, or "
           "differences without any spread): nothing is ruled out")
BELOW_RULED_OUT = (
    "a contender can rank below a ruled-out point: its differences to the points above it "
    "vary more from seed to seed, so the same gap is not yet evidence against it")
DASHBOARD_LINE = (
    "**The verdict is here** (per point, in the study's user attribute `verdict`): the "
    "dashboard's Best Trial and Hyperparameter Importance panels read single trials, one "
    "seed each, not points compared over their replicates.")
TWO_REPLICATES = (
    "with 2 replicates each pair's own spread rests on 1 degree of freedom, so the verdict "
    "leans on the study's common spread and cannot yet tell a steadier point from a noisier "
    "one; 3 or more replicates (--repeats 3) give each pair more of its own")


def label(metric: str | None) -> str:
    """``val_accuracy`` -> "validation accuracy"; None -> "objective"."""
    if metric is None:
        return "objective"
    name = f"validation {metric[4:]}" if metric.startswith("val_") else metric
    return name.replace("_", " ")


def number(value: float) -> str:
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.3g}"


def amount(difference: float, proportion: bool) -> str:
    """A difference as the verdict states it: percentage points for a proportion."""
    return f"{difference * 100:.2f} pp" if proportion else f"{difference:.3g}"


def difference_key(difference: float, proportion: bool) -> str:
    """The JSON key of a stated difference (objective units)."""
    return f"{difference:g}" if proportion else f"{difference:.4g}"


def method(standing: multiple.Standing, alpha: float) -> str:
    return (f"Hsu's multiple comparison with the best at family-wise {alpha * 100:g} %, on "
            f"seed-adjusted means; noise: {standing.pairs.method}")


def best_line(best: PointSummary, name: str, maximize: bool) -> str:
    spread = f" ± {number(best.std)} (std, n={best.n}" if best.std is not None else \
        f" (n={best.n}"
    direction = "" if maximize else "; lower is better"
    return (f"best: {format_params(best.params)} seed-adjusted mean {name} "
            f"{number(best.adjusted_mean)}{spread}{direction})")


def _contender(entry, best_mean: float, detectable: float | None, sign: int,
               ranges: dict[str, tuple[float, float]]) -> str:
    """A contender as the verdict names it; one further behind the best than the study
    usually detects says why it stays: its replicates' range."""
    text = f"{format_params(entry.params)} ({number(entry.mean)})"
    low_high = ranges.get(format_params(entry.params))
    if detectable is not None and low_high and (best_mean - entry.mean) * sign > detectable:
        text = (f"{text[:-1]}; its replicates range from {number(low_high[0])} to "
                f"{number(low_high[1])}, too widely to rule it out)")
    return text


def standing_lines(entries: list, standing: multiple.Standing, proportion: bool,
                   replicates: int, method_text: str, maximize: bool = True,
                   ranges: dict[str, tuple[float, float]] | None = None) -> list[str]:
    """Which points cannot be ruled out as best, which are ruled out and by what margin.
    ``ranges``: each point's (lowest, highest) replicate, by its formatted params."""
    pairs, sign = standing.pairs, 1 if maximize else -1
    if not np.isfinite(pairs.se).any():
        return [NO_NOISE if replicates <= 1 else NO_PAIR] if len(entries) > 1 else []
    contenders = [entry for entry in entries if not entry.ruled_out]
    ruled = [entry for entry in entries if entry.ruled_out]
    lines = [f"method: {method_text}", f"{CONTENDER}: " + "; ".join(
        _contender(entry, entries[0].mean, standing.detectable, sign, ranges or {})
        for entry in contenders)]
    if ruled:
        lines.append(f"{RULED_OUT} as best: " + "; ".join(
            f"{format_params(entry.params)} ({number(entry.mean)}, at least "
            f"{amount(-entry.bound, proportion)} worse than "
            f"{format_params(entry.decided_by)})" for entry in ruled))
    if ruled and min(entry.mean * sign for entry in contenders) < max(
            entry.mean * sign for entry in ruled):
        lines.append(BELOW_RULED_OUT)
    unjudged = [entry for entry in contenders if entry.interval[1] is None]
    if unjudged:
        lines.append("too few replicates shared with the others to judge yet (kept as "
                     "contenders): " + "; ".join(format_params(e.params) for e in unjudged))
    usable = np.isfinite(pairs.se)
    if usable.any() and replicates == 2:  # each pair's own spread: 1 degree of freedom
        lines.append(TWO_REPLICATES)
    return lines


def _priced(difference: float, proportion: bool, sigma: float) -> str:
    if proportion:
        return f"{difference * 100:g} pp"
    multiple_of = difference / sigma
    shown = next((m for m in SPREAD_MULTIPLES if abs(m - multiple_of) < 1e-3), multiple_of)
    return f"{shown:g}x spread ({difference:.3g})"


def power_lines(standing: multiple.Standing, needed: dict[str, int | None], proportion: bool,
                alpha: float, groups: int) -> list[str]:
    """What the study could detect, and the replicates smaller differences would take."""
    lines = []
    if standing.detectable is not None:
        lines.append(f"smallest gap to the best this study detects with {POWER * 100:g} % power: "
                     f"about {amount(standing.detectable, proportion)}; smaller ones may "
                     "exist unseen")
    sigma = standing.pairs.sigma
    if needed and sigma is not None:
        counts = [f"{_priced(float(key), proportion, sigma)}: "
                  f"{'more than ' + str(multiple.MAX_REPLICATES) if count is None else count}"
                  for key, count in needed.items()]
        lines.append(f"replicates per point to detect a point this much worse than the best, with "
                     f"{POWER * 100:g} % power (the same method over {groups} points at "
                     f"{alpha * 100:g} %; one run's spread after seed effects, the study's "
                     f"common one: {amount(sigma, proportion)}): " + "; ".join(counts))
    return lines
