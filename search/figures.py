"""The report's figures, drawn from stored trials: curves, the grid heatmap, the overlay.

``python scripts/report.py --study mnist`` writes them; each trial's curves are also attached
to it for optuna-dashboard (``search.artifacts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402

if TYPE_CHECKING:
    from search.report import Row

ACCURACY_LABEL = "accuracy (fraction of images correct)"
EPOCH_LABEL = "epoch (one pass over the training images)"
LINE_STYLES = ("-", "--", ":", "-.")


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_curves(trial: optuna.Trial | optuna.trial.FrozenTrial, path: Path, title: str) -> Path:
    """Train and validation accuracy and loss of one trial, over epochs, best epoch marked."""
    history = trial.user_attrs["history"]
    epochs = np.arange(1, len(history["loss"]) + 1)
    best_epoch = trial.user_attrs.get("best_epoch")
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, metric, label in ((accuracy_axis, "accuracy", ACCURACY_LABEL),
                                (loss_axis, "loss", "cross-entropy loss (nats per image)")):
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
    return _save(figure, path)


def plot_heatmap(study_name: str, space: dict[str, list], table: list[Row], path: Path) -> Path:
    """Validation accuracy over the learning-rate x batch-size grid, cells annotated."""
    rates, sizes = space["learning_rate"], space["batch_size"]
    values = np.full((len(rates), len(sizes)), np.nan)
    states = np.full(values.shape, "not run", dtype=object)
    for row in table:
        i, j = rates.index(row.params["learning_rate"]), sizes.index(row.params["batch_size"])
        states[i, j] = row.state
        if row.state == "complete":
            values[i, j] = row.get("val_accuracy")
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    figure, axis = plt.subplots(figsize=(6.5, 4.8))
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, aspect="auto")
    figure.colorbar(image, ax=axis).set_label("validation accuracy after the last epoch")
    axis.set_xticks(range(len(sizes)), [str(size) for size in sizes])
    axis.set_yticks(range(len(rates)), [f"{rate:g}" for rate in rates])
    axis.set_xlabel("batch size (images per gradient step)")
    axis.set_ylabel("learning rate (Adam step size)")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), value in np.ndenumerate(values):
        text = states[i, j] if np.isnan(value) else f"{value:.4f}"
        colour = "white" if np.isfinite(value) and value < middle else "black"
        axis.text(j, i, text, ha="center", va="center", color=colour, fontsize=11)
    if finite.size:
        i, j = np.unravel_index(np.nanargmax(values), values.shape)
        axis.add_patch(matplotlib.patches.Rectangle(
            (j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=3,
            label="best grid point"))
        axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    done = int(np.isfinite(values).sum())
    axis.set_title(f"{study_name}\nvalidation accuracy per grid point "
                   f"({done} of {values.size} complete)")
    return _save(figure, path)


def plot_validation_overlay(table: list[Row], path: Path, title: str) -> Path:
    """Every finished trial's validation accuracy per epoch: colour = learning rate,
    line style = batch size, the best trial drawn thicker."""
    finished = sorted((row for row in table if row.state == "complete"),
                      key=lambda row: row.get("val_accuracy"), reverse=True)
    rates = sorted({row.params.get("learning_rate") for row in table}, key=str)
    sizes = sorted({row.params.get("batch_size") for row in table}, key=str)
    palette = matplotlib.colormaps["tab10"]
    figure, axis = plt.subplots(figsize=(10, 5))
    for rank, row in enumerate(finished):
        values = row.trial.user_attrs.get("history", {}).get("val_accuracy", [])
        best = rank == 0
        axis.plot(range(1, len(values) + 1), values, marker="o", markersize=4,
                  color=palette(rates.index(row.params.get("learning_rate")) % 10),
                  linestyle=LINE_STYLES[sizes.index(row.params.get("batch_size")) % 4],
                  linewidth=3 if best else 1.5,
                  label=f"{row.get('val_accuracy'):.4f}  {_params(row.params)}"
                        + ("  (best)" if best else ""))
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set_xlabel(EPOCH_LABEL)
    axis.set_ylabel(f"validation {ACCURACY_LABEL}")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(title="last-epoch validation accuracy, trial", fontsize=8, title_fontsize=8,
                loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)
