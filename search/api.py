"""Run a study from Python, with plain values; the command line is a thin layer over this.

    >>> import search
    >>> result = search.run_study("mnist", quick=True, data_dir="../shared/mnist")
    >>> result.complete, result.best.params
    >>> print(search.summary(result.study))
    >>> result.export_best_model("best.keras").line()

``run_study`` opens (or creates) the study, runs its units in this process or in
``workers`` processes, and returns a ``StudyResult``: each unit's state, the trials and the
verdict's best point. It raises ``SearchError`` (one line) on bad input and ``Interrupted``
on Ctrl-C, with the interrupted trial's checkpoint kept for the rerun.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from search import definition as definitions
from search.errors import SearchError
from search.options import RunOptions, make_options
from search.study import lifecycle, points
from search.study.storage import Storage, open_storage, storage_errors
from search.training.checkpoints import CheckpointStore
from search.worker.loop import Interrupted

if TYPE_CHECKING:
    from search.results.export import ExportedModel
    from search.results.statistics import PointSummary


@dataclasses.dataclass
class StudyResult:
    """What a run left in the storage: every unit's state, the trials, the verdict."""

    name: str
    storage_url: str  # with any password masked
    study: optuna.Study
    states: list[str]  # per unit, in running order
    worker_failures: list[str] = dataclasses.field(default_factory=list)
    artifact_dir: Path | None = None  # the trials' figures and models

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
        """The verdict's best grid point (by mean validation accuracy), if any completed."""
        from search.results import table  # SciPy loads only when a verdict is asked for

        return table.verdict_of(self.study).best

    @property
    def ok(self) -> bool:
        """Nothing given up, no worker failed while units were left."""
        return not self.given_up and not (self.worker_failures and not self.finished)

    def export_best_model(self, path: str | Path) -> ExportedModel:
        """Write the best point's typical model to ``path`` (``search.results.export``)."""
        from search.results import export

        return export.export_best_model(self.study, path, self.artifact_dir)


def run_study(study: str | definitions.StudyDefinition, *, storage: str | None = None,
              studies_dir: str | Path | None = None, **settings: object) -> StudyResult:
    """Run (or resume, or finish) a study; see ``search.options.make_options`` for settings:
    data_dir, workers, threads, epochs, quick, repeats, fresh, retry_failed, show_progress.
    """
    folder = Path(studies_dir) if studies_dir is not None else definitions.STUDIES_DIR
    definition = study if isinstance(study, definitions.StudyDefinition) \
        else definitions.load(study, folder)
    return run(make_options(definition, storage=storage, studies_dir=folder, **settings))


def _say(options: RunOptions, text: str) -> None:
    if options.show_progress:
        print(text, file=sys.stderr)


def _prepare(options: RunOptions, storage: Storage) -> tuple[optuna.Study, tuple | None]:
    """Open the study (after --fresh and --retry-failed); load the data if it is new.

    A new study is created only once its data loads: a bad --data-dir must not leave an
    empty study behind (nor --fresh delete one).
    """
    definition = options.definition
    raw = None
    if options.fresh or not lifecycle.is_stored(storage, definition.name):
        from search import data

        raw = data.load_raw(options.data_dir)
    if options.fresh:
        from search.results import artifacts

        artifacts.discard(storage, definition.name, lifecycle.artifact_root(
            options.storage_url, definition.name, options.studies_dir))
        checkpoints = CheckpointStore(lifecycle.checkpoint_root(
            options.storage_url, definition.name, options.studies_dir))
        if lifecycle.delete_study(storage, definition.name, checkpoints):
            _say(options, f"deleted the stored study '{definition.name}'; starting over")
    study = lifecycle.open_study(storage, definition)
    if options.retry_failed:
        retried = points.retry_given_up(study)
        _say(options, f"retrying {len(retried)} given-up unit(s):" if retried
             else "no unit was given up; nothing to retry")
        for unit in retried:
            _say(options, f"  {unit.params} replicate {unit.replicate + 1}")
    return study, raw


def _make_studies_dir(options: RunOptions) -> None:
    """The default database lives in the studies folder, made when first needed (a fresh
    folder has none); a --storage file in a missing folder stays an error."""
    default = f"sqlite:///{options.studies_dir / options.definition.name}.db"
    if options.storage_url == default and not options.studies_dir.is_dir():
        try:
            options.studies_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SearchError(f"cannot create the studies folder {options.studies_dir}: "
                              f"{error.strerror}; pass --studies-dir or --storage") from None


def run(options: RunOptions) -> StudyResult:
    """Run the study the options describe; see ``run_study``."""
    _make_studies_dir(options)
    storage = open_storage(options.storage_url)
    name = options.definition.name
    with storage_errors(options.storage_url):
        study, raw = _prepare(options, storage)
        states = points.states(study)
    failures: list[str] = []
    if not set(states) & set(points.UNFINISHED):
        # Optuna would run one duplicate trial on an exhausted grid: check first.
        _say(options, f"study '{name}' is finished ({states.count(points.COMPLETE)} of "
                      f"{len(states)} trials complete); nothing to run")
    elif options.workers > 1:
        from search import data
        from search.worker import pool

        if raw is None:  # several workers would each report a bad folder: one line here
            data.load_raw(options.data_dir)
        del raw  # the workers read the data themselves; this process only watches
        with storage_errors(options.storage_url):
            interrupted, failures = pool.run_pool(options, study)
        if interrupted:
            raise Interrupted(None, None, 0)
    else:
        from search.worker import process

        process.run_here(options, storage, study, raw)
    with storage_errors(options.storage_url):
        final = optuna.load_study(study_name=name, storage=storage.optuna)
        return StudyResult(name, storage.display_url, final, points.states(final), failures,
                           lifecycle.artifact_root(options.storage_url, name,
                                                   options.studies_dir))
