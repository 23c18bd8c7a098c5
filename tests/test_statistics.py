"""Contracts of search.results.statistics on small synthetic studies (no training, no Keras).

Run with ``pytest tests/test_statistics.py -q``.
"""

from __future__ import annotations

import json
import math

import pytest
import scipy.stats

from search.results import statistics
from search.results import verdict as verdicts
from search.study import points

# Replicate r shares its seed across points, so each point gets the same seed offset at r.
SEED_OFFSETS = (0.0, 0.004, -0.003)


def point(params: dict, validation: list[float | None], test: list[float] | None = None):
    """A PointResult from per-replicate lists; None marks a replicate that did not complete."""
    completed = {r: value for r, value in enumerate(validation) if value is not None}
    tests = {r: value for r, value in enumerate(test or []) if r in completed}
    return statistics.PointResult(params, completed, tests)


def judge(points: list[statistics.PointResult]) -> verdicts.Verdict:
    return verdicts.judge(statistics.summarise(points))


def test_mean_std_and_interval_match_hand_computed_values() -> None:
    [summary] = statistics.summarise([point({"learning_rate": 0.001}, [0.97, 0.98, 0.99],
                                            [0.95, 0.96, 0.94])])
    half_width = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2 degrees of freedom) = 4.302653
    assert (summary.n, summary.mean, summary.std) == (3, pytest.approx(0.98),
                                                      pytest.approx(0.01))
    assert summary.ci95 == pytest.approx((0.98 - half_width, 0.98 + half_width), abs=1e-6)
    assert summary.test_mean == pytest.approx(0.95)


def test_tied_points_are_indistinguishable() -> None:
    points = [point({"learning_rate": 0.001}, [0.970, 0.975, 0.972]),
              point({"learning_rate": 0.003}, [0.972, 0.972, 0.974]),
              point({"learning_rate": 0.01}, [0.969, 0.976, 0.970])]
    result = judge(points)
    assert result.best.params == {"learning_rate": 0.003}
    assert [s.params for s in result.indistinguishable] == [{"learning_rate": 0.001},
                                                             {"learning_rate": 0.01}]
    assert all(c.p_value > statistics.ALPHA and not c.distinguishable
               for c in result.comparisons)
    assert result.lines[1].startswith("within noise of it (paired t-test")
    [marginal] = result.marginals
    assert marginal.sentence == ("learning_rate 0.001, 0.003 and 0.01 are indistinguishable "
                                 "at 3 replicates")


def test_clear_winner_is_distinguishable_from_every_other_point() -> None:
    points = [point({"learning_rate": 0.01}, [0.950, 0.952, 0.949]),
              point({"learning_rate": 0.001}, [0.980, 0.981, 0.979]),
              point({"learning_rate": 0.1}, [0.900, 0.903, 0.899])]
    result = judge(points)
    assert result.best.params == {"learning_rate": 0.001}
    assert result.indistinguishable == []
    assert all(c.distinguishable and c.p_value < 0.01 for c in result.comparisons)
    assert result.replicates_needed is None
    assert result.lines[1] == f"no other point is within noise of it ({statistics.TEST_NAME})"
    assert result.marginals[0].sentence == "learning_rate 0.001 is clearly best"


def test_one_replicate_says_there_is_no_noise_estimate() -> None:
    points = [point({"learning_rate": 0.001}, [0.98]), point({"learning_rate": 0.01}, [0.95]),
              point({"learning_rate": 0.1}, [0.97])]
    result = judge(points)
    text = "\n".join(result.lines)
    assert "no noise estimate" in text and "--repeats 3" in text and "repeats = 3" in text
    assert result.indistinguishable == [] and result.replicates_needed is None
    assert result.replicates == 1
    assert [c.p_value for c in result.comparisons] == [None, None]
    [marginal] = result.marginals
    assert marginal.tied_with_best == []
    assert "(no noise estimate at 1 replicate)" in marginal.sentence


def test_missing_replicate_counts_and_pairs_only_completed_ones() -> None:
    complete = point({"learning_rate": 0.001}, [0.97, 0.98, 0.99])
    failed = point({"learning_rate": 0.01}, [0.96, None, 0.97])  # replicate 1 failed
    summaries = statistics.summarise([failed, complete])
    assert summaries[1].n == 2 and summaries[1].validation == {0: 0.96, 2: 0.97}
    assert summaries[1].std == pytest.approx(0.01 / math.sqrt(2))  # ddof=1 over n=2
    [comparison] = verdicts.judge(summaries).comparisons
    expected = scipy.stats.ttest_rel([0.97, 0.99], [0.96, 0.97]).pvalue
    assert comparison.shared == 2
    assert comparison.difference == pytest.approx(0.015)
    assert comparison.p_value == pytest.approx(expected)


