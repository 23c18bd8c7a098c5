"""Contracts of search.results.figures on real Optuna studies with synthetic trials (no Keras).

Trials are created the way a worker creates them (a claimed unit's template), then given a
made-up history and told their value, so the figures read exactly what a run stores.
Run with ``pytest tests/test_figures.py -q``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pytest

from search import definition as definitions
from search.results import figures, grid_figure, statistics, table
from search.results.table import PointRow
from search.study import claims, lifecycle, points, units
from search.study.storage import open_storage
from tests.helpers import without_fsync

FIGURES = ["best_point_curves.png", "heatmap.png", "validation_curves.png"]
EPOCHS = 4


def history(unit: points.Unit) -> dict[str, list[float]]:
    """Curves rising to a last-epoch accuracy set by the point, plus the replicate's noise."""
    noise = np.random.default_rng([unit.point, unit.replicate]).normal(0, 0.002)
    final = 0.95 + 0.003 * unit.point + noise
    rise = 0.5 ** np.arange(EPOCHS - 1, -1, -1)  # ends at 1 on the last epoch
    accuracy = final - 0.08 * (1 - rise)
    return {"accuracy": list(accuracy + 0.01), "val_accuracy": list(accuracy),
            "loss": list(0.4 * (1.2 - accuracy)), "val_loss": list(0.5 * (1.2 - accuracy))}


def make_study(folder: Path, *, learning_rates: tuple = (0.0001, 0.001, 0.01),
               batch_sizes: tuple = (32, 64, 128), repeats: int = 3,
               complete: int | None = None, running: int = 0) -> optuna.Study:
    """A stored study whose first ``complete`` units (all by default) are COMPLETE and whose
    next ``running`` units are RUNNING."""
    text = textwrap.dedent(f"""\
        [search_space]
        learning_rate = {list(learning_rates)}
        batch_size = {list(batch_sizes)}

        [training]
        epochs = {EPOCHS}
        hidden_units = [16]
        validation_size = 100
        seed = 0
        repeats = {repeats}
        """)
    storage = open_storage(f"sqlite:///{folder}/s.db")
    without_fsync(storage.rdb.engine)
    study = lifecycle.open_study(storage, definitions.parse(text, "figures", "test"))
    all_units = units.grid_units(units.stored_grid(study), repeats)
    complete = len(all_units) if complete is None else complete
    for index, unit in enumerate(all_units[:complete + running]):
        trial = claims.start_trial(study, storage, unit, 1, "test")
        if index >= complete:  # left RUNNING, as a worker mid-training leaves it
            continue
        curves = history(unit)
        trial.set_user_attr("history", curves)
        trial.set_user_attr("best_epoch", EPOCHS)
        trial.set_user_attr("test_accuracy", curves["val_accuracy"][-1] - 0.001)
        study.tell(trial, curves["val_accuracy"][-1])
    return study


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of a PNG that decodes; fails on anything that is not one."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = plt.imread(path).shape[:2]
    return height, width


