"""The report's CSV files: one row per grid point (``--csv FILE``), one per unit
(``FILE.trials.csv``)."""

from __future__ import annotations

import csv
import io

import optuna

from search.results.table import point_rows, records, unit_rows
from search.study import points
from search.study.points import format_value


def to_csv(study: optuna.Study) -> str:
    """One row per grid point: the table, as numbers."""
    data = records(point_rows(study)[0])
    buffer = io.StringIO()
    if data:
        writer = csv.DictWriter(buffer, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    return buffer.getvalue()


def trials_csv(study: optuna.Study) -> str:
    """One row per unit: its replicate, state, trial and numbers."""
    limit = points.max_attempts(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    statuses = unit_rows(study)
    names = list(statuses[0].unit.params) if statuses else []
    metric = points.objective_of(study)[0]
    writer.writerow([*names, "replicate", "state", "trial", metric, points.BEST_EPOCH,
                     points.test_name(metric), points.SECONDS])
    for status in statuses:
        trial = status.complete or status.running
        attrs = trial.user_attrs if trial else {}
        writer.writerow([*(format_value(status.unit.params[n]) for n in names),
                         status.unit.replicate, status.state(limit),
                         trial.number if trial else "", status.complete.value
                         if status.complete else "", attrs.get(points.BEST_EPOCH, ""),
                         _blank(trial and points.test_score(trial, metric)),
                         attrs.get(points.SECONDS, "")])
    return buffer.getvalue()


def _blank(value: float | None) -> float | str:
    return "" if value is None else value
