"""Running a study: the one owner of a run's steps. The command line, ``search.run_study``
and each worker process (``python -m search.worker``) call it, and none repeats its steps.

    >>> import search
    >>> result = search.run_study("mnist", quick=True, data_dir="../shared/mnist")
    >>> result.complete, result.best.params

``run`` opens the storage, checks the definition against the stored study (or creates it
once the data loads), loads the data once, trains the units here or in ``workers``
processes, keeps the dashboard's note current and returns a ``StudyResult``. It raises
``SearchError`` (one line) on bad input and ``Interrupted`` on Ctrl-C, with the interrupted
trial's checkpoint kept for the rerun.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from search import data
from search import definition as definitions
from search.errors import Interrupted
from search.options import RunOptions, make_options
from search.study import artifact_store, lifecycle, points, store_checkpoints
from search.study.storage import Storage, open_storage, storage_errors

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


def run_study(study: str | definitions.StudyDefinition, *, storage_url: str | None = None,
              studies_dir: str | Path | None = None, **settings: object) -> StudyResult:
    """Run (or resume, or finish) a study; see ``search.options.make_options`` for settings:
    artifacts (the artifact store: a folder or s3://bucket/prefix), data_dir, workers,
    threads, epochs, quick, repeats, fresh, retry_failed, show_progress.
    """
    folder = Path(studies_dir) if studies_dir is not None else definitions.STUDIES_DIR
    definition = study if isinstance(study, definitions.StudyDefinition) \
        else definitions.load(study, folder)
    return run(make_options(definition, storage_url=storage_url, studies_dir=folder,
                            **settings))


def _say(options: RunOptions, text: str) -> None:
    if options.show_progress:
        print(text, file=sys.stderr)


def _load_data(options: RunOptions) -> data.Dataset:
    """The study's data, split: the one place a process loads it."""
    definition = options.definition
    return data.split(data.load_raw(options.data_dir), definition.validation_size,
                      definition.seed, definition.train_size)


def _start_over(options: RunOptions, storage: Storage) -> None:
    """--fresh: the study's files, then its trials and claims, then its checkpoints."""
    from search.results import artifacts

    name, location = options.definition.name, options.locations.artifacts
    artifacts.discard(storage, name, location)
    if lifecycle.delete_study(storage, name):
        _say(options, f"deleted the stored study '{name}'; starting over")
    with artifact_store.store_errors(location):
        store_checkpoints.discard_checkpoints(artifact_store.open_store(location), name)


def _open_study(options: RunOptions, storage: Storage) -> optuna.Study:
    if options.fresh:
        _start_over(options, storage)
    study = lifecycle.open_study(storage, options.definition)
    if options.retry_failed:
        retried = points.retry_given_up(study)
        _say(options, f"retrying {len(retried)} given-up unit(s):" if retried
             else "no unit was given up; nothing to retry")
        for unit in retried:
            _say(options, f"  {unit.params} replicate {unit.replicate + 1}")
    return study


def _note(storage: Storage, name: str) -> object:
    from search.results.note import StudyNote  # the report's statistics: never in a worker

    return StudyNote(storage, name)


def run(options: RunOptions) -> StudyResult:
    """Run the study the options describe; see ``run_study``."""
    locations, name = options.locations, options.definition.name
    locations.make_studies_dir()
    storage = open_storage(locations.storage_url)
    # Before anything is stored or any data loads: an unusable store is one line now, not a
    # failure after the first trial has trained.
    artifact_store.check(locations.artifacts)
    with storage_errors(storage.url):
        is_new = options.fresh or not lifecycle.is_stored(storage, name)
    # A new study is created only once its data loads: a bad --data-dir must not leave an
    # empty study behind (nor --fresh delete one).
    dataset = _load_data(options) if is_new else None
    with storage_errors(storage.url):
        study = _open_study(options, storage)
        states = points.states(study)
    failures: list[str] = []
    if not set(states) & set(points.UNFINISHED):
        # Optuna would run one duplicate trial on an exhausted grid: check first.
        _say(options, f"study '{name}' is finished ({states.count(points.COMPLETE)} of "
                      f"{len(states)} trials complete); nothing to run")
    else:
        # Loaded here also for several workers: a bad folder is one line, not one each.
        dataset = dataset or _load_data(options)
        failures = _train(options, storage, study, dataset)
    with storage_errors(storage.url):
        final = optuna.load_study(study_name=name, storage=storage.rdb)
        return StudyResult(name, storage.display_url, final, points.states(final), failures,
                           locations.artifacts)


def _train(options: RunOptions, storage: Storage, study: optuna.Study,
           dataset: data.Dataset) -> list[str]:
    """Train the units here or in worker processes; the lines of workers that failed."""
    note = _note(storage, options.definition.name)
    if options.workers == 1:
        from search.worker import process

        process.work_here(options, storage, study, dataset, on_trial_end=note)
        return []
    from search.worker import pool

    del dataset  # the workers read the data themselves; this process only watches
    with storage_errors(storage.url):
        interrupted, failures = pool.work_in_processes(options, study, on_trial_end=note)
    if interrupted:
        raise Interrupted()
    return failures


def work(options: RunOptions) -> None:
    """One worker process of ``--workers N``: open what the run opened, then train."""
    from search.worker import process

    storage = open_storage(options.storage_url)
    with storage_errors(storage.url):
        study = lifecycle.open_study(storage, options.definition)
    process.work_here(options, storage, study, _load_data(options), quiet=True)
