"""The report's grid figure: mean validation accuracy per grid point, as a grid of cells
when exactly two hyperparameters vary, else as a ranked bar chart.

``plot_heatmap`` draws it; ``search.results.figures.write_all`` writes it as ``heatmap.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from search.results import plotting, statistics  # noqa: E402
from search.results.table import PointRow  # noqa: E402
from search.study import points  # noqa: E402
from search.study.points import format_params, format_value  # noqa: E402

MEAN_LABEL = "mean validation accuracy after the last epoch"
BEST_LABEL = "best (highest mean)"
TIED_LABEL = f"cannot be told from the best (paired t-test, {statistics.ALPHA * 100:g} %)"
# What an axis says about a hyperparameter beyond its name; unknown names show the name alone.
_MEANINGS = {"learning_rate": "optimizer step size", "batch_size": "images per gradient step"}


def _cell_text(row: PointRow, between: str = "\n") -> str:
    summary = row.summary
    if summary.n == 0:
        return "not run" if row.state == points.PENDING else row.state
    partial = f"{between}n={summary.n}" if summary.n < row.repeats else ""
    return plotting.mean_and_std(summary.mean, summary.std, between) + partial


def _draw_grid(axis: plt.Axes, space: dict[str, list], names: list[str],
               rows: list[PointRow]) -> None:
    """Rows of ``names[0]``, columns of ``names[1]``; colour = mean, cells annotated."""
    levels = [[points.normalised(value) for value in space[name]] for name in names]
    values = np.full((len(levels[0]), len(levels[1])), np.nan)
    cells = {}
    for row in rows:
        i, j = (level.index(points.normalised(row.summary.params[name]))
                for level, name in zip(levels, names, strict=True))
        cells[i, j] = row
        values[i, j] = row.summary.mean if row.summary.n else np.nan
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, aspect="auto")
    axis.figure.colorbar(image, ax=axis).set_label(MEAN_LABEL)
    for scale, level, name in zip((axis.yaxis, axis.xaxis), levels, names, strict=True):
        scale.set_ticks(range(len(level)), [format_value(value) for value in level])
        scale.set_label_text(f"{name} ({_MEANINGS[name]})" if name in _MEANINGS else name)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), row in cells.items():
        dark = np.isfinite(values[i, j]) and values[i, j] < middle  # viridis is dark when low
        axis.text(j, i, _cell_text(row), ha="center", va="center", fontsize=9,
                  color="white" if dark else "black")
        if row.best or row.tied_with_best:  # inset, so neighbouring outlines stay apart
            axis.add_patch(matplotlib.patches.Rectangle(
                (j - 0.46, i - 0.46), 0.92, 0.92, fill=False, zorder=3,
                **({"edgecolor": "red", "linewidth": 3.5} if row.best else
                   {"edgecolor": "orange", "linewidth": 2.5, "linestyle": "--"})))


def _draw_ranked(axis: plt.Axes, rows: list[PointRow]) -> None:
    """One bar per point, best at the top: bar = mean, error bar = std."""
    done = [row.summary for row in rows if row.summary.n]
    low = min((s.mean - (s.std or 0) for s in done), default=0.0)
    high = max((s.mean + (s.std or 0) for s in done), default=1.0)
    # Accuracies crowd near 1: starting the axis at 0 would hide every difference.
    left = max(0.0, low - max((high - low) * 0.15, 0.002))
    axis.set_xlim(left, high + (high - left) * 0.3)  # room for the numbers beside the bars
    positions = np.arange(len(rows))[::-1]
    for position, row in zip(positions, rows, strict=True):
        summary = row.summary
        if not summary.n:
            axis.text(left, position, f" {_cell_text(row)}", va="center", fontsize=8)
            continue
        colour = "red" if row.best else "orange" if row.tied_with_best else "grey"
        axis.barh(position, summary.mean, xerr=summary.std, color=colour, height=0.7,
                  capsize=3)
        axis.text(summary.mean + (summary.std or 0), position,
                  f"  {_cell_text(row, between=' ')}", va="center", fontsize=8)
    axis.set_yticks(positions, [format_params(row.summary.params) for row in rows], fontsize=8)
    axis.set_xlabel(MEAN_LABEL + (f" (the axis starts at {left:.3f})" if left else ""))
    axis.grid(axis="x", alpha=0.3)


def _grid_names(space: dict[str, list]) -> list[str] | None:
    """[y, x] when exactly two hyperparameters vary: more values go across, else the first
    in the space goes down."""
    varying = [name for name, values in space.items() if len(values) > 1]
    if len(varying) != 2:
        return None
    first, second = varying
    return [first, second] if len(space[second]) >= len(space[first]) else [second, first]


def plot_heatmap(study_name: str, space: dict[str, list], rows: list[PointRow],
                 path: Path) -> Path:
    """Mean validation accuracy per grid point: a grid when two hyperparameters vary, else a
    ranked bar chart; the best point red, those noise cannot tell from it orange."""
    names = _grid_names(space)
    size = (max(6.5, 1.5 * len(space[names[1]]) + 3), max(4.8, 1.1 * len(space[names[0]]) + 2.6)
            ) if names else (9.5, 2.4 + 0.38 * len(rows))
    figure, axis = plt.subplots(figsize=size, layout="constrained")
    if names:
        _draw_grid(axis, space, names, rows)
        handles = [matplotlib.patches.Patch(fill=False, edgecolor="red", linewidth=3.5),
                   matplotlib.patches.Patch(fill=False, edgecolor="orange", linewidth=2.5,
                                            linestyle="--")]
    else:
        _draw_ranked(axis, rows)
        handles = [matplotlib.patches.Patch(color=colour) for colour in ("red", "orange")]
    # One replicate gives no noise estimate, so nothing can be "tied": say only what is shown.
    labels = [BEST_LABEL, TIED_LABEL][:1 + any(row.summary.n > 1 for row in rows)]
    if any(row.best for row in rows):
        figure.legend(handles[:len(labels)], labels, loc="outside lower center",
                      ncols=len(labels), frameon=False, fontsize=9)
    repeats = max((row.repeats for row in rows), default=0)
    done = sum(row.state == points.COMPLETE for row in rows)
    axis.set_title(f"{study_name}\nmean validation accuracy over {repeats} replicate"
                   f"{'s' * (repeats != 1)} (± std)\n({done} of {len(rows)} points complete)")
    return plotting.save(figure, path)
