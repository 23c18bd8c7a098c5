"""Training any compiled Keras model on one of three paths, one epoch at a time:

- ``"fit"``: ``model.fit`` for the epoch;
- ``"graph"``: the epoch in one graph call (``search.training.epoch_graph``), no XLA;
- ``"xla"``: the same, compiled by XLA.

``search.training.path_choice`` says which path suits a model. On every path the model
keeps its own loss (with its ``losses``), metrics and optimizer, and what ``model.fit``
would leave to chance is decided here, from the trial's seed (one per replicate) and the
epoch number alone, so a trial resumed at epoch k ends with the numbers an uninterrupted
run gives on the same CPU and path:

- the order of the training samples: ``search.training.copies.epoch_order`` (for ``fit``,
  fed with ``shuffle=False``);
- the random layers (Dropout, GaussianNoise, random augmentation, any layer drawing from
  its own ``keras.random.SeedGenerator``): Keras 3 keeps each generator's state as a
  variable, ``[seed, counter]``, in ``model.variables`` (not ``model.weights``). At the
  start of every epoch each is set to ``search.training.dropout.dropout_seeds``'s value
  for (seed, epoch), the values the compiled path starts its generators from.

``state_arrays`` and ``restore_state`` carry everything else training changes (weights,
BatchNormalization statistics, optimizer state with its iteration count) through a
checkpoint; the model is rebuilt by the user's builder, never deserialized.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from search.errors import SearchError
from search.training.copies import epoch_order
from search.training.dropout import dropout_seeds
from search.training.epoch_graph import EpochGraph, resident, state_variables
from search.usercode import describe_error
from search.userdata import SPLITS, UserData, length, shapes, take

PATHS = ("fit", "graph", "xla")  # each trial records the one that trained it
EpochRunner = Callable[[np.ndarray, int], dict[str, float]]  # (order, epoch) -> logs
PROBE_SAMPLES = 2


def seed_states(model: keras.Model) -> list[keras.Variable]:
    """The state variables of the model's seed generators, in the model's order."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables
            if id(variable) not in weights and variable.name == "seed_generator_state"]


def reset_seeds(model: keras.Model, seed: int, epoch: int) -> None:
    """Start every seed generator of ``model`` from its state for (``seed``, ``epoch``)."""
    states = seed_states(model)
    for state, value in zip(states, dropout_seeds(seed, epoch, len(states)), strict=True):
        state.assign(value.astype(state.dtype))


def state_arrays(model: keras.Model) -> list[np.ndarray]:
    """The model's training state as NumPy arrays (for a checkpoint)."""
    return [np.array(variable.numpy()) for variable in state_variables(model)]


def restore_state(model: keras.Model, arrays: Sequence[np.ndarray]) -> None:
    """Put ``state_arrays``'s result back into a model the same builder built.

    The model must have its variables: a subclassed model makes them when first called
    (``probe`` calls it). A mismatch is a ValueError (the checkpoint is not this model's).
    """
    variables = state_variables(model)
    if len(arrays) != len(variables):
        raise ValueError(f"{len(arrays)} arrays for {len(variables)} variables; was the "
                         "model built (called once) before restoring?")
    for variable, array in zip(variables, arrays, strict=True):
        if tuple(variable.shape) != tuple(np.shape(array)):
            raise ValueError(f"{variable.path}: shape {tuple(variable.shape)}, "
                             f"checkpoint {np.shape(array)}")
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def _probe_split(model: keras.Model, data: UserData, split: str,
                 where: str) -> dict[str, float]:
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    first = slice(0, min(PROBE_SAMPLES, length(x)))
    try:
        # Called directly first: a traced test step reports a wrong shape far less clearly.
        model(take(x, first), training=False)
    except Exception as error:  # whatever the user's layers raise
        raise SearchError(f"{where}: the model does not take x_{split} of shape "
                          f"{shapes(x)}: {describe_error(error)}") from None
    try:
        return model.test_on_batch(take(x, first), take(y, first), return_dict=True)
    except Exception as error:
        raise SearchError(f"{where}: the model's loss or metrics do not take y_{split} of "
                          f"shape {shapes(y)}: {describe_error(error)}") from None


