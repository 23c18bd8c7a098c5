"""The study's summary, read from storage alone: a table, the best pair and figures.

Run it as ``python scripts/report.py --study mnist``. Nothing is retrained: every number
and curve comes from what the trials stored.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from search.errors import SearchError  # noqa: E402


@dataclasses.dataclass
class Row:
    params: dict[str, Any]
    state: str
    trial: FrozenTrial | None

    def get(self, key: str) -> Any:
        if self.trial is None:
            return None
        if key == "val_accuracy":
            return self.trial.value
        if key == "trial":
            return self.trial.number
        return self.trial.user_attrs.get(key)


def rows(study: optuna.Study) -> list[Row]:
    """One row per grid point, in grid order, with its COMPLETE trial if it has one."""
    budget = study.user_attrs.get("budget")
    if budget is None:
        raise SearchError(f"study '{study.study_name}' has no stored definition; "
                          "it was not made by search.run")
    space = budget["search_space"]
    names = list(space)
    result = [Row(dict(zip(names, values, strict=True)), "pending", None)
              for values in itertools.product(*space.values())]
    by_params = {tuple(row.params.values()): row for row in result}
    for trial in study.get_trials(deepcopy=False):
        row = by_params.get(tuple(trial.params.get(name) for name in names))
        if row is None:
            continue
        if row.state == "complete":
            continue
        if trial.state == TrialState.COMPLETE:
            row.state, row.trial = "complete", trial
        elif trial.state == TrialState.RUNNING:
            row.state, row.trial = "running", trial
        elif trial.state == TrialState.FAIL and row.state != "running":
            failure = str(trial.user_attrs.get("failure", "failed"))
            row.state = "failed" if failure.startswith("error") else "interrupted"
            row.trial = trial
    return result


def completed(table: list[Row]) -> list[Row]:
    return sorted((row for row in table if row.state == "complete"),
                  key=lambda row: row.get("val_accuracy"), reverse=True)


COLUMNS = ("val_accuracy", "best_epoch", "test_accuracy", "seconds", "state", "trial")


def records(table: list[Row]) -> list[dict[str, Any]]:
    """Flat dictionaries, best first, then the unfinished points."""
    ordered = completed(table) + [row for row in table if row.state != "complete"]
    return [{**row.params, **{column: (row.state if column == "state" else row.get(column))
                              for column in COLUMNS}} for row in ordered]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return str(value)


def format_table(table: list[Row]) -> str:
    data = records(table)
    if not data:
        return "(no grid points)"
    headers = list(data[0])
    cells = [[_cell(record[h]) for h in headers] for record in data]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def summary(study: optuna.Study) -> str:
    """The table, how much is done, and the best pair."""
    table = rows(study)
    done = sum(row.state == "complete" for row in table)
    lines = [f"study '{study.study_name}': {done} of {len(table)} grid points complete", "",
             format_table(table), ""]
    ranked = completed(table)
    if ranked:
        best = ranked[0]
        lines.append(f"best: {' '.join(f'{k}={v}' for k, v in best.params.items())} "
                     f"val_accuracy={best.get('val_accuracy'):.4f} "
                     f"test_accuracy={best.get('test_accuracy'):.4f} (trial {best.get('trial')})")
    else:
        lines.append("best: none yet (no grid point is complete)")
    failed = [row for row in table if row.state == "failed"]
    for row in failed:
        lines.append(f"failed: {row.params}: {row.trial.user_attrs.get('failure')}")
    return "\n".join(lines)


def to_csv(table: list[Row]) -> str:
    data = records(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(data[0]))
    writer.writeheader()
    writer.writerows(data)
    return buffer.getvalue()


def to_json(table: list[Row]) -> str:
    return json.dumps(records(table), indent=2)


def plot_curves(trial: FrozenTrial, path: Path, title: str) -> Path:
    """Train and validation accuracy and loss of one trial, over epochs."""
    history = trial.user_attrs["history"]
    epochs = np.arange(1, len(history["loss"]) + 1)
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, metric, label in ((accuracy_axis, "accuracy", "accuracy"),
                                (loss_axis, "loss", "cross-entropy loss")):
        axis.plot(epochs, history[metric], "o-", label="train")
        axis.plot(epochs, history[f"val_{metric}"], "s-", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_xticks(epochs)
        axis.grid(alpha=0.3)
        axis.legend()
    best_epoch = trial.user_attrs.get("best_epoch")
    if best_epoch:
        accuracy_axis.axvline(best_epoch, color="grey", linestyle=":", label="best epoch")
    accuracy_axis.set_title("accuracy")
    loss_axis.set_title("loss")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_heatmap(study: optuna.Study, table: list[Row], path: Path) -> Path:
    """Validation accuracy over the learning-rate x batch-size grid, cells annotated."""
    space = study.user_attrs["budget"]["search_space"]
    rates, sizes = space["learning_rate"], space["batch_size"]
    values = np.full((len(rates), len(sizes)), np.nan)
    for row in table:
        if row.state == "complete":
            i, j = rates.index(row.params["learning_rate"]), sizes.index(row.params["batch_size"])
            values[i, j] = row.get("val_accuracy")
    figure, axis = plt.subplots(figsize=(6, 4.5))
    image = axis.imshow(values, cmap="viridis", aspect="auto")
    colour_bar = figure.colorbar(image, ax=axis)
    colour_bar.set_label("validation accuracy (last epoch)")
    axis.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    axis.set_yticks(range(len(rates)), [str(r) for r in rates])
    axis.set_xlabel("batch size (images per step)")
    axis.set_ylabel("learning rate (Adam)")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), value in np.ndenumerate(values):
        text = "not run" if np.isnan(value) else f"{value:.4f}"
        colour = "black" if np.isfinite(value) and value > middle else "white"
        axis.text(j, i, text, ha="center", va="center", color=colour)
    axis.set_title(f"{study.study_name}: validation accuracy per grid point")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_validation_overlay(table: list[Row], path: Path, title: str) -> Path:
    """Every finished trial's validation accuracy per epoch, one line each."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for row in completed(table):
        history = row.trial.user_attrs.get("history", {})
        values = history.get("val_accuracy", [])
        label = " ".join(f"{k}={v}" for k, v in row.params.items())
        axis.plot(range(1, len(values) + 1), values, marker=".", label=label)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_figures(study: optuna.Study, out_dir: Path) -> list[Path]:
    """The best trial's curves, the heatmap and the overlay, as PNGs in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = rows(study)
    ranked = completed(table)
    written = []
    if ranked:
        best = ranked[0]
        params = " ".join(f"{k}={v}" for k, v in best.params.items())
        written.append(plot_curves(best.trial, out_dir / "best_trial_curves.png",
                                   f"{study.study_name}, best trial: {params}"))
        written.append(plot_validation_overlay(
            table, out_dir / "validation_curves.png",
            f"{study.study_name}: validation accuracy of every trial"))
    if "learning_rate" in study.user_attrs["budget"]["search_space"]:
        written.append(plot_heatmap(study, table, out_dir / "heatmap.png"))
    return written
