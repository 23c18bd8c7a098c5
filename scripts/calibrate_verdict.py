"""How often the verdict is wrong, measured: simulated studies whose truth is known, fed
through the report's own ``statistics.summarise`` and ``verdict.judge``.

    python scripts/calibrate_verdict.py --studies 2000

Each study has 9 points, learning rate (0.0001, 0.001, 0.01) x batch size (32, 64, 128),
mean validation accuracy 0.97. Each replicate's seed shifts every point by N(0, 0.2 pp);
each run adds its own N(0, 0.2 pp). The cases:

- equal: all nine points equal;
- 0.5 pp effect: learning rate 0.001 better by 0.5 percentage points (its three points);
- unequal spreads: all equal, but the run noise is 0.1, 0.2 and 0.5 pp at batch sizes 32,
  64 and 128 (a steady best point beside noisy equals is the hard case for a pooled spread);
- unequal replicates: the effect, with three points missing one replicate each;
- rising spreads: all equal, the run noise rising from 0.1 to 0.4 pp across the nine points
  (its "best ruled out" is the steadiest point's);
- rounded: the effect, every accuracy rounded to 1/6000 (a 6,000-image validation set).

For 2, 3, 5 and 10 replicates it prints, per case, the share of studies in which:

- best ruled out: a given truly best point, learning_rate=0.001 batch_size=32, is ruled out
  (Hsu's MCB promises at most 5 %; with unequal spreads it is the steadiest point, the one
  a pooled spread would wrong);
- any best ruled out: any of the several truly best points is ruled out (for information:
  MCB makes no promise about that);
- false level claim: some hyperparameter level as good as its best level is ruled out;
- power: the verdict singles out learning rate 0.001 (the only contender among the rates);
- all six ruled out: every point of the other two learning rates is ruled out as best.

A second table checks the replicates the verdict names for a stated difference (0.2 and
0.5 pp, the median over 3-replicate studies of equal points): with that many, how often a
point that much worse than the best is ruled out (80 % is promised, give or take), and how
many replicates it truly takes to reach 80 % (the named count should lie within 1.5 times).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.results import statistics, verdict  # noqa: E402
from search.study.points import format_params  # noqa: E402

RATES, BATCHES, REPLICATES = (0.0001, 0.001, 0.01), (32, 64, 128), (2, 3, 5, 10)
PARAMS = [{"learning_rate": rate, "batch_size": batch} for rate in RATES for batch in BATCHES]
BASE, SEED_SD, RUN_SD, EFFECT = 0.97, 0.002, 0.002, 0.005
GIVEN = 3  # learning_rate=0.001 batch_size=32: truly best in every case


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    effect: bool = False
    run_sd: tuple[float, ...] = (RUN_SD,) * 9
    missing: tuple[int, ...] = ()  # these points each miss one replicate
    rounded: bool = False
    given: int = GIVEN  # the truly best point whose "best ruled out" rate is shown


CASES = (
    Case("equal"),
    Case("0.5 pp effect", effect=True),
    Case("unequal spreads", run_sd=(0.001, 0.002, 0.005) * 3),
    Case("rising spreads", run_sd=tuple(np.linspace(0.001, 0.004, 9)), given=0),
    Case("unequal replicates", effect=True, missing=(2, 4, 6)),
    Case("rounded to 1/6000", effect=True, rounded=True),
)


def simulate(case: Case, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """One study's validation accuracies, points x replicates (NaN: not run)."""
    means = np.full(9, BASE)
    if case.effect:
        means[3:6] += EFFECT  # the three points of learning rate 0.001
    values = (means[:, None] + rng.normal(0, SEED_SD, (1, replicates))
              + rng.normal(0, 1, (9, replicates)) * np.array(case.run_sd)[:, None])
    if case.rounded:
        values = np.round(values * 6000) / 6000
    for point in case.missing:
        values[point, point % replicates] = np.nan
    return values


def judged(values: np.ndarray) -> verdict.Verdict:
    """The verdict on one simulated study, exactly as the report reaches it."""
    results = [statistics.PointResult(params, {r: float(v) for r, v in enumerate(row)
                                               if not np.isnan(v)})
               for params, row in zip(PARAMS, values, strict=True)]
    return verdict.judge(statistics.summarise(results), metric="val_accuracy")


def _level_truth(case: Case) -> dict[str, set[str]]:
    """Each hyperparameter's levels that are truly as good as its best one."""
    return {"learning_rate": {"0.001"} if case.effect else {"0.0001", "0.001", "0.01"},
            "batch_size": {"32", "64", "128"}}


COLUMNS = ("best ruled out", "any best ruled out", "false level claim", "power",
           "all six ruled out")


