"""The Optuna objective: one trial trains one MLP on data loaded once per process.

Only this module talks to the trial. It suggests exactly the parameters named in the study
definition, trains through ``search.training``, reports validation accuracy after every
epoch (the live curves in optuna-dashboard) and stores what the report needs as user
attributes, so nothing is ever retrained to be shown.
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

from search.data import Dataset
from search.definition import StudyDefinition
from search.study import points
from search.study.points import Unit
from search.training.checkpoints import CheckpointStore
from search.training.compiled import CompiledLoop, CompiledTraining
from search.training.model import build_model

logger = logging.getLogger(__name__)

EpochListener = Callable[[optuna.Trial, int, dict[str, float], float], None]
# Called with the trained model while the trial still runs (Optuna attaches nothing later).
FinishListener = Callable[[optuna.Trial, keras.Model], None]


class TrainingDiverged(ArithmeticError):
    """The loss became NaN or infinite: the trial failed, not the worker."""


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "optuna": optuna.__version__, "numpy": np.__version__}


class _TrialCallback(keras.callbacks.Callback):
    """After each epoch: check the loss, report to Optuna, store history, checkpoint."""

    def __init__(self, objective: Objective, trial: optuna.Trial, checkpoint: str,
                 key: dict[str, Any], history: dict[str, list[float]],
                 epoch_seconds: list[float]) -> None:
        super().__init__()
        self._objective = objective
        self._trial = trial
        self._checkpoint = checkpoint
        self._key = key
        self._history = history
        self._epoch_seconds = epoch_seconds
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {key: float(value) for key, value in (logs or {}).items()}
        if not math.isfinite(logs.get("loss", math.nan)):
            raise TrainingDiverged(f"loss became {logs.get('loss')} in epoch {epoch + 1}")
        seconds = time.perf_counter() - self._started
        self._epoch_seconds.append(seconds)
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self._history.setdefault(name, []).append(logs[name])
        # Checkpoint before reporting: an epoch the storage shows is never lost to a crash.
        if self._objective.checkpoints is not None:
            self._objective.checkpoints.save(self._checkpoint, self.model, self._key,
                                             epoch + 1, self._history, self._epoch_seconds)
        self._trial.report(logs["val_accuracy"], step=epoch + 1)
        self._trial.set_user_attr(points.HISTORY, self._history)
        self._trial.set_user_attr(points.EPOCHS_DONE, epoch + 1)
        if self._objective.on_epoch is not None:
            self._objective.on_epoch(self._trial, epoch + 1, logs, seconds)


def checkpoint_name(unit: Unit) -> str:
    params = ",".join(f"{name}={value}" for name, value in unit.params.items())
    return f"{params},replicate={unit.replicate}"


@dataclasses.dataclass
class Objective:
    """Callable objective holding the study definition, the data (loaded once) and the
    compiled training the worker's trials share."""

    definition: StudyDefinition
    data: Dataset
    compiled: CompiledTraining
    checkpoints: CheckpointStore | None = None
    on_epoch: EpochListener | None = None
    on_finish: FinishListener | None = None

    def compile_ahead(self) -> None:
        """Compile the grid's shapes on the spare core while the first trial trains: each
        model architecture of the grid (in grid order) at each batch size."""
        definition = self.definition
        models: dict[str, keras.Model] = {}
        for point in definition.grid:
            arguments = definition.model_arguments(point)
            key = repr({**arguments, "learning_rate": None})  # a variable, not a shape
            if key not in models:
                models[key] = build_model(**arguments)
        self.compiled.compile_ahead(list(models.values()), self.data,
                                    definition.search_space["batch_size"])

    def forget(self, unit: Unit) -> None:
        if self.checkpoints is not None:
            self.checkpoints.discard(checkpoint_name(unit))

    def _start(self, trial: optuna.Trial, name: str, key: dict[str, Any],
               params: dict[str, Any]) -> tuple[keras.Model, int, dict, list[float]]:
        """The trial's model and where it starts: its checkpoint, else a new model."""
        restored = self.checkpoints.load(name, key) if self.checkpoints else None
        if restored is None:
            model = build_model(**self.definition.model_arguments(params))
            return model, 0, {}, []
        for epoch, value in enumerate(restored.history["val_accuracy"], start=1):
            trial.report(value, step=epoch)
        trial.set_user_attr(points.RESUMED_FROM_EPOCH, restored.epochs_done)
        logger.info("trial %d resumes %s after epoch %d", trial.number, name,
                    restored.epochs_done)
        return restored.model, restored.epochs_done, restored.history, restored.epoch_seconds

    def _record(self, trial: optuna.Trial, loop: CompiledLoop, history: dict[str, list[float]],
                epoch_seconds: list[float], started: float) -> None:
        """What the report needs, stored on the trial; the test set is scored for it only."""
        test_loss, test_accuracy = loop.evaluate(self.data.test_images, self.data.y_test)
        trial.set_user_attr(points.BEST_EPOCH, int(np.argmax(history["val_accuracy"])) + 1)
        trial.set_user_attr(points.BEST_VAL_ACCURACY, max(history["val_accuracy"]))
        trial.set_user_attr(points.TEST_ACCURACY, float(test_accuracy))
        trial.set_user_attr(points.TEST_LOSS, float(test_loss))
        trial.set_user_attr(points.EPOCH_SECONDS, epoch_seconds)
        trial.set_user_attr(points.SECONDS, sum(epoch_seconds))
        trial.set_user_attr(points.WALL_SECONDS, time.perf_counter() - started)

    def __call__(self, trial: optuna.Trial, unit: Unit) -> float:
        definition = self.definition
        params = {name: trial.suggest_categorical(name, values)
                  for name, values in definition.search_space.items()}
        seed = definition.seed_for(unit.replicate)
        # Everything a checkpoint depends on; one made under another budget is not reused.
        key = {"params": params, "replicate": unit.replicate, **definition.budget()}
        name = checkpoint_name(unit)

        # A fresh graph per trial keeps memory flat across trials; one seed per replicate
        # gives every grid point the same initial weights and batch order, so points are
        # compared on equal terms.
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        model, first_epoch, history, epoch_seconds = self._start(trial, name, key, params)
        trial.set_user_attr(points.SEED, seed)
        trial.set_user_attr(points.VERSIONS, versions())
        trial.set_user_attr(points.DATA_SIZES, self.data.describe())

        callback = _TrialCallback(self, trial, name, key, history, epoch_seconds)
        loop = self.compiled.fit(model, self.data, batch_size=int(params["batch_size"]),
                                 epochs=definition.epochs, seed=seed,
                                 initial_epoch=first_epoch, callbacks=[callback])
        self._record(trial, loop, history, epoch_seconds, started)
        if self.on_finish is not None:  # now, while the trial runs: artifacts need that
            self.on_finish(trial, model)  # the final model: its test accuracy is stored
        # The last epoch's score: it belongs to the model whose test accuracy is recorded,
        # and picking the best epoch on the validation set would bias it upward.
        return history["val_accuracy"][-1]
