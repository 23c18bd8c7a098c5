"""Running a study: the one owner of a run's steps. The command line, ``search.run_study``
and each worker process (``python -m search.worker``) call it, and none repeats its steps.

    >>> import search
    >>> result = search.run_study("mnist", quick=True, data_dir="../shared/mnist")
    >>> result.complete, result.best.params

``run`` opens the storage and the artifact store, checks the definition against the stored
study (or creates it once the data loads), loads the data and the builder once and checks
them against each other, trains the units here or in ``workers`` processes, keeps the
dashboard's note current and returns a ``StudyResult``. It raises ``SearchError`` (one
line) on bad input and ``Interrupted`` on Ctrl-C, with the interrupted trial's checkpoint
kept for the rerun.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from search import cluster, datasets
from search import definition as definitions
from search.errors import Interrupted, SearchError
from search.options import RunOptions, make_options
from search.result import StudyResult
from search.study import artifact_store, lifecycle, points, retry, units
from search.study.storage import Storage, open_storage, storage_errors
from search.usercode import importable_name

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
                          "pass workers=1")
    return run(options, build=build, data=data)


def _name_of(build: Builder) -> str:
    name = importable_name(build)
    return name or f"{build.__module__}:{build.__qualname__}".replace("<", "").replace(">", "")


def _say(options: RunOptions, text: str) -> None:
    if options.show_progress:
        print(text, file=sys.stderr)


@dataclasses.dataclass
class _Prepared:
    """What a process trains with: the data (loaded once) and the builder."""

    dataset: Any
    builder: Builder | None = None  # None: the built-in MLP
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    paths: dict[str, dict[str, str]] = dataclasses.field(default_factory=lambda: _MLP_PATHS)


# The built-in MLP's path is its own (search.training.compiled), chosen without building it.
_MLP_PATHS = {"mlp": {"path": "compiled", "layers": "the built-in MLP",
                      "why": "its own whole-epoch XLA loop"}}


def _prepare(options: RunOptions, build: Builder | None = None,
             data: Mapping[str, Any] | None = None, check: bool = True) -> _Prepared:
    """The study's data and builder: the one place a process loads them. With ``check``
    (the process that starts a run), a [model] study's builder and data are checked against
    each other and fingerprinted."""
    definition = options.definition
    if definition.model is None:
        return _Prepared(datasets.load(definition, options.data_dir))
    from search.worker import process

    # Before the user's modules import Keras: quietly, and with the run's threads.
    process.configure_threads(options.threads)
    from search.training import builders

    dataset = datasets.load(definition, options.data_dir, data)
    builder = builders.builder_of(definition, build)
    if not check:
        return _Prepared(dataset, builder)
    builders.check(definition, builder, dataset)
    return _Prepared(dataset, builder, {"model": builders.fingerprint(definition, builder),
                                        "data": datasets.fingerprint(dataset)},
                     builders.paths(definition, builder))


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


def _note(storage: Storage, name: str) -> object:
    from search.results.note import StudyNote  # the report's statistics: never in a worker

    return StudyNote(storage, name)


def run(options: RunOptions, build: Builder | None = None,
        data: Mapping[str, Any] | None = None) -> StudyResult:
    """Run the study the options describe; see ``run_study``."""
    if options.cluster:  # first: what the cluster refuses leaves nothing stored
        options = cluster.join(options)
    locations, name = options.locations, options.definition.name
    locations.make_studies_dir()
    # Once the first contacts below succeed, a fault of either store is waited out this long.
    retry.set_outage_seconds(options.definition.outage_seconds)
    storage = open_storage(locations.storage_url)
    # Before anything is stored or any data loads: an unusable store is one line now, not a
    # failure after the first trial has trained.
    artifact_store.check(locations.artifacts)
    with storage_errors(storage.url):
        is_new = options.fresh or not lifecycle.is_stored(storage, name)
    # A new study is created only once its data loads: a bad --data-dir must not leave an
    # empty study behind (nor --fresh delete one).
    prepared = _prepare(options, build, data) if is_new else None
    with storage_errors(storage.url):
        study = _open_study(options, storage)
        states = units.states(study)
    failures: list[str] = []
    if not set(states) & set(points.UNFINISHED):
        # Optuna would run one duplicate trial on an exhausted grid: check first.
        _say(options, f"study '{name}' is finished ({states.count(points.COMPLETE)} of "
                      f"{len(states)} trials complete); nothing to run")
    else:
        # Loaded here also for several workers: a bad folder is one line, not one each.
        prepared = prepared or _prepare(options, build, data)
        with storage_errors(storage.url):
            lifecycle.record_fingerprints(study, prepared.fingerprints,
                                          f"study '{name}' in {storage.display_url}")
            paths = lifecycle.record_paths(study, prepared.paths)
        for choice in paths.values():
            _say(options, f"training path: {choice['path']} for {choice['layers']} "
                          f"({choice['why']}){'; as recorded' if 'recorded' in choice else ''}")
        failures = _train(options, storage, study, prepared)
    with storage_errors(storage.url):
        final = optuna.load_study(study_name=name, storage=storage.rdb)
        return StudyResult(name, storage.display_url, final, units.states(final), failures,
                           locations.artifacts)


def _train(options: RunOptions, storage: Storage, study: optuna.Study,
           prepared: _Prepared) -> list[str]:
    """Train the units here or in worker processes; the lines of workers that failed."""
    note = _note(storage, options.definition.name)
    if options.workers == 1 and not options.cluster:
        from search.worker import process

        process.work_here(options, storage, study, prepared.dataset, prepared.builder,
                          on_trial_end=note)
        return []
    from search.worker import pool

    del prepared  # the workers read the data themselves; this process only watches
    work_elsewhere = cluster.work_on_cluster if options.cluster else pool.work_in_processes
    with storage_errors(storage.url):
        interrupted, failures = work_elsewhere(options, study, on_trial_end=note)
    if interrupted:
        raise Interrupted()
    return failures


def work(options: RunOptions) -> None:
    """One worker process of ``--workers N``: open what the run opened, then train."""
    from search.worker import process

    retry.set_outage_seconds(options.definition.outage_seconds)
    storage = open_storage(options.storage_url, wait=True)  # the run has just reached it
    with storage_errors(storage.url):
        study = lifecycle.open_study(storage, options.definition)
    prepared = _prepare(options, check=False)  # the process that started it checked
    process.work_here(options, storage, study, prepared.dataset, prepared.builder, quiet=True)
