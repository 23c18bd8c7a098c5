"""The study's note in optuna-dashboard: the per-point table and the verdict.

The process that started a run rewrites it after each trial (and so does the report); the
workers never do, so that no worker loads the report's statistics.
"""

from __future__ import annotations

import warnings

import optuna
import optuna_dashboard

from search.results import table
from search.study import points
from search.study.storage import Storage


class StudyNote:
    """Rewrites the study's note from storage; called with the trial that ended, if any."""

    def __init__(self, storage: Storage, study_name: str) -> None:
        self.storage = storage
        self.study_name = study_name

    def __call__(self, trial: optuna.trial.FrozenTrial | None = None) -> None:
        study = optuna.load_study(study_name=self.study_name, storage=self.storage.rdb)
        optuna_dashboard.save_note(study, table.markdown(study))
        if study.metric_names is None:  # the dashboard's plots then say what the value is
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([points.objective_of(study)[0]])
