"""Running a study: the one owner of a run's steps. The command line, ``search.run_study``
and each worker process (``python -m search.worker``) call it, and none repeats its steps.

    >>> import search
    >>> result = search.run_study("mnist", quick=True, data_dir="../shared/mnist")
    >>> result.complete, result.best.params

``run`` opens the storage and the artifact store, checks the definition against the stored
study, loads the data and the builder once and checks them against each other (a new study,
its database file included, is stored only then), trains the units here, with ``workers - 1``
more processes started at once (``search.worker.pool``), keeps the dashboard's note current
and returns a ``StudyResult``. It raises ``SearchError`` (one line) on bad input and
``Interrupted`` on Ctrl-C, with the interrupted trial's checkpoint kept for the rerun.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from search import cluster
from search import definition as definitions
from search.errors import SearchError
from search.options import RunOptions, make_options
from search.result import StudyResult
from search.study import artifact_store, lifecycle, points, retry, units
from search.study.storage import Storage, new_file, open_storage, storage_errors
from search.usercode import importable_name
from search.worker import pool, process
from search.worker.prepared import Prepared, prepare

if TYPE_CHECKING:
    from search.training.builders import Builder


def run_study(study: str | definitions.StudyDefinition, *, storage_url: str | None = None,
              studies_dir: str | Path | None = None, build: Builder | None = None,
              data: Mapping[str, Any] | None = None, **settings: object) -> StudyResult:
    """Run (or resume, or finish) a study; see ``search.options.make_options`` for settings:
    artifacts (the artifact store: a folder or s3://bucket/prefix), data_dir, workers,
    threads, epochs, quick, repeats, fresh, retry_failed, show_progress.

    ``build`` (a function returning a compiled keras.Model) and ``data`` (a mapping with
    x_train, y_train and optionally the validation and test arrays) stand in for the
    definition's [model] and [data], so a notebook can tune a model it defines in a cell.
    """
    folder = Path(studies_dir) if studies_dir is not None else definitions.STUDIES_DIR
    definition = study if isinstance(study, definitions.StudyDefinition) \
        else definitions.load(study, folder)
    if build is not None and definition.model is None:
        definition = dataclasses.replace(definition, model={"build": _name_of(build)})
    if data is not None and definition.model is None:
        raise SearchError("data given to run_study needs a model that takes it (build=, or a "
                          "definition with [model]); the built-in MLP trains on MNIST only")
    options = make_options(definition, storage_url=storage_url, studies_dir=folder,
                           **settings)
    if (options.workers > 1 or options.cluster) and \
            (data is not None or (build and not importable_name(build))):
        given = "data given as arrays" if data is not None else f"the builder {_name_of(build)}"
        raise SearchError(f"{given} cannot reach worker processes (nothing is pickled); put "
                          "it in a module and name it in the study's [model] or [data], or "
                          "pass workers=1 (and no cluster)")
    return run(options, build=build, data=data)


def _name_of(build: Builder) -> str:
    name = importable_name(build)
    return name or f"{build.__module__}:{build.__qualname__}".replace("<", "").replace(">", "")


def _say(options: RunOptions, text: str) -> None:
    if options.show_progress:
        print(text, file=sys.stderr)


def _start_over(options: RunOptions, storage: Storage) -> None:
    """--fresh: the study's files, then its trials and claims, then its checkpoints."""
    from search.results import artifacts
    from search.training.checkpoints import CheckpointStore

    name, location = options.definition.name, options.locations.artifacts
    artifacts.discard(storage, name, location)
    if lifecycle.delete_study(storage, name):
        _say(options, f"deleted the stored study '{name}'; starting over")
    CheckpointStore(location, name).discard_all()


def _open_study(options: RunOptions, storage: Storage) -> optuna.Study:
    if options.fresh:
        _start_over(options, storage)
    study = lifecycle.open_study(storage, options.definition)
    if options.retry_failed:
        retried = units.retry_given_up(study)
        _say(options, f"retrying {len(retried)} given-up unit(s):" if retried
             else "no unit was given up; nothing to retry")
        for unit in retried:
            _say(options, f"  {unit.params} replicate {unit.replicate + 1}")
    return study


def _note(storage: Storage, name: str) -> Callable[[optuna.trial.FrozenTrial], None]:
    """What rewrites the dashboard's note after each trial; the report's statistics it needs
    load when the first trial ends, not before the first epoch."""
    notes: list[Callable[[optuna.trial.FrozenTrial], None]] = []

    def write(trial: optuna.trial.FrozenTrial) -> None:
        if not notes:
            from search.results.note import StudyNote  # SciPy: in no other worker

            notes.append(StudyNote(storage, name))
        notes[0](trial)

    return write


def _storage_if_made(options: RunOptions) -> Storage | None:
    """The storage, opened if it exists; None for a SQLite file not made yet, which is made
    (its location checked now) only once the data and the builder have passed their checks:
    bad input stores nothing, not even an empty database."""
    options.locations.make_studies_dir()
    if new_file(options.storage_url) is not None:
        return None
    return open_storage(options.storage_url)


def _open_stored(options: RunOptions, storage: Storage) -> tuple[optuna.Study, bool]:
    """A stored study, opened as this run changes it; and whether a unit is left to run."""
    # Before anything loads: an unusable store is one line now, not a failure after the
    # first trial has trained.
    artifact_store.check(options.locations.artifacts)
    with storage_errors(storage.url):
        study = _open_study(options, storage)
        states = units.states(study)
    if not set(states) & set(points.UNFINISHED):
        # Optuna would run one duplicate trial on an exhausted grid: check first.
        _say(options, f"study '{study.study_name}' is finished ({states.count(points.COMPLETE)}"
                      f" of {len(states)} trials complete); nothing to run")
        return study, False
    return study, True


def _store_new(options: RunOptions, storage: Storage | None) -> tuple[Storage, optuna.Study]:
    """A new study (or one --fresh starts over), stored once its input has passed."""
    artifact_store.check(options.locations.artifacts)
    storage = storage or open_storage(options.storage_url)
    with storage_errors(storage.url):
        return storage, _open_study(options, storage)


def run(options: RunOptions, build: Builder | None = None,
        data: Mapping[str, Any] | None = None) -> StudyResult:
    """Run the study the options describe; see ``run_study``."""
    if options.cluster:  # first: what the cluster refuses leaves nothing stored
        options = cluster.join(options)
    name = options.definition.name
    # Once the first contacts below succeed, a fault of either store is waited out this long.
    retry.set_outage_seconds(options.definition.outage_seconds)
    storage = _storage_if_made(options)
    with storage_errors(options.storage_url):
        is_new = storage is None or options.fresh or not lifecycle.is_stored(storage, name)
    study, left, failures = None, True, []
    if not is_new:
        study, left = _open_stored(options, storage)
    if left:
        # The other workers start now: they import TensorFlow and load the data while this
        # process checks them, and store nothing until it has (pool.started_early).
        with pool.started_early(options, local=not options.cluster) as workers:
            prepared = prepare(options, build, data)  # a bad folder: one line, not one each
            if study is None:
                storage, study = _store_new(options, storage)
            with storage_errors(storage.url):
                lifecycle.record_fingerprints(study, prepared.fingerprints,
                                              f"study '{name}' in {storage.display_url}")
                paths = lifecycle.record_paths(study, prepared.paths)
            for choice in paths.values():
                _say(options, f"training path: {choice['path']} for {choice['layers']} ("
                     f"{choice['why']}){'; as recorded' if 'recorded' in choice else ''}")
            failures = _train(options, storage, study, prepared, workers)
    with storage_errors(storage.url):
        final = optuna.load_study(study_name=name, storage=storage.rdb)
        return StudyResult(name, storage.display_url, final, units.states(final), failures,
                           options.locations.artifacts)


def _train(options: RunOptions, storage: Storage, study: optuna.Study, prepared: Prepared,
           workers: pool.Workers) -> list[str]:
    """Train the units here, with the other workers if any; the lines of workers that
    failed."""
    note = _note(storage, options.definition.name)
    if options.cluster:  # this process only watches the actors
        with storage_errors(storage.url):
            return cluster.work_on_cluster(options, study, on_trial_end=note)
    if options.workers == 1:
        process.work_here(options, storage, study, prepared.dataset, prepared.builder,
                          on_trial_end=note)
        return []
    with storage_errors(storage.url):
        return pool.work_with_others(options, storage, study, prepared, workers, note)


def prepare_worker(options: RunOptions) -> Prepared:
    """A worker started early, before its go: TensorFlow and the data, nothing stored."""
    process.import_tensorflow_quietly(hold_interrupts=False)  # it notes them (its __main__)
    return prepare(options, check=False)  # the starting process checks


def work(options: RunOptions, prepared: Prepared) -> None:
    """One worker process of ``--workers N``, once told to go: open what the run opened,
    then train."""
    retry.set_outage_seconds(options.definition.outage_seconds)
    storage = open_storage(options.storage_url, wait=True)  # the run has just reached it
    with storage_errors(storage.url):
        study = lifecycle.open_study(storage, options.definition)
    process.work_here(options, storage, study, prepared.dataset, prepared.builder, quiet=True)
