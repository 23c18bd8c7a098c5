"""How a trial's model is built, trained, scored and checkpointed: the built-in MLP on its
compiled path (whole epochs in one XLA call), any other model on the path its study chose
for its architecture (``search.training.path_choice``: whole epochs in one XLA call, in one
graph call, or ``model.fit``). Each trial records the path that trained it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import keras

from search.data import Dataset
from search.definition import StudyDefinition
from search.training import path_choice, user_model
from search.training.compiled import CompiledLoop, CompiledTraining
from search.training.epoch_graph import EpochGraph
from search.training.model import build_model
from search.training.shared_graphs import SharedGraphs
from search.userdata import UserData, take

Callbacks = Sequence[keras.callbacks.Callback]


class TrainingPath(Protocol):
    sizes: dict[str, int]  # examples per split, as trials record them

    def build(self, arguments: dict[str, Any]) -> keras.Model: ...

    def name_of(self, model: keras.Model) -> str:
        """The path ``model`` trains on, as its trial records it."""

    def state(self, model: keras.Model) -> list[Any]:
        """The variables a checkpoint keeps, in a fixed order."""

    def train(self, model: keras.Model, *, batch_size: int, epochs: int, seed: int,
              initial_epoch: int, callbacks: Callbacks) -> None: ...

    def test_scores(self, model: keras.Model, batch_size: int) -> dict[str, float]: ...


class CompiledPath:
    """The built-in MLP on MNIST bytes, through the worker's shared compiled copies."""

    def __init__(self, compiled: CompiledTraining, data: Dataset) -> None:
        self.compiled, self.data, self.sizes = compiled, data, data.describe()

    @staticmethod
    def name_of(model: keras.Model) -> str:
        return "compiled"

    def build(self, arguments: dict[str, Any]) -> keras.Model:
        return build_model(**arguments)

    @staticmethod
    def state(model: keras.Model) -> list[Any]:
        model.optimizer.build(model.trainable_variables)
        return list(model.weights) + list(model.optimizer.variables)

    def train(self, model: keras.Model, *, batch_size: int, epochs: int, seed: int,
              initial_epoch: int, callbacks: Callbacks) -> None:
        self.compiled.fit(model, self.data, batch_size=batch_size, epochs=epochs, seed=seed,
                          initial_epoch=initial_epoch, callbacks=callbacks)

    def test_scores(self, model: keras.Model, batch_size: int) -> dict[str, float]:
        loss, accuracy = CompiledLoop(model, self.compiled).evaluate(self.data.test_images,
                                                                     self.data.y_test)
        return {"test_loss": float(loss), "test_accuracy": float(accuracy)}

    def compile_ahead(self, definition: StudyDefinition) -> None:
        """Compile the grid's shapes on the spare core while the first trial trains: each
        model architecture of the grid (in grid order) at each batch size. A sampled study's
        shapes are not known ahead: each compiles when first trained."""
        if definition.search.sampled:
            return
        models: dict[str, keras.Model] = {}
        for point in definition.grid:
            arguments = definition.model_arguments(point)
            key = repr({**arguments, "learning_rate": None})  # a variable, not a shape
            if key not in models:
                models[key] = build_model(**arguments)
        sizes = list(dict.fromkeys(definition.batch_size_at(point) for point in definition.grid))
        self.compiled.compile_ahead(list(models.values()), self.data, sizes)


# Records an architecture's path on the study; returns the choice in force (a stored one wins).
Recorder = Callable[[str, dict[str, str]], dict[str, str]]


class ModelPath:
    """Any compiled Keras model, trained by ``search.training.user_model`` on the path its
    study chose for its architecture (``chosen``: the study's record; an architecture the
    record lacks gets the definition's ``path``, or if that is "auto" the rule's, and with
    ``record`` (a sampled study, whose architectures appear as they are sampled) that choice
    is recorded on the study)."""

    def __init__(self, builder: Callable[..., keras.Model], data: UserData,
                 chosen: dict[str, dict[str, str]], path: str = "auto",
                 record: Recorder | None = None) -> None:
        self.builder, self.data, self.sizes = builder, data, data.describe()
        self.chosen, self.path, self.record = dict(chosen), path, record
        self.graphs = SharedGraphs()

    def build(self, arguments: dict[str, Any]) -> keras.Model:
        model = self.builder(**arguments)
        # A subclassed model makes its variables when first called; a checkpoint needs them.
        model(take(self.data.x_train, slice(0, 2)), training=False)
        return model

    def name_of(self, model: keras.Model) -> str:
        key = path_choice.architecture(model)
        recorded = self.chosen.get(key)
        if recorded:
            return recorded["path"]
        choice = path_choice.choose(model) if self.path == "auto" \
            else path_choice.Choice(self.path, "the study's [training] path")
        if self.record is None:
            return choice.path
        self.chosen[key] = self.record(key, {"path": choice.path, "why": choice.why,
                                             "layers": path_choice.summary(model)})
        return self.chosen[key]["path"]

    @staticmethod
    def state(model: keras.Model) -> list[Any]:
        return user_model.state_variables(model)

    def _graph(self, model: keras.Model, path: str) -> EpochGraph | None:
        return None if path == "fit" else self.graphs.graph_for(model, path == "xla")

    def train(self, model: keras.Model, *, batch_size: int, epochs: int, seed: int,
              initial_epoch: int, callbacks: Callbacks) -> None:
        path = self.name_of(model)
        user_model.train(model, self.data, batch_size=batch_size, epochs=epochs, seed=seed,
                         initial_epoch=initial_epoch, callbacks=callbacks, path=path,
                         graph=self._graph(model, path))

    def test_scores(self, model: keras.Model, batch_size: int) -> dict[str, float]:
        path = self.name_of(model)
        return user_model.test_scores(model, self.data, batch_size, path,
                                      self._graph(model, path)) or {}