def calibrate(case: Case, replicates: int, studies: int, seed: int) -> dict[str, float]:
    """The case's rates over ``studies`` simulated studies."""
    rng = np.random.default_rng([seed, CASES.index(case) if case in CASES else 99, replicates])
    best = [3, 4, 5] if case.effect else list(range(9))
    worse = [index for index in range(9) if index not in best]
    names = [format_params(params) for params in PARAMS]
    truth = _level_truth(case)
    counts = dict.fromkeys(COLUMNS, 0)
    for _ in range(studies):
        result = judged(simulate(case, replicates, rng))
        out = {format_params(entry.params) for entry in result.ruled_out}
        hit = np.array([name in out for name in names])
        counts["best ruled out"] += hit[case.given]
        counts["any best ruled out"] += hit[best].any()
        counts["false level claim"] += any(set(m.ruled_out) & truth[m.name]
                                           for m in result.marginals)
        rate = next(m for m in result.marginals if m.name == "learning_rate")
        counts["power"] += rate.contenders == ["0.001"]
        counts["all six ruled out"] += hit[worse].all()
    rates = {key: value / studies for key, value in counts.items()}
    if not case.effect:
        rates["power"] = rates["all six ruled out"] = float("nan")
    return rates


def table(studies: int, seed: int, cases: Sequence[Case] = CASES,
          replicate_counts: Sequence[int] = REPLICATES) -> list[str]:
    """The calibration as Markdown rows, one per case and replicate count."""
    columns = list(COLUMNS)
    lines = ["| case | replicates | " + " | ".join(columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for case in cases:
        for replicates in replicate_counts:
            rates = calibrate(case, replicates, studies, seed)
            shown = ["-" if np.isnan(rates[c]) else f"{rates[c] * 100:.1f} %" for c in columns]
            lines.append(f"| {case.name} | {replicates} | " + " | ".join(shown) + " |")
    return lines


CHECKED = (0.002, 0.005)  # the stated differences whose replicates are checked: 0.2, 0.5 pp


def _one_better(difference: float, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """A study whose first point is better than the eight others by ``difference``."""
    values = simulate(CASES[0], replicates, rng)
    values[0] += difference
    return values


def detected(difference: float, replicates: int, studies: int, seed: int) -> float:
    """The share of the eight worse points ruled out, over ``studies`` studies."""
    rng = np.random.default_rng([seed, 7, replicates])
    names = [format_params(params) for params in PARAMS[1:]]
    found = 0
    for _ in range(studies):
        out = {format_params(e.params) for e in judged(_one_better(difference, replicates,
                                                                   rng)).ruled_out}
        found += sum(name in out for name in names)
    return found / (8 * studies)


def named(difference: float, studies: int, seed: int) -> int:
    """The median of the replicates the verdict names for ``difference`` after 3."""
    rng = np.random.default_rng([seed, 8])
    counts = [judged(simulate(CASES[0], 3, rng)).replicates_needed.get(f"{difference:g}")
              for _ in range(studies)]
    return int(np.median([count or 10**6 for count in counts]))


def truly_needed(difference: float, studies: int, seed: int, high: int) -> int:
    """The fewest replicates with which 80 % of worse points are ruled out (bisection)."""
    low = 1  # detected(high) >= 0.8 is checked by the caller's widening
    while detected(difference, high, studies, seed) < 0.8:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if detected(difference, middle, studies, seed) >= 0.8 \
            else (middle, high)
    return high


def power_check(studies: int, seed: int) -> list[str]:
    """Replicates the verdict names for a stated difference, checked in simulation."""
    lines = ["| difference | replicates named (median, after 3) | detected with them | "
             "replicates truly needed for 80 % | named / needed |", "|---|---:|---:|---:|---:|"]
    for difference in CHECKED:
        count = named(difference, min(studies, 200), seed)
        rate = detected(difference, count, studies, seed)
        truth = truly_needed(difference, max(studies // 4, 50), seed, max(2, count))
        lines.append(f"| {difference * 100:g} pp | {count} | {rate * 100:.1f} % | {truth} | "
                     f"{count / truth:.2f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000, help="studies per case and count")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.studies < 1:
        parser.error("--studies must be at least 1")
    started = time.perf_counter()
    print("\n".join(table(args.studies, args.seed)))
    print("\n" + "\n".join(power_check(args.studies, args.seed)))
    margin = 2 * np.sqrt(0.05 * 0.95 / args.studies) * 100
    print(f"\n{args.studies} studies per row (a true 5 % reads 5 ± {margin:.1f} % in 19 of 20 "
          f"runs); {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
