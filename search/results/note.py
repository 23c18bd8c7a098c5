"""The study's note in optuna-dashboard: the per-point table and the verdict, and the
verdict per point as the study user attribute ``verdict`` (the dashboard lists a study's
user attributes; a finished trial's attributes can no longer be changed, so the verdict is
kept on the study).

The process that started a run rewrites both after each trial; the workers never do, so
that no worker loads the report's statistics.
"""

from __future__ import annotations

import warnings

import optuna
import optuna_dashboard

from search.results import table
from search.study import points
from search.study.storage import Storage

VERDICT = "verdict"


def per_point(rows: list[table.PointRow]) -> list[str]:
    """One line per point with a result, best first: its params, its mark and mean."""
    return [f"{points.format_params(row.summary.params)}: {row.mark} "
            f"(mean {row.summary.adjusted_mean:.4f}, n={row.summary.n})"
            for row in rows if row.mark]


class StudyNote:
    """Rewrites the study's note from storage; called with the trial that ended, if any."""

    def __init__(self, storage: Storage, study_name: str) -> None:
        self.storage = storage
        self.study_name = study_name

    def __call__(self, trial: optuna.trial.FrozenTrial | None = None) -> None:
        study = optuna.load_study(study_name=self.study_name, storage=self.storage.rdb)
        optuna_dashboard.save_note(study, table.markdown(study))
        study.set_user_attr(VERDICT, per_point(table.point_rows(study)[0]))
        if study.metric_names is None:  # the dashboard's plots then say what the value is
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([points.objective_of(study)[0]])
