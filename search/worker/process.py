"""Setting up one worker process and working through the study: threads, compiled training,
the objective and its listeners.

``work_here`` is the whole worker once its storage, study and data are open
(``search.running`` opens them): the process a user starts runs it for ``--workers 1``, and
each child of ``--workers N`` runs it through ``python -m search.worker``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from search.data import Dataset
from search.options import RunOptions
from search.signals import held_interrupts
from search.study import lifecycle, points, pruning
from search.study.storage import Storage, storage_errors
from search.training.checkpoints import CheckpointStore
from search.userdata import UserData
from search.worker.loop import work

logger = logging.getLogger(__name__)


# TensorFlow's own log level. Unset, the commands set it to 3 (0 under --verbose) before
# TensorFlow loads, in every process of a run (the workers inherit it): a value the user
# set is kept.
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
_startup = logging.getLogger("search.startup")


def _process_age() -> float:
    """Seconds since this process started (Linux); since this module loaded elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _LOADED


_LOADED = time.perf_counter()


def startup_moment(what: str) -> None:
    """Log (under --verbose) a moment of this process's start-up; scripts/bench_startup.py
    times these lines to break the time to the first epoch into its parts."""
    if _startup.isEnabledFor(logging.INFO):
        _startup.info("process %d: %s at %.2f s", os.getpid(), what, _process_age())


def import_tensorflow_quietly(hold_interrupts: bool = True) -> None:
    """Import TensorFlow (and Keras) with the C-level stderr closed, unless its INFO lines
    were asked for (``TF_CPP_MIN_LOG_LEVEL=0``, which --verbose sets when it is unset).

    Its start-up lines ("oneDNN custom operations are on", the CUDA probe's "Could not find
    cuda drivers") are written through absl before any log level applies: on a CPU machine
    they are noise on every run. Python errors still propagate: they are raised, not
    printed. A Ctrl-C meanwhile is raised once the import is done: inside it, Keras would
    turn it into an ImportError. (A worker started early notes its own until the go.)
    """
    if "tensorflow" in sys.modules:
        return
    quiet = os.environ.setdefault(LOG_LEVEL_VARIABLE, "3").strip() not in ("", "0")
    saved = os.dup(2) if quiet else None
    with held_interrupts() if hold_interrupts else contextlib.nullcontext():
        if saved is not None:
            null = os.open(os.devnull, os.O_WRONLY)
            sys.stderr.flush()
            os.dup2(null, 2)
            os.close(null)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
    startup_moment("TensorFlow imported")


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
