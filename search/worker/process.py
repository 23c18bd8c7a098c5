"""Setting up one worker process and working through the study: threads, compiled training,
the objective and its listeners.

``work_here`` is the whole worker once its storage, study and data are open
(``search.running`` opens them): the process a user starts runs it for ``--workers 1``, and
each child of ``--workers N`` runs it through ``python -m search.worker``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import optuna

from search.data import Dataset
from search.options import RunOptions
from search.study import lifecycle, points, pruning
from search.study.storage import Storage, storage_errors
from search.training.checkpoints import CheckpointStore
from search.userdata import UserData
from search.worker.loop import work

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


def _both(*listeners: Callable[[optuna.trial.FrozenTrial], None] | None
          ) -> Callable[[optuna.trial.FrozenTrial], None]:
    """One listener that calls each given one in turn."""
    def call(trial: optuna.trial.FrozenTrial) -> None:
        for listener in listeners:
            if listener is not None:
                listener(trial)

    return call


def _path_recorder(storage: Storage, study: optuna.Study
                   ) -> Callable[[str, dict[str, str]], dict[str, str]]:
    """Records a sampled study's new architecture's path, and says so once (the worker that
    records it first)."""
    def record(key: str, choice: dict[str, str]) -> dict[str, str]:
        with storage_errors(storage.url):
            in_force = lifecycle.record_paths(study, {key: choice})[key]
        if "recorded" not in in_force:
            print(f"training path: {in_force['path']} for {in_force['layers']} "
                  f"({in_force['why']})", file=sys.stderr)
        return in_force

    return record


def _model_path(options: RunOptions, storage: Storage, study: optuna.Study,
                builder: Callable[..., Any], dataset: UserData) -> Any:
    """A [model]'s path: its study's recorded choices, and a sampled study's new ones."""
    from search.worker.paths import ModelPath

    with storage_errors(storage.url):
        chosen = study.user_attrs.get(points.PATHS, {})
    record = _path_recorder(storage, study) if options.definition.search.sampled else None
    return ModelPath(builder, dataset, chosen, options.definition.path, record)


def _pruning(storage: Storage, study: optuna.Study) -> Callable[[optuna.Trial], bool] | None:
    """The study's pruner, built from its stored budget, as the objective asks it."""
    with storage_errors(storage.url):
        budget = study.user_attrs[points.BUDGET]
    pruner = pruning.make(budget) if "search" in budget else None
    if pruner is None:
        return None
    return lambda trial: pruning.should_prune(pruner, study, storage.rdb, trial)


def work_here(options: RunOptions, storage: Storage, study: optuna.Study,
              dataset: Dataset | UserData, builder: Callable[..., Any] | None = None,
              on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
              quiet: bool = False) -> None:
    """Train units of ``study`` in this process until none is left; raises Interrupted.
    ``builder``: the [model] builder (the fit path); None: the MLP (the compiled path)."""
    configure_threads(options.threads)
    from search.results.artifacts import TrialArtifacts
    from search.training.compiled import CompiledTraining
    from search.worker.objective import Objective
    from search.worker.paths import CompiledPath
    from search.worker.progress import Progress

    # What lives now (TensorFlow, Keras, the data: 300,000 objects) lives for the whole
    # process. Frozen, it is out of the garbage collector's reach, so the collection in
    # each trial's clear_session() is quick; what a trial leaves behind is still collected.
    gc.collect()
    gc.freeze()
    progress = None if quiet or not options.show_progress else Progress(study)
    trial_end = _both(on_trial_end, progress and progress.trial_end)
    with CompiledTraining() as compiled:
        path = _model_path(options, storage, study, builder, dataset) \
            if builder is not None else CompiledPath(compiled, dataset)
        objective = Objective(options.definition, path,
                              CheckpointStore(options.locations.artifacts,
                                              options.definition.name),
                              on_epoch=progress.epoch_end if progress else None,
                              on_finish=TrialArtifacts(options.locations.artifacts,
                                                       options.definition.metric,
                                                       builder is None),
                              prune=_pruning(storage, study))
        if isinstance(path, CompiledPath):
            path.compile_ahead(options.definition)
        with storage_errors(storage.url):
            work(storage, study, objective,
                 on_trial_start=progress.trial_start if progress else None,
                 on_trial_end=trial_end)
