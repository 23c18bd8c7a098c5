"""The Optuna objective: one trial trains one model on data loaded once per process.

Only this module talks to the trial. It suggests exactly the parameters named in the study
definition, builds and trains the model through its path (``search.worker.paths``), reports
the objective metric after every epoch (the live curves in optuna-dashboard) and stores what
the report needs as user attributes, so nothing is ever retrained to be shown.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import optuna
import tensorflow as tf

from search import ranges
from search.definition import StudyDefinition
from search.signals import raise_if_interrupted
from search.study import points
from search.study.points import Unit
from search.training.checkpoints import CheckpointStore
from search.worker.behind import EpochWrites, Write
from search.worker.paths import TrainingPath

logger = logging.getLogger(__name__)

EpochListener = Callable[[optuna.Trial, int, dict[str, float], float], None]
# Called with the trained model while the trial still runs (Optuna attaches nothing later).
FinishListener = Callable[[optuna.Trial, keras.Model], None]
# Whether a search trial that has just reported an epoch stops there (the study's pruner).
Pruning = Callable[[optuna.Trial], bool]


class TrainingDiverged(ArithmeticError):
    """The loss became NaN or infinite: the trial failed, not the worker."""


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "optuna": optuna.__version__, "numpy": np.__version__}


@dataclasses.dataclass
class _Running:
    """One trial in training: where its checkpoint goes and what it has so far."""

    trial: optuna.Trial
    checkpoint: str
    key: dict[str, Any]
    state: list[Any]  # the variables a checkpoint keeps
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    prunable: bool = False  # a search trial of a study with a pruner (never a confirm run)
    epochs: EpochWrites = dataclasses.field(default_factory=EpochWrites)


class _TrialCallback(keras.callbacks.Callback):
    """After each epoch: check the loss, checkpoint, store history, report to Optuna."""

    def __init__(self, objective: Objective, running: _Running) -> None:
        super().__init__()
        self._objective, self._running = objective, running
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        raise_if_interrupted()  # one whose exception a finalizer dropped stops here
        logs = {key: float(value) for key, value in (logs or {}).items()}
        if not math.isfinite(logs.get("loss", math.nan)):
            raise TrainingDiverged(f"loss became {logs.get('loss')} in epoch {epoch + 1}")
        running, objective = self._running, self._objective
        seconds = time.perf_counter() - self._started
        running.epoch_seconds.append(seconds)
        for name, value in logs.items():
            running.history.setdefault(name, []).append(value)
        writes = self._writes(epoch + 1, logs[objective.definition.metric])
        # Another worker's unit now: nothing more is written for it. A database that does
        # not answer: the trial trains on, and its epochs are written once it is back.
        if not running.epochs.owned():
            running.epochs.keep(writes)
            return
        # Checkpoint before reporting: an epoch the storage shows is never lost to a crash.
        objective.save(running)
        running.epochs.write(writes)
        if objective.on_epoch is not None:
            objective.on_epoch(running.trial, epoch + 1, logs, seconds)
        # Never after the last epoch: stopping there would save nothing and lose a result.
        last = epoch + 1 == objective.definition.epochs
        if running.prunable and not last and objective.prune(running.trial):
            running.trial.set_user_attr(points.PRUNED_AT_EPOCH, epoch + 1)
            running.trial.set_user_attr(points.PRUNER, objective.definition.search.pruner)
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

    def _writes(self, epochs_done: int, value: float) -> list[Write]:
        """What the storage gets of an epoch (a copy of the history as it is now)."""
        trial = self._running.trial
        history = {name: list(values) for name, values in self._running.history.items()}
        return [lambda: trial.report(value, step=epochs_done),
                lambda: trial.set_user_attr(points.HISTORY, history),
                lambda: trial.set_user_attr(points.EPOCHS_DONE, epochs_done)]


def checkpoint_name(unit: Unit) -> str:
    """A grid unit's folder names its point and replicate; a sampled study's names its stage
    and unit id, so two units never share one, whatever their configurations."""
    if unit.stage != points.GRID_STAGE:
        return f"{unit.stage}-{unit.id}"
    params = ",".join(f"{name}={value}" for name, value in unit.params.items())
    return f"{params},replicate={unit.replicate}"


@dataclasses.dataclass
class Objective:
    """Callable objective holding the study definition and the path its trials train on
    (with the data, loaded once)."""

    definition: StudyDefinition
    path: TrainingPath
    checkpoints: CheckpointStore | None = None
    on_epoch: EpochListener | None = None
    on_finish: FinishListener | None = None
    prune: Pruning | None = None

    def save(self, running: _Running) -> None:
        """The trial's checkpoint after the epochs it has trained."""
        if self.checkpoints is not None:
            self.checkpoints.save(running.checkpoint, running.state, running.key,
                                  len(running.epoch_seconds), running.history,
                                  running.epoch_seconds)

    def forget(self, unit: Unit) -> None:
        if self.checkpoints is not None:
            self.checkpoints.discard(checkpoint_name(unit))

    def _start(self, trial: optuna.Trial, unit: Unit, params: dict[str, Any],
               key: dict[str, Any]) -> tuple[keras.Model, _Running]:
        """The trial's model, built, and where it starts: its checkpoint, else epoch 0."""
        model = self.path.build(self.definition.model_arguments(params))
        running = _Running(trial, checkpoint_name(unit), key, self.path.state(model), {}, [],
                           self.prune is not None and unit.stage == points.SEARCH_STAGE)
        restored = self.checkpoints.load(running.checkpoint, key, running.state) \
            if self.checkpoints else None
        if restored is not None:
            running.history, running.epoch_seconds = restored.history, restored.epoch_seconds
            for epoch, value in enumerate(restored.history[self.definition.metric], start=1):
                trial.report(value, step=epoch)
            # Recorded now: a trial killed after its last epoch's checkpoint trains no more.
            trial.set_user_attr(points.HISTORY, restored.history)
            trial.set_user_attr(points.EPOCHS_DONE, restored.epochs_done)
            trial.set_user_attr(points.RESUMED_FROM_EPOCH, restored.epochs_done)
            logger.info("trial %d resumes %s after epoch %d", trial.number,
                        running.checkpoint, restored.epochs_done)
        return model, running

    def _record(self, running: _Running, model: keras.Model, batch_size: int,
                started: float) -> None:
        """What the report needs, stored on the trial; the test set is scored for it only."""
        trial, definition = running.trial, self.definition
        curve = running.history[definition.metric]
        pick = np.argmin if definition.direction == "minimize" else np.argmax
        trial.set_user_attr(points.BEST_EPOCH, int(pick(curve)) + 1)
        trial.set_user_attr(f"best_{definition.metric}", curve[int(pick(curve))])
        scores = self.path.test_scores(model, batch_size)
        for name, attribute in (("test_accuracy", points.TEST_ACCURACY),
                                ("test_loss", points.TEST_LOSS)):
            if name in scores:
                trial.set_user_attr(attribute, scores[name])
        trial.set_user_attr(points.TEST_SCORES, scores)
        trial.set_user_attr(points.EPOCH_SECONDS, running.epoch_seconds)
        trial.set_user_attr(points.SECONDS, sum(running.epoch_seconds))
        trial.set_user_attr(points.WALL_SECONDS, time.perf_counter() - started)

    def __call__(self, trial: optuna.Trial, unit: Unit) -> float:
        definition = self.definition
        params = {name: ranges.suggest(trial, name, values)  # fixed when it was claimed
                  for name, values in definition.search_space.items()}
        seed = definition.seed_for(unit.seed_replicate)
        # Everything a checkpoint depends on; one made under another budget is not reused.
        key = {"params": params, "replicate": unit.replicate, **definition.budget()}
        # A fresh graph per trial keeps memory flat across trials; one seed per replicate
        # gives every grid point the same initial weights and batch order, so points are
        # compared on equal terms.
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        model, running = self._start(trial, unit, params, key)
        for attribute, value in ((points.SEED, seed), (points.VERSIONS, versions()),
                                 (points.DATA_SIZES, self.path.sizes),
                                 (points.PATH, self.path.name_of(model))):
            trial.set_user_attr(attribute, value)
        batch_size = definition.batch_size_at(params)
        self.path.train(model, batch_size=batch_size, epochs=definition.epochs, seed=seed,
                        initial_epoch=len(running.epoch_seconds),
                        callbacks=[_TrialCallback(self, running)])
        if running.epochs.behind:  # its last epochs ended while the database was away
            running.epochs.owned(wait=True)
            self.save(running)
            running.epochs.write()
        self._record(running, model, batch_size, started)
        if self.on_finish is not None:  # now, while the trial runs: artifacts need that
            self.on_finish(trial, model)  # the final model: its test score is stored
        # The last epoch's score: it belongs to the model whose test score is recorded, and
        # picking the best epoch on the validation set would bias it upward.
        return running.history[definition.metric][-1]
