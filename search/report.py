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

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import figures
from search.errors import SearchError


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


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if column == "seconds":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return str(value)


def format_table(table: list[Row]) -> str:
    data = records(table)
    if not data:
        return "(no grid points)"
    headers = list(data[0])
    cells = [[_cell(record[h], h) for h in headers] for record in data]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


def best_line(table: list[Row]) -> str:
    """``best: learning_rate=... batch_size=... val_accuracy=...``, or that there is none."""
    ranked = completed(table)
    if not ranked:
        return "best: none yet (no grid point is complete)"
    best = ranked[0]
    return (f"best: {_params(best.params)} val_accuracy={best.get('val_accuracy'):.4f} "
            f"test_accuracy={best.get('test_accuracy'):.4f} (trial {best.get('trial')})")


def _progress(study: optuna.Study, table: list[Row]) -> str:
    done = sum(row.state == "complete" for row in table)
    return f"study '{study.study_name}': {done} of {len(table)} grid points complete"


def summary(study: optuna.Study) -> str:
    """The table, how much is done, and the best pair."""
    table = rows(study)
    lines = [_progress(study, table), "", format_table(table), "", best_line(table)]
    failed = [row for row in table if row.state == "failed"]
    for row in failed:
        lines.append(f"failed: {row.params}: {row.trial.user_attrs.get('failure')}")
    return "\n".join(lines)


def markdown(study: optuna.Study) -> str:
    """The summary as Markdown: the study's note in optuna-dashboard."""
    table = rows(study)
    data = records(table)
    headers = list(data[0])
    lines = [f"### {_progress(study, table)}", "", f"**{best_line(table)}**", "",
             "| " + " | ".join(headers) + " |", "|" + " ---: |" * len(headers)]
    lines += ["| " + " | ".join(_cell(record[h], h) for h in headers) + " |"
              for record in data]
    lines += ["", "val_accuracy is the last epoch's. Each trial's page lists its accuracy and "
              "loss curves and its history as artifacts. Full report: "
              f"`python scripts/report.py --study {study.study_name}`"]
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


def write_figures(study: optuna.Study, out_dir: Path) -> list[Path]:
    """The best trial's curves, the heatmap and the overlay, as PNGs in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = rows(study)
    ranked = completed(table)
    space = study.user_attrs["budget"]["search_space"]
    written = []
    if ranked:
        best = ranked[0]
        written.append(figures.plot_curves(
            best.trial, out_dir / "best_trial_curves.png",
            f"{study.study_name}, best trial #{best.get('trial')}: {_params(best.params)}"))
        written.append(figures.plot_validation_overlay(
            table, out_dir / "validation_curves.png",
            f"{study.study_name}: validation accuracy of every finished trial"))
    written.append(figures.plot_heatmap(study.study_name, space, table,
                                        out_dir / "heatmap.png"))
    return written
