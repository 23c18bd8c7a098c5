"""The report's CSV files: one row per grid point or confirmed configuration (``--csv FILE``),
one per unit (``FILE.trials.csv``)."""

from __future__ import annotations

import csv
import io

import optuna

from search.results.table import point_rows, records, unit_rows
from search.study import points, stages
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
    """One row per unit: its replicate, state, trial and numbers; a sampled study's rows also
    name their stage (search or confirm), and a search unit not yet sampled has blank
    params."""
    limit = points.max_attempts(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    statuses = unit_rows(study)
    sampled = stages.is_sampled(study)
    if sampled:  # a search unit's params are {} until its first trial samples them
        names = list(study.user_attrs[points.BUDGET]["search_space"])
    else:
        names = list(statuses[0].unit.params) if statuses else []
    stage = ["stage"] if sampled else []  # a grid study's columns stay as they always were
    metric = points.objective_of(study)[0]
    writer.writerow([*names, *stage, "replicate", "state", "trial", metric, points.BEST_EPOCH,
                     points.test_name(metric), points.SECONDS])
    for status in statuses:
        trial = status.complete or status.running
        attrs = trial.user_attrs if trial else {}
        writer.writerow([*_unit_cells(status.unit, names, sampled), status.state(limit),
                         trial.number if trial else "", status.complete.value
                         if status.complete else "", attrs.get(points.BEST_EPOCH, ""),
                         _blank(trial and points.test_score(trial, metric)),
                         attrs.get(points.SECONDS, "")])
    return buffer.getvalue()


def _unit_cells(unit: points.Unit, names: list[str], sampled: bool) -> list[object]:
    """The unit's params (blank while a search unit is not sampled yet), its stage in a
    sampled study, its replicate."""
    params = [format_value(unit.params[name]) if name in unit.params else "" for name in names]
    return [*params, *([unit.stage] if sampled else []), unit.replicate]


def _blank(value: float | None) -> float | str:
    return "" if value is None else value
