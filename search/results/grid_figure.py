"""The report's grid figure: the objective's mean per grid point, as a grid of cells when
exactly two hyperparameters vary, else as a ranked bar chart, marked as the verdict says:
the best point outlined red, those that cannot be ruled out as best dashed orange, the ruled
out hatched grey and labelled, with a legend saying what each mark means.

``draw_heatmap`` returns the figure (``marked_cells`` reads its marks back); ``plot_heatmap``
saves it, and ``search.results.figures.write_all`` writes it as ``heatmap.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from search.results import plotting, statistics  # noqa: E402
from search.results.table import BEST, CONTENDER, RULED_OUT, PointRow  # noqa: E402
from search.study import points  # noqa: E402
from search.study.points import format_params, format_value  # noqa: E402

BEST_LABEL = "best: {} seed-adjusted mean"
CONTENDER_LABEL = (f"cannot be ruled out as best (Hsu's MCB, family-wise "
                   f"{statistics.ALPHA * 100:g} %)")
RULED_OUT_LABEL = "ruled out: another point is better by more than the MCB margin"
NO_NOISE_LABEL = "one replicate: no noise estimate, nothing ruled out"
# How each mark is drawn: an inset outline for the grid, a bar colour for the ranked chart.
_OUTLINES = {BEST: {"edgecolor": "red", "linewidth": 3.5},
             CONTENDER: {"edgecolor": "orange", "linewidth": 2.5, "linestyle": "--"},
             RULED_OUT: {"edgecolor": (0.25, 0.25, 0.25, 0.6), "linewidth": 0.6, "hatch": "//"}}
_BARS = {BEST: "red", CONTENDER: "orange", RULED_OUT: "lightgrey"}
# What an axis says about a hyperparameter beyond its name; unknown names show the name alone.
_MEANINGS = {"learning_rate": "optimizer step size", "batch_size": "images per gradient step"}


def _cell_text(row: PointRow, between: str = "\n") -> str:
    summary = row.summary
    if summary.n == 0:
        return "not run" if row.state == points.PENDING else row.state
    partial = f"{between}n={summary.n}" if summary.n < row.repeats else ""
    verdict = f"{between}ruled out" if row.mark == RULED_OUT else ""
    return plotting.mean_and_std(summary.mean, summary.std, between) + partial + verdict


def _outline(axis: plt.Axes, j: int, i: int, row: PointRow) -> None:
    """The cell's mark, inset so neighbouring outlines stay apart; its gid names it."""
    if row.mark in _OUTLINES:
        axis.add_patch(matplotlib.patches.Rectangle(
            (j - 0.46, i - 0.46), 0.92, 0.92, fill=False, zorder=3,
            gid=f"{row.mark}: {format_params(row.summary.params)}", **_OUTLINES[row.mark]))


