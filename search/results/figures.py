"""The report's figures, drawn from stored trials: the best point's replicates, the grid, the
overlay of every point's mean validation curve.

``write_all(study, folder)`` writes them for the report; each trial's own curves
(``plot_curves``) are also attached to it for optuna-dashboard (``search.results.artifacts``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.figure  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402

from search.results import statistics  # noqa: E402
from search.results.statistics import format_params, format_value  # noqa: E402
from search.results.table import PointRow, point_rows  # noqa: E402
from search.study import points  # noqa: E402

ACCURACY_LABEL = "accuracy (fraction of images correct)"
LOSS_LABEL = "cross-entropy loss (nats per image)"
EPOCH_LABEL = "epoch (one pass over the training images)"
MEAN_LABEL = "mean validation accuracy after the last epoch"
LINE_STYLES = ("-", "--", ":", "-.")
BEST_LABEL = "best (highest mean)"
TIED_LABEL = f"cannot be told from the best (paired t-test, {statistics.ALPHA * 100:g} %)"
# What an axis says about a hyperparameter beyond its name; unknown names show the name alone.
_MEANINGS = {"learning_rate": "Adam step size", "batch_size": "images per gradient step"}


def _save(figure: plt.Figure, path: Path) -> Path:
    # The report's figures use constrained layout, which keeps their outside legends in view.
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_curves(trial: optuna.Trial | optuna.trial.FrozenTrial, path: Path, title: str) -> Path:
    """Train and validation accuracy and loss of one trial, over epochs, best epoch marked."""
    history = trial.user_attrs["history"]
    epochs = np.arange(1, len(history["loss"]) + 1)
    best_epoch = trial.user_attrs.get("best_epoch")
    # Every trial draws this figure for the dashboard while its worker waits: a fixed
    # layout instead of tight_layout, and no pyplot state, roughly halve its cost.
    figure = matplotlib.figure.Figure(figsize=(11, 4.2))
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.12, top=0.84, wspace=0.22)
    accuracy_axis, loss_axis = figure.subplots(1, 2)
    for axis, metric, label in ((accuracy_axis, "accuracy", ACCURACY_LABEL),
                                (loss_axis, "loss", LOSS_LABEL)):
        axis.plot(epochs, history[metric], "o-", label="train")
        axis.plot(epochs, history[f"val_{metric}"], "s-", label="validation")
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle=":",
                         label=f"best validation accuracy (epoch {best_epoch})")
        axis.set_xlabel(EPOCH_LABEL)
        axis.set_ylabel(label)
        axis.set_xticks(epochs)
        axis.grid(alpha=0.3)
        axis.legend()
    accuracy_axis.set_title(f"accuracy: validation {history['val_accuracy'][-1]:.4f} "
                            "after the last epoch")
    loss_axis.set_title(f"loss: validation {history['val_loss'][-1]:.4f} after the last epoch")
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    return path


def _mean_and_std(mean: float, std: float | None, between: str = " ") -> str:
    """``0.9751 ± 0.0012``; one replicate has no spread, so its std reads ``-``."""
    return f"{mean:.4f}{between}± {'-' if std is None else f'{std:.4f}'}"


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


def plot_replicate_curves(trials: list[FrozenTrial], path: Path, title: str) -> Path:
    """One grid point's replicates: each one's train (dashed) and validation (solid) accuracy
    and loss thin, their means over the replicates thick."""
    if not trials:
        raise ValueError("plot_replicate_curves needs at least one trial")
    ordered = sorted(trials, key=lambda trial: trial.user_attrs.get(points.REPLICATE, 0))
    histories = [trial.user_attrs["history"] for trial in ordered]
    palette = matplotlib.colormaps["tab10"]
    single = len(histories) == 1  # one replicate is its own mean: draw it plainly
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    for axis, metric, label in zip(axes, ("accuracy", "loss"), (ACCURACY_LABEL, LOSS_LABEL),
                                   strict=True):
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
        shown = f"{last[0]:.4f} (one replicate, no std)" if single else _mean_and_std(
            float(np.mean(last)), float(np.std(last, ddof=1)))
        axis.set_title(f"{metric}: validation {shown} after the last epoch")
        _epoch_axis(axis, label)
        axis.legend(fontsize=8)
    lines = "solid: validation, dashed: train"
    figure.suptitle(f"{title}\n" + (lines if single else
                                    f"thin: each replicate, thick: their mean; {lines}"))
    return _save(figure, path)


def _cell_text(row: PointRow, between: str = "\n") -> str:
    summary = row.summary
    if summary.n == 0:
        return "not run" if row.state == points.PENDING else row.state
    partial = f"{between}n={summary.n}" if summary.n < row.repeats else ""
    return _mean_and_std(summary.mean, summary.std, between) + partial


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
    return _save(figure, path)


def _complete_trials(study: optuna.Study) -> dict[str, list[FrozenTrial]]:
    """Each grid point's COMPLETE trials (one per finished replicate), by canonical params."""
    found: dict[str, list[FrozenTrial]] = {}
    for status in points.unit_status(study):
        if status.complete is not None:
            found.setdefault(points.canonical(status.unit.params), []).append(status.complete)
    return found


def plot_validation_overlay(study: optuna.Study, rows: list[PointRow], path: Path,
                            title: str) -> Path:
    """Every point's mean validation accuracy per epoch over its finished replicates: colour
    = first varying hyperparameter, line style = second, the best point thicker."""
    trials = _complete_trials(study)
    grid = points.stored_grid(study)
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
        curve = _mean_curve([trial.user_attrs["history"]
                             for trial in trials[points.canonical(params)]], "val_accuracy")
        axis.plot(np.arange(1, len(curve) + 1), curve, marker="o", markersize=3,
                  color=palette(colour % 10), linestyle=LINE_STYLES[style % 4],
                  linewidth=3 if row.best else 1.5,
                  label=f"{_mean_and_std(row.summary.mean, row.summary.std)}  "
                        f"{format_params(params)}" + ("  (best)" if row.best else ""))
    _epoch_axis(axis, f"validation {ACCURACY_LABEL}")
    axis.set_title(title)
    figure.legend(title="last-epoch accuracy (mean ± std over replicates), grid point",
                  fontsize=8, title_fontsize=8, loc="outside right upper")
    return _save(figure, path)


def write_all(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Write the report's figures into ``out_dir`` and return them; only ``heatmap.png``
    is written before a replicate has finished."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, _ = point_rows(study)
    written = []
    best = next((row for row in rows if row.best), None)
    if best is not None:
        trials = _complete_trials(study)[points.canonical(best.summary.params)]
        written.append(plot_replicate_curves(
            trials, out_dir / "best_point_curves.png",
            f"{study.study_name}: best grid point {format_params(best.summary.params)}"))
    written.append(plot_heatmap(study.study_name, study.user_attrs[points.BUDGET]["search_space"],
                                rows, out_dir / "heatmap.png"))
    if any(row.summary.n for row in rows):
        written.append(plot_validation_overlay(
            study, rows, out_dir / "validation_curves.png",
            f"{study.study_name}: mean validation accuracy per epoch of every grid point"))
    return written
