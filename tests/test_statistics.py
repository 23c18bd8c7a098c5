"""Contracts of the verdict (search.results.statistics, multiple, verdict) on small synthetic
studies (no training, no Keras).

Run with ``pytest tests/test_statistics.py -q``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from search.results import marginals, multiple, statistics, wording
from search.results import verdict as verdicts
from search.study import points

# Replicate r shares its seed across points, so each point gets the same seed offset at r.
SEED_OFFSETS = (0.0, 0.004, -0.003, 0.001, -0.002)


def point(params: dict, validation: list[float | None], test: list[float] | None = None):
    """A PointResult from per-replicate lists; None marks a replicate that did not complete."""
    completed = {r: value for r, value in enumerate(validation) if value is not None}
    tests = {r: value for r, value in enumerate(test or []) if r in completed}
    return statistics.PointResult(params, completed, tests)


def judge(found: list[statistics.PointResult], maximize: bool = True,
          metric: str | None = "val_accuracy") -> verdicts.Verdict:
    return verdicts.judge(statistics.summarise(found, maximize), maximize=maximize,
                          metric=metric)


def names(entries: list[verdicts.Standing]) -> list[str]:
    return [points.format_params(entry.params) for entry in entries]


def grid(means: dict[float, float], noise: float, replicates: int, seed: int = 0,
         batch_sizes: tuple = (32, 64, 128)) -> list[statistics.PointResult]:
    """learning rate x batch size points: the rate's mean, the seed's offset, run noise."""
    rng = np.random.default_rng(seed)
    return [point({"learning_rate": rate, "batch_size": batch},
                  [mean + SEED_OFFSETS[r % 5] + rng.normal(0, noise) for r in range(replicates)])
            for rate, mean in means.items() for batch in batch_sizes]


def test_mean_std_and_interval_match_hand_computed_values() -> None:
    [summary] = statistics.summarise([point({"learning_rate": 0.001}, [0.97, 0.98, 0.99],
                                            [0.95, 0.96, 0.94])])
    half_width = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2 degrees of freedom) = 4.302653
    assert (summary.n, summary.mean, summary.std) == (3, pytest.approx(0.98),
                                                      pytest.approx(0.01))
    assert summary.adjusted_mean == pytest.approx(0.98)
    assert summary.ci95 == pytest.approx((0.98 - half_width, 0.98 + half_width), abs=1e-6)
    assert summary.test_mean == pytest.approx(0.95)


def test_a_point_that_beats_the_best_in_every_shared_seed_ranks_first_and_stays() -> None:
    # Seed 0 is bad for every point; "late" never ran it, so its plain mean is flattered
    # only by... nothing: it is ahead at every seed it shares, and must rank first.
    early = point({"learning_rate": 0.001}, [0.950, 0.972, 0.974])
    late = point({"learning_rate": 0.003}, [None, 0.9735, 0.9752])
    other = point({"learning_rate": 0.01}, [0.941, 0.962, 0.965])
    summaries = statistics.summarise([early, late, other])
    assert summaries[0].params == {"learning_rate": 0.003}
    assert summaries[0].adjusted_mean > summaries[1].adjusted_mean
    result = verdicts.judge(summaries)
    assert result.best.params == {"learning_rate": 0.003}
    assert "learning_rate=0.003" in names(result.contenders)


def test_nothing_is_ruled_out_for_a_difference_that_favours_it() -> None:
    # Many random studies with unequal replicates: every ruled-out point is behind the point
    # that ruled it out on the seeds they share.
    rng = np.random.default_rng(1)
    checked = 0
    for study in range(60):
        found = grid({0.0001: 0.96, 0.001: 0.965, 0.01: 0.962}, 0.002, 4, seed=study)
        for result in found[::4]:
            result.validation.pop(int(rng.integers(4)))
        verdict = judge(found)
        values = {points.format_params(p.params): p.validation for p in found}
        for entry in verdict.ruled_out:
            mine, theirs = (values[points.format_params(params)]
                            for params in (entry.params, entry.decided_by))
            shared = mine.keys() & theirs.keys()
            assert np.mean([theirs[r] - mine[r] for r in shared]) > 0
            assert entry.bound < 0 and entry.interval[1] == 0
            checked += 1
    assert checked > 20


def test_differences_without_spread_make_no_claim() -> None:
    # Two replicates: a 1-point gap at both seeds has no spread, so it cannot be tested.
    best = point({"learning_rate": 0.001}, [0.97, 0.98])
    constant_gap = point({"learning_rate": 0.01}, [0.96, 0.97])
    result = judge([best, constant_gap, point({"learning_rate": 0.1}, [0.95, 0.975])])
    assert result.ruled_out == []
    # Exactly additive values: no pair has any spread, so nothing at all is claimed.
    additive = [point({"learning_rate": rate}, [base + offset for offset in SEED_OFFSETS])
                for rate, base in ((0.001, 0.98), (0.01, 0.95), (0.1, 0.90))]
    result = judge(additive)
    assert result.ruled_out == [] and wording.NO_PAIR in result.lines
    assert result.detectable_difference is None and result.replicates_needed == {}


def test_a_clear_winner_is_singled_out() -> None:
    result = judge(grid({0.0001: 0.95, 0.001: 0.98, 0.01: 0.94}, 0.0005, 5,
                        batch_sizes=(32,)))
    assert result.best.params == {"learning_rate": 0.001, "batch_size": 32}
    assert names(result.contenders) == ["learning_rate=0.001 batch_size=32"]
    assert len(result.ruled_out) == 2
    assert any(line.startswith("ruled out as best: ") and "at least" in line
               for line in result.lines)
    [rate] = result.marginals  # one hyperparameter: nothing to average over
    assert rate.sentence == "learning_rate 0.001 beats 0.0001 and 0.01"


def test_a_minimised_objective_picks_the_lowest_mean() -> None:
    losses = grid({0.0001: 0.30, 0.001: 0.20, 0.01: 0.25}, 0.002, 5, batch_sizes=(32,))
    result = judge(losses, maximize=False, metric="val_loss")
    assert result.best.params["learning_rate"] == 0.001
    assert result.best.adjusted_mean == pytest.approx(0.20, abs=0.005)
    assert [entry.params["learning_rate"] for entry in result.ruled_out] == [0.01, 0.0001]
    assert result.lines[0].startswith("best: learning_rate=0.001 batch_size=32 seed-adjusted "
                                      "mean validation loss 0.2")
    assert "lower is better" in result.lines[0]
    document = result.to_json()
    assert document["direction"] == "minimize" and document["metric"] == "val_loss"
    # Not a proportion: the differences priced in replicates are multiples of the spread.
    sigma = multiple.with_best(-statistics.scores(
        [p.validation for p in losses], True)).pairs.sigma
    assert list(document["replicates_needed"]) == [
        wording.difference_key(m * sigma, False) for m in statistics.SPREAD_MULTIPLES]


def test_one_replicate_says_there_is_no_noise_estimate() -> None:
    result = judge([point({"learning_rate": 0.001}, [0.98]),
                    point({"learning_rate": 0.01}, [0.95]),
                    point({"learning_rate": 0.1}, [0.97])])
    text = "\n".join(result.lines)
    assert wording.NO_NOISE in result.lines and "--repeats 3" in text
    assert result.ruled_out == [] and len(result.contenders) == 3
    assert result.replicates == 1 and result.replicates_needed == {}
    assert result.detectable_difference is None
    assert "not compared (no noise estimate)" in result.marginals[0].sentence


def test_two_replicates_say_each_pair_leans_on_the_common_spread() -> None:
    result = judge(grid({0.0001: 0.96, 0.001: 0.965, 0.01: 0.962}, 0.002, 2))
    assert "moderated toward the study's common spread" in result.method
    assert wording.TWO_REPLICATES in result.lines


def test_marginals_separate_a_real_effect_from_noise() -> None:
    rate, batch = judge(grid({0.0001: 0.90, 0.001: 0.98, 0.01: 0.95}, 0.001, 5)).marginals
    assert rate.sentence == "averaged over batch_size, learning_rate 0.001 beats 0.0001 and 0.01"
    assert rate.means == pytest.approx({"0.0001": 0.90, "0.001": 0.98, "0.01": 0.95},
                                       abs=2e-3)
    assert batch.ruled_out == [] and batch.contenders == ["32", "64", "128"]
    assert batch.sentence == ("averaged over learning_rate, batch_size: 32, 64 and 128 cannot "
                              "be told apart at 5 replicates")


def test_a_level_beaten_on_average_is_named_when_one_of_its_points_is_a_contender() -> None:
    # learning_rate 0.01 loses on average, yet its batch-size-32 point is as good as the best.
    found = grid({0.001: 0.98, 0.01: 0.95}, 0.0005, 5)
    found[3] = point(found[3].params, [v + 0.03 for v in found[3].validation.values()])
    result = judge(found)
    assert "learning_rate=0.01 batch_size=32" in names(result.contenders)
    rate = next(m for m in result.marginals if m.name == "learning_rate")
    assert rate.ruled_out == ["0.01"] and "best" not in rate.sentence.split("(")[0]
    assert rate.sentence.endswith("(single points with learning_rate 0.01 still cannot be "
                                  "ruled out as best)")


def test_a_beaten_level_that_the_best_point_has_is_named_as_the_best_points() -> None:
    # The regression example: units 64 wins on average, yet the best point has units 16.
    found = grid({0.001: 0.98, 0.01: 0.95}, 0.0005, 5)
    found[3] = point(found[3].params, [v + 0.04 for v in found[3].validation.values()])
    result = judge(found)
    assert names([result.best]) == ["learning_rate=0.01 batch_size=32"]
    rate = next(m for m in result.marginals if m.name == "learning_rate")
    assert rate.ruled_out == ["0.01"]
    assert rate.sentence.endswith("(single points with learning_rate 0.01, the best point "
                                  "among them, still cannot be ruled out as best)")


def test_a_level_kept_on_average_but_ruled_out_point_by_point_says_both() -> None:
    # The convnet example: both lr 0.001 points ruled out as best, yet on average 0.001 and
    # 0.003 "cannot be told apart" (the levels' all-pairs test is stricter than MCB).
    summaries = statistics.summarise(grid({0.001: 0.97, 0.01: 0.97}, 0.002, 3, seed=1))
    best_only = [dict(s.params) for s in summaries if s.params["learning_rate"] == 0.001]
    found = marginals.marginal("learning_rate", summaries, 0.05, True, 3, best_only,
                               ["batch_size"])
    assert found.ruled_out == []
    assert found.sentence.endswith("(every point with learning_rate 0.01 is ruled out as "
                                   "best; averaged, the stricter comparison of levels does "
                                   "not yet separate it)")
    every = [dict(s.params) for s in summaries]
    assert "every point" not in marginals.marginal("learning_rate", summaries, 0.05, True, 3,
                                                   every, ["batch_size"]).sentence


def test_a_far_worse_contender_says_why_and_intervals_stay_in_range() -> None:
    found = grid({0.001: 0.9955, 0.01: 0.99}, 0.0003, 3, batch_sizes=(32, 64))
    found[3] = point(found[3].params, [0.998, 0.94, 0.9995])  # far worse on average, wild
    result = judge(found)
    line = next(line for line in result.lines if line.startswith(wording.CONTENDER))
    assert "learning_rate=0.01 batch_size=64 (0.9792; its replicates range from 0.9400" in line
    summaries = statistics.summarise(found, metric="val_accuracy")
    assert all(0 <= s.ci95[0] and s.ci95[1] <= 1 for s in summaries)
    assert max(s.mean + 4.3 * s.std / 3 ** 0.5 for s in summaries) > 1  # clipped, not lucky


def test_marginal_averages_only_replicates_every_point_of_the_value_completed() -> None:
    found = [point({"learning_rate": 0.001, "batch_size": 32}, [0.98, 0.981, 0.979]),
             point({"learning_rate": 0.001, "batch_size": 64}, [0.96, 0.961, None]),
             point({"learning_rate": 0.01, "batch_size": 32}, [0.90, 0.901, 0.899]),
             point({"learning_rate": 0.01, "batch_size": 64}, [0.90, 0.90, 0.90])]
    rate = judge(found).marginals[0]
    # Replicate 2 of 0.001 would average one point instead of two, so it is left out.
    assert rate.means["0.001"] == pytest.approx(0.9705, abs=1e-3)


def test_validation_ranks_and_test_is_ignored() -> None:
    by_validation = point({"learning_rate": 0.001}, [0.98, 0.981, 0.979], [0.90, 0.91, 0.90])
    by_test = point({"learning_rate": 0.01}, [0.95, 0.951, 0.949], [0.99, 0.99, 0.99])
    result = judge([by_test, by_validation])
    assert result.best.params == {"learning_rate": 0.001}
    swapped = [point(p.params, list(p.validation.values()), [0.5, 0.5, 0.5])
               for p in (by_test, by_validation)]
    assert judge(swapped).lines == result.lines
    assert result.lines[-1] == wording.TEST_LINE


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_alpha_outside_zero_one_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        verdicts.judge([], alpha=alpha)


@pytest.mark.parametrize("validation", [{-1: 0.9}, {0: float("nan")}, {"0": 0.9}])
def test_bad_point_result_is_refused(validation: dict) -> None:
    with pytest.raises(ValueError, match="learning_rate=0.001"):
        statistics.PointResult({"learning_rate": 0.001}, validation, {})


def test_no_completed_trials_give_an_empty_verdict() -> None:
    result = verdicts.judge(statistics.summarise([statistics.PointResult({"x": 1}, {})]))
    assert result.best is None and result.contenders == result.ruled_out == []
    assert json.loads(json.dumps(result.to_json()))["best"] is None


def test_format_value_and_params() -> None:
    assert points.format_value(0.001) == "0.001"
    assert points.format_value([128, 64]) == "128-64"
    assert points.format_params({"learning_rate": 0.001, "batch_size": 32}) == (
        "learning_rate=0.001 batch_size=32")
