"""The verdict's contract as other tools read it: ``search.to_json(study)``, the table, the
heatmap and the dashboard note say the same thing, also for a study copied into memory and
for a minimised objective. Synthetic trials on real Optuna studies (no Keras).

Run with ``pytest tests/test_verdict_contract.py -q``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from search.results import grid_figure, statistics, table
from search.results import verdict as verdicts
from search.study import points
from search.study.points import format_params
from tests.test_figures import make_study
from tests.test_statistics import grid, judge, names

SPACE = {"learning_rate": [0.0001, 0.001, 0.01], "batch_size": [32, 64, 128]}


def memory_study(values: dict[int, list[float]], direction: str) -> optuna.Study:
    """A study as this service stores one (budget, grid map, unit per trial), in memory,
    with ``values[point][replicate]`` as the objective."""
    grid = [{"learning_rate": rate, "batch_size": batch} for rate in SPACE["learning_rate"]
            for batch in SPACE["batch_size"]]
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                                study_name="memory", direction=direction)
    repeats = max(len(row) for row in values.values())
    study.set_user_attr(points.BUDGET, {"search_space": SPACE,
                                        "objective": ["val_loss", direction]})
    study.set_user_attr(points.GRID, grid)
    study.set_user_attr(points.REPEATS, repeats)
    distributions = {name: optuna.distributions.CategoricalDistribution(levels)
                     for name, levels in SPACE.items()}
    for point, row in values.items():
        for replicate, value in enumerate(row):
            study.add_trial(optuna.trial.create_trial(
                params=grid[point], distributions=distributions, value=value,
                user_attrs={points.REPLICATE: replicate},
                system_attrs={points.UNIT: [point, replicate]}))
    return study


def losses(seed: int = 0) -> dict[int, list[float]]:
    """Point 4 (learning_rate=0.001 batch_size=64) lowest by far; the rest close."""
    rng = np.random.default_rng(seed)
    seeds = rng.normal(0, 0.01, 5)
    return {point: [0.30 - 0.10 * (point == 4) + 0.002 * point + seeds[r] + rng.normal(0, 0.003)
                    for r in range(5)] for point in range(9)}


def test_to_json_keeps_best_and_writes_points_under_both_names(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    document = json.loads(table.to_json(study))
    assert document["points"] == document["pairs"] and len(document["points"]) == 9
    verdict = document["verdict"]
    listed = [format_params(entry["params"]) for entry in verdict["contenders"]
              + verdict["ruled_out"]]
    assert sorted(listed) == sorted(format_params(p["params"]) for p in document["points"])
    best = max(document["points"], key=lambda p: p["seed_adjusted_mean"])
    assert verdict["best"]["params"] == best["params"] == verdict["contenders"][0]["params"]
    assert list(verdict["replicates_needed"]) == ["0.001", "0.002", "0.005"]
    assert verdict["detectable_difference"] > 0 and "Hsu" in verdict["method"]
    marks = {format_params(p["params"]): p["verdict"] for p in document["points"]}
    assert {format_params(e["params"]) for e in verdict["ruled_out"]} == {
        name for name, mark in marks.items() if mark == table.RULED_OUT}


def test_to_json_reads_a_study_copied_into_memory_alike(tmp_path: Path) -> None:
    study = make_study(tmp_path, complete=20)
    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=study.study_name, from_storage=study._storage,
                      to_storage=memory)
    copied = optuna.load_study(study_name=study.study_name, storage=memory)
    assert table.to_json(copied) == table.to_json(study)


def test_a_minimised_objective_is_judged_lowest_first() -> None:
    study = memory_study(losses(), "minimize")
    document = json.loads(table.to_json(study))
    verdict = document["verdict"]
    assert verdict["direction"] == "minimize" and verdict["metric"] == "val_loss"
    assert verdict["best"]["params"] == {"learning_rate": 0.001, "batch_size": 64}
    assert [p["params"] for p in document["points"]][0] == verdict["best"]["params"]
    assert len(verdict["contenders"]) == 1 and len(verdict["ruled_out"]) == 8
    # Not a proportion: replicates are priced at multiples of the spread.
    assert list(verdict["replicates_needed"]) != ["0.001", "0.002", "0.005"]
    assert "validation loss" in verdict["lines"][0] and "lower is better" in verdict["lines"][0]


def test_table_note_and_heatmap_say_what_the_json_says(tmp_path: Path) -> None:
    study = memory_study(losses(1), "minimize")
    rows, verdict = table.point_rows(study)
    document = json.loads(table.to_json(study))["verdict"]
    marks = {format_params(row.summary.params): row.mark for row in rows}
    assert marks[format_params(document["best"]["params"])] == table.BEST
    assert all(marks[format_params(e["params"])] == table.RULED_OUT
               for e in document["ruled_out"])
    records = table.records(rows)
    assert [record["verdict"] for record in records] == [row.mark for row in rows]
    note = table.markdown(study)
    assert all(f"- {line}" in note for line in document["lines"])
    figure = grid_figure.draw_heatmap("memory", SPACE, rows, "validation loss", False)
    assert grid_figure.marked_cells(figure) == marks
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [grid_figure.BEST_LABEL.format("lowest"), grid_figure.RULED_OUT_LABEL]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_summary_prints_the_verdict_lines(direction: str) -> None:
    study = memory_study(losses(2), direction)
    text = table.summary(study)
    verdict = table.verdict_of(study)
    assert all(line in text for line in verdict.lines)
    best = min if direction == "minimize" else max
    means = {format_params(row.summary.params): row.summary.adjusted_mean
             for row in table.point_rows(study)[0]}
    assert format_params(verdict.best.params) == best(means, key=means.get)


def test_every_point_with_a_result_is_in_exactly_one_list() -> None:
    found = grid({0.0001: 0.95, 0.001: 0.97, 0.01: 0.96}, 0.002, 3)
    found.append(statistics.PointResult({"learning_rate": 0.1, "batch_size": 32}, {}))
    result = judge(found)
    listed = names(result.contenders) + names(result.ruled_out)
    assert sorted(listed) == sorted(points.format_params(p.params) for p in found[:-1])
    assert names(result.contenders)[0] == points.format_params(result.best.params)


def test_to_json_is_plain_and_has_the_contract_keys() -> None:
    summaries = statistics.summarise(grid({0.001: 0.97, 0.01: 0.96}, 0.002, 3))
    document = json.loads(json.dumps(verdicts.judge(summaries).to_json()))
    assert set(document) == {"best", "contenders", "ruled_out", "method", "alpha",
                             "direction", "metric", "replicates", "detectable_difference",
                             "replicates_needed", "marginals", "lines"}
    entry = (document["contenders"] + document["ruled_out"])[0]
    assert set(entry) == {"params", "n", "mean", "interval", "decided_by", "bound"}
    assert document["best"]["mean"] == document["contenders"][0]["mean"]
    assert set(document["marginals"][0]) == {"name", "means", "best", "contenders",
                                             "ruled_out", "sentence"}
    summary = json.loads(json.dumps(summaries[0].to_json()))
    assert set(summary) >= {"params", "n", "mean", "seed_adjusted_mean", "std", "ci95"}


def test_the_note_stores_the_verdict_per_point_as_a_study_attribute() -> None:
    from types import SimpleNamespace

    from search.results import note, wording

    study = memory_study(losses(3), "minimize")
    note.StudyNote(SimpleNamespace(rdb=study._storage), "memory")()
    stored = optuna.load_study(study_name="memory", storage=study._storage)
    rows, verdict = table.point_rows(study)
    lines = stored.user_attrs[note.VERDICT]
    assert lines[0].startswith(f"{format_params(verdict.best.params)}: best (mean ")
    assert len(lines) == len(rows)
    assert all(row.mark in line for row, line in zip(rows, lines, strict=True))
    assert wording.DASHBOARD_LINE in table.markdown(study)


def _readme_examples():
    import importlib.util  # the script is not a package module: load it from its file

    path = Path(__file__).resolve().parent.parent / "scripts" / "readme_examples.py"
    spec = importlib.util.spec_from_file_location("readme_examples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_quote_the_shipped_examples_only_in_script_written_blocks() -> None:
    # A hand-edited copy of a verdict drifts from what the code prints ("units 64 is clearly
    # best" stayed in the README after the wording changed); the script owns these blocks.
    script = _readme_examples()
    pages = "\n".join(page.read_text() for page in script.DOCUMENTS)
    assert {"mnist", "regression", "mnist-convnet", "regression-tpe"} <= set(
        script.marked(pages))
    outside = script._BLOCK.sub("", pages)
    assert "is clearly best" not in pages
    for verdict_words in ("seed-adjusted mean validation", "cannot be ruled out as best:"):
        assert verdict_words not in outside


def test_the_examples_script_replaces_only_its_own_block() -> None:
    script = _readme_examples()
    text = ("intro\n<!-- example: a -->\nold a\n<!-- /example -->\nmiddle\n"
            "<!-- example: b -->\nold b\n<!-- /example -->\nend\n")
    replaced = script.replace_block(text, "b", "new b\n")
    assert replaced == text.replace("old b", "new b")
    assert script.marked(replaced) == ["a", "b"]
    with pytest.raises(ValueError, match="example: c"):
        script.replace_block(text, "c", "x")