def test_a_full_grid_writes_all_three_figures(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    written = figures.write_all(study, tmp_path / "figures")
    assert written == [tmp_path / "figures" / name for name in FIGURES]
    for path in written:
        height, width = image_size(path)
        assert height > 300 and width > 500
        assert path.stat().st_size > 20_000


def test_a_partly_run_grid_draws_what_is_done(tmp_path: Path) -> None:
    study = make_study(tmp_path, complete=12, running=2)  # 9 points, 3 replicates: 27 units
    written = figures.write_all(study, tmp_path)
    assert [path.name for path in written] == FIGURES
    assert all(image_size(path) for path in written)


def test_nothing_complete_writes_only_the_heatmap(tmp_path: Path) -> None:
    study = make_study(tmp_path, complete=0, running=1)
    written = figures.write_all(study, tmp_path / "figures")
    assert written == [tmp_path / "figures" / "heatmap.png"]
    assert image_size(written[0])
    assert sorted(path.name for path in (tmp_path / "figures").iterdir()) == ["heatmap.png"]


def test_one_replicate_draws_every_figure(tmp_path: Path) -> None:
    study = make_study(tmp_path, repeats=1)
    written = figures.write_all(study, tmp_path)
    assert [path.name for path in written] == FIGURES
    assert all(path.stat().st_size > 20_000 for path in written)


def test_one_varying_hyperparameter_gets_the_ranked_bars(tmp_path: Path) -> None:
    study = make_study(tmp_path, batch_sizes=(64,), repeats=2)
    [heatmap] = [path for path in figures.write_all(study, tmp_path) if path.stem == "heatmap"]
    assert image_size(heatmap)


def point_rows(results: list[tuple[dict, list[float]]], repeats: int = 3) -> list[PointRow]:
    """Rows as ``table.point_rows`` orders them (best mean first) from per-replicate values."""
    summaries = statistics.summarise([statistics.PointResult(params, dict(enumerate(values)))
                                      for params, values in results])
    return [PointRow(summary, points.COMPLETE if summary.n == repeats else points.PENDING,
                     repeats) for summary in summaries]


def test_three_varying_hyperparameters_get_one_bar_per_point(tmp_path: Path) -> None:
    space = {"learning_rate": [0.0001, 0.001, 0.01], "batch_size": [32, 64, 128],
             "hidden_units": [[128, 64], [64], [32]]}
    grid = [{"learning_rate": rate, "batch_size": size, "hidden_units": units}
            for rate in space["learning_rate"] for size in space["batch_size"]
            for units in space["hidden_units"]]
    rows = point_rows([(params, [0.95 + 0.001 * index + 0.001 * r for r in range(3)])
                       for index, params in enumerate(grid[:-2])]
                      + [(grid[-2], [0.96]), (grid[-1], [])])  # one replicate done; none
    rows[0].mark, rows[1].mark, rows[2].mark = table.BEST, table.CONTENDER, table.RULED_OUT
    figure = grid_figure.draw_heatmap("three", space, rows)
    assert grid_figure.marked_cells(figure) == {
        points.format_params(row.summary.params): row.mark for row in rows[:3]}
    ruled_out = points.format_params(rows[2].summary.params)
    label = next(text for text in figure.axes[0].get_yticklabels()
                 if text.get_text() == ruled_out)
    assert any(text.get_text().endswith("ruled out") and text.get_position()[1] ==
               label.get_position()[1] for text in figure.axes[0].texts)
    height, width = image_size(grid_figure.plot_heatmap("three", space, rows, tmp_path / "h.png"))
    assert height > width  # 27 bars stacked; a grid of cells would be wide


def test_the_grid_marks_each_cell_as_the_verdict_says(tmp_path: Path) -> None:
    space = {"learning_rate": [0.0001, 0.001, 0.01], "batch_size": [32, 64, 128]}
    grid = [{"learning_rate": rate, "batch_size": size} for rate in space["learning_rate"]
            for size in space["batch_size"]]
    rows = point_rows([(params, [0.95 + 0.001 * index + 0.0001 * r for r in range(3)])
                       for index, params in enumerate(grid)])
    marks = [table.BEST, table.CONTENDER, table.CONTENDER] + [table.RULED_OUT] * 6
    for row, mark in zip(rows, marks, strict=True):
        row.mark = mark
    figure = grid_figure.draw_heatmap("grid", space, rows)
    assert grid_figure.marked_cells(figure) == {
        points.format_params(row.summary.params): row.mark for row in rows}
    # A ruled-out cell still shows its mean, and says why it carries no outline.
    texts = [text.get_text() for text in figure.axes[0].texts]
    for row in rows:
        shown = [text for text in texts if text.startswith(f"{row.summary.mean:.4f}")]
        assert len(shown) == 1 and shown[0].endswith("ruled out") == (row.mark == "ruled out")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [grid_figure.BEST_LABEL.format("highest"), grid_figure.CONTENDER_LABEL,
                      grid_figure.RULED_OUT_LABEL]


@pytest.mark.parametrize(("space", "expected"), [
    ({"learning_rate": [1, 2], "batch_size": [1, 2, 3]}, ["learning_rate", "batch_size"]),
    ({"learning_rate": [1, 2, 3], "batch_size": [1, 2]}, ["batch_size", "learning_rate"]),
    ({"learning_rate": [1, 2], "batch_size": [1, 2]}, ["learning_rate", "batch_size"]),
    ({"learning_rate": [1, 2], "batch_size": [1], "dropout": [0, 1]},
     ["learning_rate", "dropout"]),
    ({"learning_rate": [1, 2], "batch_size": [1, 2], "dropout": [0, 1]}, None),
    ({"learning_rate": [1, 2], "batch_size": [1]}, None),
])
def test_the_grid_puts_more_values_across_and_the_first_name_down(
        space: dict, expected: list[str] | None) -> None:
    assert grid_figure._grid_names(space) == expected


def test_replicate_curves_need_a_trial(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        figures.plot_replicate_curves([], tmp_path / "curves.png", "nothing")
    assert not (tmp_path / "curves.png").exists()


def test_one_reused_figure_draws_each_trial_its_own_curves(tmp_path: Path) -> None:
    import types

    from search.results.trial_figure import TrialCurves

    def trial(epochs: int, offset: float, best_epoch: int | None):
        values = [offset + 0.01 * epoch for epoch in range(epochs)]
        history = {"loss": values, "accuracy": values, "val_loss": values,
                   "val_accuracy": values}
        return types.SimpleNamespace(user_attrs={"history": history, "best_epoch": best_epoch})

    curves = TrialCurves()
    first = curves.draw(trial(4, 0.5, 4), tmp_path / "first.png", "first")
    second = curves.draw(trial(4, 0.9, None), tmp_path / "second.png", "second")
    longer = curves.draw(trial(7, 0.2, 3), tmp_path / "longer.png", "longer")
    again = curves.draw(trial(4, 0.5, 4), tmp_path / "again.png", "first")
    sizes = [path.stat().st_size for path in (first, second, longer)]
    assert all(size > 20_000 for size in sizes)
    assert first.read_bytes() != second.read_bytes() != longer.read_bytes()
    assert again.read_bytes() == first.read_bytes()  # nothing of the other trials stays


def test_write_all_takes_a_folder_named_by_a_string(tmp_path: Path) -> None:
    study = make_study(tmp_path, repeats=1)
    written = figures.write_all(study, str(tmp_path / "as-text"))
    assert written and all(path.parent == tmp_path / "as-text" for path in written)
