"""Setting up one worker process and running its loop: data, threads, compiled training,
the objective and its listeners.

``run_here`` is the whole worker: the process that a user starts runs it for ``--workers 1``,
and each child of ``--workers N`` runs it through ``python -m search.worker``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys

import numpy as np
import optuna

from search import data
from search.options import RunOptions
from search.study import lifecycle
from search.study.storage import Storage, storage_errors
from search.training.checkpoints import CheckpointStore
from search.worker.loop import WorkerResult, run_worker

logger = logging.getLogger(__name__)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with the C-level stderr closed.

    Its CUDA probe writes "Could not find cuda drivers" through absl before any log level
    applies (TF_CPP_MIN_LOG_LEVEL does not reach it); on a CPU machine that is noise on
    every run. Python errors still propagate: they are raised, not printed.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
    except RuntimeError:  # a process where TensorFlow already runs keeps its settings
        logger.info("TensorFlow has started already; keeping its thread settings")


def run_here(options: RunOptions, storage: Storage, study: optuna.Study,
             raw: tuple[np.ndarray, ...] | None = None, quiet: bool = False) -> WorkerResult:
    """Run units of ``study`` in this process until none is left; raises Interrupted."""
    definition = options.definition
    # Data first: a bad folder fails fast, before TensorFlow starts (and logs to stderr).
    dataset = data.split(raw if raw is not None else data.load_raw(options.data_dir),
                         definition.validation_size, definition.seed, definition.train_size)
    configure_threads(options.threads)
    from search.results import artifacts
    from search.training.compiled import CompiledTraining
    from search.worker.objective import Objective
    from search.worker.progress import Progress

    # What lives now (TensorFlow, Keras, the data: 300,000 objects) lives for the whole
    # process. Frozen, it is out of the garbage collector's reach, so the collection in
    # each trial's clear_session() is quick; what a trial leaves behind is still collected.
    gc.collect()
    gc.freeze()
    roots = (options.storage_url, definition.name, options.studies_dir)
    checkpoints = CheckpointStore(lifecycle.checkpoint_root(*roots))
    progress = None if quiet or not options.show_progress else Progress(study)
    note = artifacts.StudyNote(storage, definition.name)

    def trial_end(trial: optuna.trial.FrozenTrial) -> None:
        note()  # every worker, quiet or not, refreshes the dashboard's note
        if progress is not None:
            progress.trial_end(trial)

    with CompiledTraining() as compiled:
        objective = Objective(definition, dataset, compiled, checkpoints,
                              on_epoch=progress.epoch_end if progress else None,
                              on_finish=artifacts.TrialArtifacts(
                                  lifecycle.artifact_root(*roots)))
        objective.compile_ahead()
        with storage_errors(storage.url):
            return run_worker(storage, study, objective,
                              on_trial_start=progress.trial_start if progress else None,
                              on_trial_end=trial_end)
