"""What a run left in the storage, as ``search.run_study`` returns it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from search.study import points

if TYPE_CHECKING:
    from search.results.export import ExportedModel
    from search.results.statistics import PointSummary


@dataclasses.dataclass
class StudyResult:
    """What a run left in the storage: every unit's state, the trials, the verdict."""

    name: str
    display_url: str  # the storage URL with any password masked
    study: optuna.Study
    states: list[str]  # per unit, in running order
    worker_failures: list[str] = dataclasses.field(default_factory=list)
    artifact_location: str | None = None  # the artifact store: the trials' figures, models

    @property
    def complete(self) -> int:
        return self.states.count(points.COMPLETE)

    @property
    def given_up(self) -> int:
        return self.states.count(points.GIVEN_UP)

    @property
    def finished(self) -> bool:
        return not set(self.states) & set(points.UNFINISHED)

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials()

    @property
    def best(self) -> PointSummary | None:
        """The verdict's best grid point, if any completed."""
        from search.results import table  # SciPy loads only when a verdict is asked for

        return table.verdict_of(self.study).best

    @property
    def ok(self) -> bool:
        """Nothing given up, no worker failed while units were left."""
        return not self.given_up and not (self.worker_failures and not self.finished)

    def export_best_model(self, path: str | Path) -> ExportedModel:
        """Write the best point's typical model to ``path`` (``search.results.export``)."""
        from search.results import export

        return export.export_best_model(self.study, path, self.artifact_location)
