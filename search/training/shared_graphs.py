"""One worker's epoch graphs, shared by its trials of one model architecture.

Tracing a model's epoch costs about a second (XLA's compiling more), once per trial if each
trial's model had its own. A worker keeps one graph per architecture instead, built on the
first trial's model; a later trial's state is copied into it before each epoch and back
after (``EpochGraph.holding``), so the trial's own model always holds its state for
checkpoints and artifacts, and the numbers are those of its own graph.

Only a model whose whole computation its configuration describes shares: a Sequential or
functional model of Keras's own layers (no ``Lambda``, whose function the configuration may
not capture), with the same layers, loss, metrics and optimizer settings (the learning rate
aside: it is a variable, copied with the rest). Any other model keeps a graph of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import keras

from search.training.copies import architecture_of
from search.training.epoch_graph import EpochGraph
from search.training.path_choice import layers_of

KEPT = 16  # graphs kept per worker; beyond that the oldest is dropped


def _modules(config: Any) -> Iterator[str]:
    """Every module a serialized configuration names (its classes' and functions')."""
    if isinstance(config, dict):
        if isinstance(config.get("module"), str):
            yield config["module"]
        for value in config.values():
            yield from _modules(value)
    elif isinstance(config, list | tuple):
        for value in config:
            yield from _modules(value)


def sharing_key(model: keras.Model) -> str | None:
    """What must be equal for two models to share a graph; None: the model cannot share.

    A function of the user's (a loss, an activation, a regularizer) is serialized by its
    name alone, so what it closes over is not in any configuration: every class and
    function the model and its compiled loss and metrics name must be Keras's own.
    """
    kinds = [type(model), *(type(layer) for layer in layers_of(model))]
    if type(model).__name__ not in ("Sequential", "Functional") or any(
            not kind.__module__.startswith("keras.") or kind.__name__ == "Lambda"
            for kind in kinds):
        return None
    compiled = {key: value for key, value in (model.get_compile_config() or {}).items()
                if key != "optimizer"}
    configs = [model.get_config(), compiled, model.optimizer.get_config()]
    if any(not module.startswith("keras") for module in _modules(configs)):
        return None
    return architecture_of(model) + json.dumps(compiled, sort_keys=True, default=repr)


class SharedGraphs:
    """The graphs one worker keeps: one per shareable architecture, and the latest
    trial's own (its training and its test set share it)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, bool], EpochGraph] = {}
        self._own: EpochGraph | None = None

    def graph_for(self, model: keras.Model, xla: bool) -> EpochGraph:
        """The graph ``model`` trains with: a kept one of its architecture, else its own."""
        key = sharing_key(model)
        if key is None:
            if self._own is None or self._own.model is not model or self._own.xla != xla:
                self._own = EpochGraph(model, xla)
            return self._own
        if (key, xla) not in self._kept:
            if len(self._kept) >= KEPT:
                del self._kept[next(iter(self._kept))]
            self._kept[key, xla] = EpochGraph(model, xla)
        return self._kept[key, xla]