def test_point_without_results_is_listed_last_and_never_compared() -> None:
    empty = statistics.PointResult({"learning_rate": 0.1}, {}, {})
    summaries = statistics.summarise([empty, point({"learning_rate": 0.001}, [0.97, 0.98])])
    assert [s.n for s in summaries] == [2, 0] and summaries[1].mean is None
    assert verdicts.judge(summaries).comparisons == []


def test_validation_ranks_and_test_is_ignored() -> None:
    by_validation = point({"learning_rate": 0.001}, [0.98, 0.981, 0.979], [0.90, 0.91, 0.90])
    by_test = point({"learning_rate": 0.01}, [0.95, 0.951, 0.949], [0.99, 0.99, 0.99])
    summaries = statistics.summarise([by_test, by_validation])
    assert [s.params["learning_rate"] for s in summaries] == [0.001, 0.01]
    result = verdicts.judge(summaries)
    assert result.best.params == {"learning_rate": 0.001}
    assert result.to_json()["best"]["params"] == {"learning_rate": 0.001}
    swapped = [point(p.params, list(p.validation.values()), [0.5, 0.5, 0.5])
               for p in (by_test, by_validation)]
    assert judge(swapped).lines == result.lines
    assert result.lines[-1].startswith("the test set chose nothing")


def test_replicates_needed_follows_the_power_formula() -> None:
    best = point({"learning_rate": 0.001}, [0.980, 0.978, 0.983])
    runner_up = point({"learning_rate": 0.01}, [0.978, 0.977, 0.979])
    result = judge([runner_up, best])
    differences = [0.002, 0.001, 0.004]
    effect = abs(sum(differences) / 3) / scipy.stats.tstd(differences)
    normal = math.ceil(((1.959964 + 0.841621) / effect) ** 2)

    def needs(n: int) -> float:
        return ((scipy.stats.t.ppf(0.975, n - 1) + scipy.stats.t.ppf(0.8, n - 1)) / effect) ** 2

    needed = result.replicates_needed
    assert not result.comparisons[0].distinguishable
    # The smallest n at which the t-based requirement is met, never below the normal one.
    assert needed >= normal and needs(needed) <= needed and needs(needed - 1) > needed - 1
    assert (f"would take about {needed} replicates (observed difference +0.23 pp, "
            "spread 0.15 pp)") in result.lines[-2]


def test_tiny_difference_is_too_small_to_matter() -> None:
    best = point({"learning_rate": 0.001}, [0.9805, 0.9798, 0.9803])
    runner_up = point({"learning_rate": 0.01}, [0.9800, 0.9800, 0.9800])
    result = judge([best, runner_up])
    assert result.replicates_needed is not None
    assert "(+0.02 percentage points) is too small to matter in practice" in result.lines[-2]


def test_differences_without_spread() -> None:
    best = point({"learning_rate": 0.001}, [0.97, 0.98, 0.99])
    same = point({"learning_rate": 0.003}, [0.97, 0.98, 0.99])
    constant_gap = point({"learning_rate": 0.01}, [0.96, 0.97, 0.98])  # 1 pp at every seed
    equal, gap = judge([best, same, constant_gap]).comparisons
    assert (equal.p_value, equal.distinguishable) == (1.0, False)
    assert (gap.p_value, gap.distinguishable) == (0.0, True)


def test_zero_difference_needs_no_replicate_count() -> None:
    result = judge([point({"learning_rate": 0.001}, [0.98, 0.97, 0.99]),
                    point({"learning_rate": 0.01}, [0.97, 0.99, 0.98])])
    assert result.replicates_needed is None
    assert "the observed difference is zero" in result.lines[-2]


def test_marginals_separate_a_real_effect_from_noise() -> None:
    learning_rates = {0.0001: 0.90, 0.001: 0.98, 0.01: 0.95}
    # Batch-size noise changes sign across replicates: no batch size is consistently better.
    batch_noise = {32: (0.002, -0.002, 0.0), 64: (-0.001, 0.002, -0.001),
                   128: (0.0, -0.001, 0.002)}
    # A small learning-rate x replicate interaction, so the learning-rate test has real spread.
    interaction = {0.0001: (0.0, 0.0, 0.0), 0.001: (0.0, 0.0, 0.0), 0.01: (0.001, -0.001, 0.0)}
    points = [point({"learning_rate": rate, "batch_size": batch},
                    [base + SEED_OFFSETS[r] + batch_noise[batch][r] + interaction[rate][r]
                     for r in range(3)])
              for rate, base in learning_rates.items() for batch in batch_noise]
    rate, batch = judge(points).marginals
    assert rate.sentence == "learning_rate 0.001 is clearly best"
    assert rate.means == pytest.approx({"0.0001": 0.90, "0.001": 0.98, "0.01": 0.95}, abs=1e-3)
    assert batch.sentence == "batch_size 32, 64 and 128 are indistinguishable at 3 replicates"
    assert batch.best == "128" and batch.tied_with_best == ["32", "64"]