def _draw_grid(axis: plt.Axes, space: dict[str, list], names: list[str],
               rows: list[PointRow], label: str) -> None:
    """Rows of ``names[0]``, columns of ``names[1]``; colour = seed-adjusted mean."""
    levels = [[points.normalised(value) for value in space[name]] for name in names]
    values = np.full((len(levels[0]), len(levels[1])), np.nan)
    cells = {}
    for row in rows:
        i, j = (level.index(points.normalised(row.summary.params[name]))
                for level, name in zip(levels, names, strict=True))
        cells[i, j] = row
        values[i, j] = row.summary.adjusted_mean if row.summary.n else np.nan
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, aspect="auto")
    axis.figure.colorbar(image, ax=axis).set_label(f"seed-adjusted mean {label}")
    for scale, level, name in zip((axis.yaxis, axis.xaxis), levels, names, strict=True):
        scale.set_ticks(range(len(level)), [format_value(value) for value in level])
        scale.set_label_text(f"{name} ({_MEANINGS[name]})" if name in _MEANINGS else name)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), row in cells.items():
        dark = np.isfinite(values[i, j]) and values[i, j] < middle  # viridis is dark when low
        # A ruled-out cell's hatching runs under its text: a pale box keeps the mean legible.
        box = {"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 2}
        ruled_out = row.mark == RULED_OUT
        axis.text(j, i, _cell_text(row), ha="center", va="center", fontsize=9, zorder=4,
                  color="white" if dark and not ruled_out else "black",
                  bbox=box if ruled_out else None)
        _outline(axis, j, i, row)


def _draw_ranked(axis: plt.Axes, rows: list[PointRow], label: str) -> None:
    """One bar per point, best at the top: bar = mean, error bar = std."""
    done = [row.summary for row in rows if row.summary.n]
    low = min((s.mean - (s.std or 0) for s in done), default=0.0)
    high = max((s.mean + (s.std or 0) for s in done), default=1.0)
    # Accuracies crowd near 1: starting the axis at 0 would hide every difference.
    left = max(0.0, low - max((high - low) * 0.15, 0.002)) if low >= 0 else low
    axis.set_xlim(left, high + (high - left) * 0.3)  # room for the numbers beside the bars
    positions = np.arange(len(rows))[::-1]
    for position, row in zip(positions, rows, strict=True):
        summary = row.summary
        if not summary.n:
            axis.text(left, position, f" {_cell_text(row)}", va="center", fontsize=8)
            continue
        axis.barh(position, summary.mean, xerr=summary.std, color=_BARS.get(row.mark, "grey"),
                  hatch=_OUTLINES[RULED_OUT]["hatch"] if row.mark == RULED_OUT else None,
                  height=0.7, capsize=3,
                  gid=f"{row.mark}: {format_params(summary.params)}" if row.mark else None)
        axis.text(summary.mean + (summary.std or 0), position,
                  f"  {_cell_text(row, between=' ')}", va="center", fontsize=8)
    axis.set_yticks(positions, [format_params(row.summary.params) for row in rows], fontsize=8)
    axis.set_xlabel(f"mean {label}" + (f" (the axis starts at {left:.3f})" if left else ""))
    axis.grid(axis="x", alpha=0.3)


def _legend(figure: plt.Figure, rows: list[PointRow], grid: bool, maximize: bool) -> None:
    """One entry per mark on the figure, saying what it means."""
    noise = any(row.summary.n > 1 for row in rows)
    labels = {BEST: BEST_LABEL.format("highest" if maximize else "lowest"),
              CONTENDER: CONTENDER_LABEL if noise else NO_NOISE_LABEL,
              RULED_OUT: RULED_OUT_LABEL}
    shown = [mark for mark in labels if any(row.mark == mark for row in rows)]
    if grid:
        handles = [matplotlib.patches.Patch(fill=False, **_OUTLINES[mark]) for mark in shown]
    else:
        handles = [matplotlib.patches.Patch(facecolor=_BARS[mark], hatch=_OUTLINES[mark].get(
            "hatch")) for mark in shown]
    if shown:
        figure.legend(handles, [labels[mark] for mark in shown], loc="outside lower center",
                      ncols=1 if len(shown) > 2 else len(shown), frameon=False, fontsize=9)


def _grid_names(space: dict[str, list]) -> list[str] | None:
    """[y, x] when exactly two hyperparameters vary: more values go across, else the first
    in the space goes down."""
    varying = [name for name, values in space.items() if len(values) > 1]
    if len(varying) != 2:
        return None
    first, second = varying
    return [first, second] if len(space[second]) >= len(space[first]) else [second, first]


def draw_heatmap(study_name: str, space: dict[str, list], rows: list[PointRow],
                 label: str = "validation accuracy", maximize: bool = True) -> plt.Figure:
    """The objective's mean per grid point: a grid when two hyperparameters vary, else a
    ranked bar chart; marked as the rows' verdict marks say (``PointRow.mark``)."""
    names = _grid_names(space)
    size = (max(6.5, 1.5 * len(space[names[1]]) + 3), max(5.2, 1.1 * len(space[names[0]]) + 3)
            ) if names else (9.5, 2.8 + 0.38 * len(rows))
    figure, axis = plt.subplots(figsize=size, layout="constrained")
    if names:
        _draw_grid(axis, space, names, rows, label)
    else:
        _draw_ranked(axis, rows, label)
    _legend(figure, rows, names is not None, maximize)
    repeats = max((row.repeats for row in rows), default=0)
    done = sum(row.state == points.COMPLETE for row in rows)
    axis.set_title(f"{study_name}\nmean {label} over {repeats} replicate"
                   f"{'s' * (repeats != 1)} (± std)\n({done} of {len(rows)} points complete)")
    return figure


def marked_cells(figure: plt.Figure) -> dict[str, str]:
    """The figure's marks: each marked point (``lr=0.001 batch=32``) -> its mark."""
    found = {}
    for artist in figure.axes[0].get_children():
        gid = artist.get_gid()
        if gid:
            mark, _, point = gid.partition(": ")
            found[point] = mark
    return found


def plot_heatmap(study_name: str, space: dict[str, list], rows: list[PointRow], path: Path,
                 label: str = "validation accuracy", maximize: bool = True) -> Path:
    """Draw the grid figure (``draw_heatmap``) and save it to ``path``."""
    return plotting.save(draw_heatmap(study_name, space, rows, label, maximize), path)
