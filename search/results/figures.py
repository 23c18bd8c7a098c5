"""The report's figures, drawn from stored trials: the best point's replicates, the grid, the
overlay of every point's mean validation curve.

``write_all(study, folder)`` writes them for the report. This module draws the curves; the
grid is ``search.results.grid_figure``'s, a sampled study's search stage
``search.results.search_figures``'s, and each trial's own figure for optuna-dashboard
``search.results.trial_figure``'s.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.figure  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402

from search.results import (  # noqa: E402
    grid_figure,
    plotting,
    search_figures,
    trial_figure,
    wording,
)
from search.results.table import PointRow, objective_of, point_rows  # noqa: E402
from search.results.trial_figure import EPOCH_LABEL  # noqa: E402
from search.study import points, stages, units  # noqa: E402
from search.study.points import format_params, format_value  # noqa: E402

LINE_STYLES = ("-", "--", ":", "-.")


def _mean_curve(histories: list[dict[str, list[float]]], key: str) -> np.ndarray:
    # Replicates of one study train the same epochs; should one history be shorter anyway,
    # the mean covers the epochs they all have rather than failing the whole report.
    length = min(len(history[key]) for history in histories)
    return np.mean([history[key][:length] for history in histories], axis=0)


def _epoch_axis(axis: plt.Axes, label: str) -> None:
    axis.set_xlabel(EPOCH_LABEL)
    axis.set_ylabel(label)
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def plot_replicate_curves(trials: list[FrozenTrial], path: Path, title: str,
                          metric: str = "val_accuracy", mnist: bool = True) -> Path:
    """One grid point's replicates: each one's train (dashed) and validation (solid) curves
    of the objective's ``metric`` and of the loss thin, their means over the replicates
    thick."""
    if not trials:
        raise ValueError("plot_replicate_curves needs at least one trial")
    ordered = sorted(trials, key=lambda trial: trial.user_attrs.get(points.REPLICATE, 0))
    histories = [trial.user_attrs[points.HISTORY] for trial in ordered]
    palette = matplotlib.colormaps["tab10"]
    single = len(histories) == 1  # one replicate is its own mean: draw it plainly
    panels = trial_figure.panels(metric, mnist)
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8),
                                layout="constrained", squeeze=False)
    for axis, (metric, label) in zip(axes[0], panels, strict=True):
        for index, (trial, history) in enumerate(zip(ordered, histories, strict=True)):
            epochs = np.arange(1, len(history[metric]) + 1)
            style = {"color": palette(index % 10), "linewidth": 2 if single else 1,
                     "alpha": 1 if single else 0.55}
            axis.plot(epochs, history[metric], "--", **style)
            axis.plot(epochs, history[f"val_{metric}"], "-", **style,
                      label=f"replicate {trial.user_attrs.get(points.REPLICATE, index) + 1}")
        means = [] if single else [(metric, "--", "train"), (f"val_{metric}", "-", "validation")]
        for key, line, name in means:
            mean = _mean_curve(histories, key)
            axis.plot(np.arange(1, len(mean) + 1), mean, line, color="black", linewidth=2.8,
                      label=f"{name}, mean of {len(histories)}")
        last = [history[f"val_{metric}"][-1] for history in histories]
        shown = f"{last[0]:.4f} (one replicate, no std)" if single else plotting.mean_and_std(
            float(np.mean(last)), float(np.std(last, ddof=1)))
        axis.set_title(f"{metric}: validation {shown} after the last epoch")
        _epoch_axis(axis, label)
        axis.legend(fontsize=8)
    lines = "solid: validation, dashed: train"
    figure.suptitle(f"{title}\n" + (lines if single else
                                    f"thin: each replicate, thick: their mean; {lines}"))
    return plotting.save(figure, path)



def _complete_trials(statuses: list[points.UnitStatus]) -> dict[str, list[FrozenTrial]]:
    """Each grid point's (or confirmed configuration's) COMPLETE trials, one per finished
    replicate, by canonical params. A sampled study's search trials are left out: the one
    that chose a configuration shares its params, but it is not one of its replicates."""
    found: dict[str, list[FrozenTrial]] = {}
    for status in stages.configurations_confirmed(statuses):
        if status.complete is not None:
            found.setdefault(points.canonical(status.unit.params), []).append(status.complete)
    return found


def plot_validation_overlay(study: optuna.Study, rows: list[PointRow], path: Path,
                            title: str) -> Path:
    """Every point's mean validation curve of the objective per epoch over its finished
    replicates: colour = first varying hyperparameter, line style = second, the best point
    thicker."""
    metric = points.objective_of(study)[0]
    trials = _complete_trials(units.unit_status(study))
    grid = units.stored_grid(study)
    # Each varying hyperparameter's values in the definition's order: its colours or styles.
    levels = {name: list(dict.fromkeys(format_value(point[name]) for point in grid))
              for name in grid[0]}
    varying = [name for name, values in levels.items() if len(values) > 1][:2]
    palette = matplotlib.colormaps["tab10"]
    figure, axis = plt.subplots(figsize=(10, 5), layout="constrained")
    for row in (row for row in rows if row.summary.n):
        params = row.summary.params
        colour, style = ([levels[name].index(format_value(params[name])) for name in varying]
                         + [0, 0])[:2]
        curve = _mean_curve([trial.user_attrs[points.HISTORY]
                             for trial in trials[points.canonical(params)]], metric)
        axis.plot(np.arange(1, len(curve) + 1), curve, marker="o", markersize=3,
                  color=palette(colour % 10), linestyle=LINE_STYLES[style % 4],
                  linewidth=3 if row.best else 1.5,
                  label=f"{plotting.mean_and_std(row.summary.mean, row.summary.std)}  "
                        f"{format_params(params)}" + ("  (best)" if row.best else ""))
    _epoch_axis(axis, wording.label(metric))
    axis.set_title(title)
    figure.legend(title=f"last-epoch {metric} (mean ± std over replicates), grid point",
                  fontsize=8, title_fontsize=8, loc="outside right upper")
    return plotting.save(figure, path)


def write_all(study: optuna.Study, out_dir: str | Path) -> list[Path]:
    """Write the report's figures into ``out_dir`` and return them. A grid study's are its
    best point's curves, its heatmap (written before a replicate has finished too) and its
    overlay; a sampled study's are its best confirmed configuration's curves and its search
    stage's figures (``search_figures``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, _ = point_rows(study)
    statuses = units.unit_status(study)
    sampled = stages.is_sampled(study)
    written = []
    best = next((row for row in rows if row.best), None)
    maximize, metric = objective_of(study)
    if best is not None:
        trials = _complete_trials(statuses)[points.canonical(best.summary.params)]
        params = format_params(best.summary.params)
        title = (f"{study.study_name}: best confirmed configuration, its confirm stage's runs"
                 f"\n{params}") if sampled else f"{study.study_name}: best grid point {params}"
        written.append(plot_replicate_curves(
            trials, out_dir / "best_point_curves.png", title,
            metric, "model" not in study.user_attrs[points.BUDGET]))
    if sampled:  # no grid to map; its configurations' curves are the search figures' points
        return written + search_figures.write_search(study, statuses, out_dir)
    written.append(grid_figure.plot_heatmap(
        study.study_name, study.user_attrs[points.BUDGET]["search_space"], rows,
        out_dir / "heatmap.png", wording.label(metric), maximize))
    if any(row.summary.n for row in rows):
        written.append(plot_validation_overlay(
            study, rows, out_dir / "validation_curves.png",
            f"{study.study_name}: mean {metric} per epoch of every grid point"))
    return written