def test_to_json_is_plain_and_has_the_contract_keys() -> None:
    points = [point({"hidden_units": (128, 64), "learning_rate": 0.001}, [0.973, 0.975, 0.972],
                    [0.96, 0.97, 0.96]),
              point({"hidden_units": (64, 32), "learning_rate": 0.001}, [0.972, 0.971, 0.974])]
    summaries = statistics.summarise(points)
    result = verdicts.judge(summaries)
    document = json.loads(json.dumps(result.to_json()))
    assert set(document) == {"best", "indistinguishable", "test", "alpha", "replicates",
                             "replicates_needed", "marginals", "lines"}
    assert document["test"] == statistics.TEST_NAME and document["alpha"] == 0.05
    assert set(document["indistinguishable"][0]) == {"params", "n", "mean", "std", "p_value",
                                                     "difference"}
    assert set(document["marginals"][0]) == {"name", "means", "best", "tied_with_best",
                                             "sentence"}
    assert document["marginals"][0]["means"].keys() == {"64-32", "128-64"}
    summary = json.loads(json.dumps(summaries[0].to_json()))
    assert summary["params"]["hidden_units"] == [128, 64]
    assert summary["validation"] == {"0": 0.973, "1": 0.975, "2": 0.972}
    assert len(summary["ci95"]) == 2 and summary["test_mean"] == pytest.approx(0.9633333)


def test_format_value_and_params() -> None:
    assert points.format_value(0.001) == "0.001"
    assert points.format_value([128, 64]) == "128-64"
    assert points.format_value("relu") == "relu"
    assert points.format_params({"learning_rate": 0.001, "batch_size": 32}) == (
        "learning_rate=0.001 batch_size=32")


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_alpha_outside_zero_one_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        verdicts.judge([], alpha=alpha)


@pytest.mark.parametrize("validation", [{-1: 0.9}, {0: float("nan")}, {"0": 0.9}])
def test_bad_point_result_is_refused(validation: dict) -> None:
    with pytest.raises(ValueError, match="learning_rate=0.001"):
        statistics.PointResult({"learning_rate": 0.001}, validation, {})


def test_marginal_names_the_values_tied_with_the_best_one() -> None:
    points = [point({"learning_rate": 0.001}, [0.970, 0.975, 0.972]),
              point({"learning_rate": 0.003}, [0.972, 0.972, 0.974]),
              point({"learning_rate": 0.1}, [0.900, 0.901, 0.899])]
    [marginal] = judge(points).marginals
    assert marginal.tied_with_best == ["0.001"]
    assert marginal.sentence == ("learning_rate 0.003 is best; 0.001 cannot be told apart from "
                                 "it at 3 replicates")


def test_marginal_averages_only_replicates_every_point_of_the_value_completed() -> None:
    points = [point({"learning_rate": 0.001, "batch_size": 32}, [0.98, 0.98, 0.98]),
              point({"learning_rate": 0.001, "batch_size": 64}, [0.96, 0.96, None]),
              point({"learning_rate": 0.01, "batch_size": 32}, [0.90, 0.90, 0.90]),
              point({"learning_rate": 0.01, "batch_size": 64}, [0.90, 0.90, 0.90])]
    rate = judge(points).marginals[0]
    # Replicate 2 of 0.001 averages one point instead of two, so it is left out: 0.97, not 0.9733.
    assert rate.means == pytest.approx({"0.001": 0.97, "0.01": 0.90})


def test_no_completed_trials_give_an_empty_verdict() -> None:
    result = verdicts.judge(statistics.summarise([statistics.PointResult({"x": 1}, {})]))
    assert result.best is None and result.comparisons == [] and result.replicates == 0
    assert json.loads(json.dumps(result.to_json()))["best"] is None


def test_a_point_sharing_one_replicate_with_the_best_is_not_called_tied() -> None:
    # The third point was given up after its first replicate: far below the best, but with
    # one shared replicate nothing can be tested, so it is neither tied nor beaten.
    result = judge([point({"learning_rate": 0.001}, [0.97, 0.975, 0.972]),
                    point({"learning_rate": 0.01}, [0.966, 0.976, 0.970]),
                    point({"learning_rate": 0.1}, [0.05, None, None])])
    assert [summary.params for summary in result.indistinguishable] == [{"learning_rate": 0.01}]
    assert any(line.startswith("not comparable with it yet") and "learning_rate=0.1" in line
               for line in result.lines)
    [marginal] = result.marginals
    assert marginal.tied_with_best == ["0.01"]
    assert "0.1 not comparable yet" in marginal.sentence
