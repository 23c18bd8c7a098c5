"""What ``python -m search.run`` does, as functions that tests call without a subprocess."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import optuna

from search import definition as definitions
from search import grid, report, study
from search.checkpoints import CheckpointStore
from search.errors import SearchError
from search.storage import open_storage, storage_errors

logger = logging.getLogger(__name__)

QUICK_TRAIN_SIZE = 2000


def effective_definition(args: argparse.Namespace) -> definitions.StudyDefinition:
    studies_dir = args.studies_dir or definitions.STUDIES_DIR
    loaded = definitions.load(args.study, studies_dir)
    if args.epochs is not None and args.epochs <= 0:
        raise SearchError(f"--epochs must be positive, not {args.epochs}")
    if args.quick:
        train_size = min(QUICK_TRAIN_SIZE, loaded.train_size or QUICK_TRAIN_SIZE)
        return loaded.with_overrides(epochs=1, train_size=train_size, name_suffix="-quick")
    if args.epochs is not None and args.epochs != loaded.epochs:
        return loaded.with_overrides(epochs=args.epochs, name_suffix=f"-epochs{args.epochs}")
    return loaded


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with the C-level stderr closed.

    Its CUDA probe writes "Could not find cuda drivers" through absl before any log level
    applies (TF_CPP_MIN_LOG_LEVEL does not reach it); on a CPU machine that is noise on
    every run. Python errors still propagate: they are raised, not printed.
    """
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(null, 2)
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def configure_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools before it starts, so workers don't oversubscribe."""
    import_tensorflow_quietly()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:  # run() called in a process where TensorFlow already runs
        logger.info("TensorFlow has started already; keeping its thread settings")


def threads_per_worker(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads <= 0:
            raise SearchError(f"--threads must be positive, not {args.threads}")
        return args.threads
    # One thread per worker. XLA hardly splits this MLP's small matrix products: on two
    # cores a second thread made epochs no faster under light load and 1.5 to 2.5 times
    # slower when other programs ran. The spare core compiles ahead (search.training).
    return 1


def run(args: argparse.Namespace) -> int:
    if args.workers <= 0:
        raise SearchError(f"--workers must be positive, not {args.workers}")
    definition = effective_definition(args)
    studies_dir = args.studies_dir or definitions.STUDIES_DIR
    url = args.storage or definition.default_storage_url(studies_dir)
    storage = open_storage(url)
    checkpoints = CheckpointStore(study.checkpoint_root(url, definition.name, studies_dir))
    raw = None
    with storage_errors(url):
        if not args.worker_process and (args.fresh or not _stored(storage, definition.name)):
            # A new study is created only once its data loads: a bad --data-dir must not
            # leave an empty study behind.
            from search import data

            raw = data.load_raw(args.data_dir)
        if args.fresh and not args.worker_process:
            from search import artifacts

            artifacts.discard(storage, definition.name,
                              study.artifact_root(url, definition.name, studies_dir))
            if study.delete_study(storage, definition.name, checkpoints):
                print(f"deleted the stored study '{definition.name}'; starting over",
                      file=sys.stderr)
        current = study.open_study(storage, definition)
        if args.retry_failed and not args.worker_process:
            retried = grid.retry_failed(current, definition)
            if retried:
                print(f"retrying {len(retried)} given-up grid point(s):", file=sys.stderr)
                for params in retried:
                    print(f"  {params}", file=sys.stderr)
            else:
                print("no grid point was given up; nothing to retry", file=sys.stderr)
        states = _states(current, definition)
        if not args.worker_process and not {"pending", "running"} & set(states):
            # Optuna would run one duplicate trial on an exhausted grid: check first.
            print(f"study '{definition.name}' is finished ({states.count('complete')} of "
                  f"{len(states)} complete); nothing to run", file=sys.stderr)
            print(report.summary(current))
            return _exit_code(states, definition)
    if args.workers > 1 and not args.worker_process:
        from search import pool

        code = pool.run_pool(args, definition, storage, threads_per_worker(args))
    else:
        code = _run_one_worker(args, definition, storage, checkpoints, states.count("complete"),
                               raw)
    if not args.worker_process:
        with storage_errors(url):
            final = optuna.load_study(study_name=definition.name, storage=storage.optuna)
            print(report.summary(final))
            if code == 0:
                code = _exit_code(_states(final, definition), definition)
    return code


def _stored(storage, name: str) -> bool:
    try:
        storage.optuna.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def _states(current: optuna.Study, definition: definitions.StudyDefinition) -> list[str]:
    return [point.state(definition.max_attempts)
            for point in grid.grid_status(current, definition)]


def _exit_code(states: list[str], definition: definitions.StudyDefinition) -> int:
    """1 when grid points were given up: a study with holes is not a success."""
    failed = states.count("failed")
    if failed:
        print(f"{failed} grid point(s) failed {definition.max_attempts} times (see 'failed:' "
              "above); fix the cause, then rerun with --retry-failed (completed points are kept)",
              file=sys.stderr)
    return 1 if failed else 0


def _run_one_worker(args: argparse.Namespace, definition: definitions.StudyDefinition,
                    storage, checkpoints: CheckpointStore, done_before: int,
                    raw: tuple | None) -> int:
    threads = threads_per_worker(args)
    from search import data

    # Data first: a bad folder fails fast, before TensorFlow starts (and logs to stderr).
    dataset = data.split(raw if raw is not None else data.load_raw(args.data_dir),
                         definition.validation_size, definition.seed, definition.train_size)
    configure_threads(threads)
    from search import artifacts
    from search.objective import Objective
    from search.progress import Progress, format_params

    quiet = args.worker_process
    progress = Progress(definition, done_before)
    # Every worker, quiet or not, attaches figures and refreshes the dashboard's note.
    figures_root = study.artifact_root(storage.url, definition.name,
                                       args.studies_dir or definitions.STUDIES_DIR)
    objective = Objective(definition, dataset, checkpoints,
                          on_epoch=None if quiet else progress.epoch_end,
                          on_finish=artifacts.TrialArtifacts(figures_root))
    note = artifacts.StudyNote(storage, definition.name)

    def trial_end(trial: optuna.trial.FrozenTrial) -> None:
        note()
        if not quiet:
            progress.trial_end(trial)

    try:
        with storage_errors(storage.url):
            study.run_worker(storage, definition, objective,
                             on_trial_start=None if quiet else progress.trial_start,
                             on_trial_end=trial_end)
    except study.Interrupted as stop:
        if stop.trial_number is not None:
            print(f"interrupted: trial {stop.trial_number} ({format_params(stop.params)}) "
                  f"stopped after epoch {stop.epochs_done}; its checkpoint is kept. "
                  f"Run the same command to resume.", file=sys.stderr)
        return 130
    return 0