def probe(model: object, data: UserData, where: str) -> list[str]:
    """Check that ``model`` is a compiled ``keras.Model`` that takes every split of
    ``data`` (two samples each) and return the names its training logs report, such as
    ``["loss", "accuracy"]``; validation logs add ``val_``. Builds a subclassed model."""
    if not isinstance(model, keras.Model):
        raise SearchError(f"{where}: the builder returned {type(model).__name__}, not a "
                          "compiled keras.Model")
    if not model.compiled:
        raise SearchError(f"{where}: the builder returned a keras.Model that is not "
                          "compiled; call model.compile(optimizer, loss, metrics) in it")
    logs = [_probe_split(model, data, split, where) for split in SPLITS
            if getattr(data, f"x_{split}") is not None]
    model.reset_metrics()
    return list(logs[0])


def check_metric(metric: str, names: Sequence[str], where: str) -> None:
    """``metric`` must be one of the validation names (``val_`` + ``probe``'s names)."""
    reported = [f"val_{name}" for name in names]
    if metric not in reported:
        raise SearchError(f"{where}: the model reports no {metric!r}; it reports "
                          f"{', '.join(reported)}")


def _fit_epochs(model: keras.Model, data: UserData, batch_size: int) -> EpochRunner:
    def run(order: np.ndarray, epoch: int) -> dict[str, float]:
        result = model.fit(take(data.x_train, order), take(data.y_train, order),
                           batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch,
                           shuffle=False, validation_data=(data.x_valid, data.y_valid),
                           verbose=0)
        return {name: float(values[-1]) for name, values in result.history.items()}

    return run


def _graph_epochs(model: keras.Model, data: UserData, batch_size: int,
                  graph: EpochGraph) -> EpochRunner:
    # Converted once per trial, not once per epoch.
    x, y, x_valid, y_valid = resident((data.x_train, data.y_train, data.x_valid, data.y_valid))

    def run(order: np.ndarray, epoch: int) -> dict[str, float]:
        with graph.holding(model):
            logs = graph.train_epoch(x, y, order, batch_size)
            validation = graph.evaluate(x_valid, y_valid, batch_size)
        return {**logs, **{f"val_{name}": value for name, value in validation.items()}}

    return run


def train(model: keras.Model, data: UserData, *, batch_size: int, epochs: int, seed: int,
          initial_epoch: int = 0, callbacks: Sequence[keras.callbacks.Callback] = (),
          path: str = "fit", graph: EpochGraph | None = None) -> list[dict[str, float]]:
    """Train ``model`` on ``path`` from ``initial_epoch`` to ``epochs``; one logs dict per
    epoch. ``graph``: the graph paths' epoch graph, when a worker shares one among its
    trials (``search.training.shared_graphs``); else the model's own.

    ``data`` needs validation arrays (``search.userdata.hold_out``). Callbacks get
    ``on_epoch_begin`` and ``on_epoch_end(epoch, logs)`` with the logs ``model.fit`` gives
    (loss, the model's metrics, val_*), after the epoch's state is final, so they can
    checkpoint. Like ``model.fit``, training stops after an epoch that set
    ``model.stop_training``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if not 0 <= initial_epoch <= epochs:
        raise ValueError(f"initial_epoch {initial_epoch} must lie in 0..{epochs}")
    if data.x_valid is None:
        raise ValueError("data has no validation arrays; hold some out first")
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, not {path!r}")
    run_epoch = _fit_epochs(model, data, batch_size) if path == "fit" else _graph_epochs(
        model, data, batch_size, graph or EpochGraph(model, xla=path == "xla"))
    # Our callbacks are called here, not by fit: fit would also start and end "training"
    # once per epoch (on_train_begin), which is not what a callback expects.
    for callback in callbacks:
        callback.set_model(model)
    model.stop_training = False
    history = []
    for epoch in range(initial_epoch, epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        reset_seeds(model, seed, epoch)
        logs = run_epoch(epoch_order(seed, epoch, length(data.x_train)), epoch)
        history.append(logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    return history


def test_scores(model: keras.Model, data: UserData, batch_size: int, path: str = "fit",
                graph: EpochGraph | None = None) -> dict[str, float] | None:
    """The model's loss and metrics on the test set (``test_`` names), if there is one,
    on ``path``'s evaluation (the graph paths reuse the trial's trace).

    Apart from ``train``: a trial resumed after its last epoch trains nothing and still
    records its test score.
    """
    if data.x_test is None:
        return None
    if path == "fit":
        scores = model.evaluate(data.x_test, data.y_test, batch_size=batch_size, verbose=0,
                                return_dict=True)
    else:
        x, y = resident((data.x_test, data.y_test))
        graph = graph or EpochGraph(model, path == "xla")
        with graph.holding(model):
            scores = graph.evaluate(x, y, batch_size)
    return {f"test_{name}": float(value) for name, value in scores.items()}
