"""One trial's train and validation accuracy and loss over epochs, for optuna-dashboard.

Every trial draws this figure while its worker waits, so a ``TrialCurves`` keeps one figure
and redraws only what changes between trials (lines, titles, the best-epoch mark): building
axes, ticks and legends anew for each trial cost more than twice as much.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402

from search.study import points  # noqa: E402

ACCURACY_LABEL = "accuracy (fraction of images correct)"
LOSS_LABEL = "cross-entropy loss (nats per image)"
EPOCH_LABEL = "epoch (one pass over the training images)"


def panels(metric: str, mnist: bool) -> list[tuple[str, str]]:
    """(metric, axis label) of each panel: the objective's metric, then the loss."""
    base = metric.removeprefix("val_")
    names = [base, "loss"] if base != "loss" else ["loss"]
    labels = {"accuracy": ACCURACY_LABEL, "loss": LOSS_LABEL if mnist else "loss"}
    return [(name, labels.get(name, name)) for name in names]


class TrialCurves:
    """Draws trials' curves into one reused figure; ``draw`` writes one PNG per trial.

    ``metric`` is the study's objective (``val_accuracy``), ``mnist`` whether the model is
    the built-in MLP (whose loss is a cross-entropy in nats per image)."""

    def __init__(self, metric: str = "val_accuracy", mnist: bool = True) -> None:
        self._epochs = 0  # the figure is built for this many epochs; 0: not built yet
        self._panels = panels(metric, mnist)
        self._objective = metric

    def _build(self, epochs: int) -> None:
        # Wide enough for the title with one panel too (an objective that is the loss).
        self._figure = matplotlib.figure.Figure(figsize=(max(9.0, 5.5 * len(self._panels)), 4.2))
        self._figure.subplots_adjust(left=0.075, right=0.99, bottom=0.12, top=0.84, wspace=0.24)
        self._axes = dict(zip((metric for metric, _ in self._panels),
                              np.atleast_1d(self._figure.subplots(1, len(self._panels))),
                              strict=True))
        self._lines, self._best, self._legends = {}, {}, {}
        ticks = np.arange(1, epochs + 1)
        for metric, label in self._panels:
            axis = self._axes[metric]
            self._lines[metric] = axis.plot(ticks, ticks * 0.0, "o-", label="train")[0]
            self._lines[f"val_{metric}"] = axis.plot(ticks, ticks * 0.0, "s-",
                                                     label="validation")[0]
            self._best[metric] = axis.axvline(1, color="grey", linestyle=":",
                                              label=f"best {self._objective}")
            axis.set_xlabel(EPOCH_LABEL)
            axis.set_ylabel(label)
            axis.set_xticks(ticks)
            axis.grid(alpha=0.3)
            self._legends[metric] = axis.legend()
        self._title = self._figure.suptitle("")
        self._epochs = epochs

    def draw(self, trial: optuna.Trial | optuna.trial.FrozenTrial, path: Path,
             title: str) -> Path:
        """Train and validation curves of ``trial``, its best epoch marked."""
        history = trial.user_attrs[points.HISTORY]
        epochs = len(history["loss"])
        if epochs != self._epochs:
            self._build(epochs)
        best_epoch = trial.user_attrs.get(points.BEST_EPOCH)
        for metric, _ in self._panels:
            axis = self._axes[metric]
            self._lines[metric].set_ydata(history[metric])
            self._lines[f"val_{metric}"].set_ydata(history[f"val_{metric}"])
            self._best[metric].set_visible(bool(best_epoch))
            self._best[metric].set_xdata([best_epoch or 1] * 2)
            self._legends[metric].get_texts()[2].set_text(
                f"best {self._objective} (epoch {best_epoch})")
            axis.relim()
            axis.autoscale_view()
            axis.set_title(f"{metric}: validation {history[f'val_{metric}'][-1]:.4f} after the "
                           "last epoch")
        self._title.set_text(title)
        self._figure.savefig(path, dpi=110)
        return path
